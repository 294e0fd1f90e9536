"""Session fixtures: one real mesh (etcd, ITS, Policy, STS, OpenID provider).

Everything runs on free loopback ports in a temporary folder and is stopped
at the end of the session. Spans are exported to a real OTLP receiver.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.otlp import OtlpReceiver

REPO_ROOT = Path(__file__).resolve().parents[1]

# Services refuse plaintext gRPC unless told otherwise; the tests that start a
# service process by hand run it plaintext, as `wif dev up` does without
# --tls. tests/integration/test_mtls.py covers the TLS mesh.
os.environ.setdefault("WIF_ALLOW_PLAINTEXT", "true")


#: Clock skew of the test provider: small, so that an expired token is seen quickly.
TEST_CLOCK_SKEW_SECONDS = 1


def _test_trust_config(state: Path) -> Path:
    """The dev trust configuration with a small clock skew for the CI provider."""
    text = (REPO_ROOT / "config" / "dev-trust.yaml").read_text()
    text = text.replace(
        "clock_skew_seconds: 30", f"clock_skew_seconds: {TEST_CLOCK_SKEW_SECONDS}"
    )
    path = state / "trust.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def mesh(
    tmp_path_factory: pytest.TempPathFactory, otlp_receiver: OtlpReceiver
) -> Iterator[dict[str, Any]]:
    """The endpoints of a running mesh, as ``wif dev up`` writes them."""
    from wif.dev.mesh import start_mesh, stop_mesh

    state = tmp_path_factory.mktemp("mesh")
    saved = {
        k: os.environ.get(k)
        for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_BSP_SCHEDULE_DELAY")
    }
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_receiver.endpoint
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "200"
    try:
        endpoints = start_mesh(
            state, with_oidc=True, trust_config=_test_trust_config(state)
        )
    except BaseException:
        stop_mesh(state)
        raise
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield endpoints
    stop_mesh(state)
