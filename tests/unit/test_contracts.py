"""The generated code matches the protos, and the protos pass buf lint."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATED = REPO_ROOT / "libs" / "wif" / "v1"


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "gen-protos.sh"), str(tmp_path)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )

    fresh = sorted(p.name for p in (tmp_path / "wif" / "v1").iterdir())
    stale = [
        name
        for name in fresh
        if not filecmp.cmp(
            tmp_path / "wif" / "v1" / name, GENERATED / name, shallow=False
        )
    ]
    assert fresh, "generation produced nothing"
    assert stale == [], f"run `make gen`: stale generated files {stale}"


def test_protos_pass_buf_lint() -> None:
    result = subprocess.run(
        [str(REPO_ROOT / "node_modules" / ".bin" / "buf"), "lint"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr
