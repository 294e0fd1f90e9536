"""`make demo` end to end: a real exchange, checked independently, and refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.mesh import REPO_ROOT


def test_demo_shows_an_exchange_and_three_refusals_then_stops_everything(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from wif.cli.main import main; main()",
         "--state-dir", str(tmp_path), "demo"],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert (
        "verified: sub=spiffe://acme.example/payments-ci/acme-corp/payments-api" in out
    )
    assert "invalid_grant (ATTRIBUTE_CONDITION_FAILED)" in out
    assert "invalid_target (POLICY_DENIED)" in out
    assert "unauthorized_client (CALLER_NOT_ALLOWED)" in out
    assert "NOT refused" not in out
    assert not (tmp_path / "endpoints.json").exists()
