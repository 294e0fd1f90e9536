"""The ``wif`` command line and the services' start-up and drain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.mesh import REPO_ROOT

WIF = [sys.executable, "-c", "from wif.cli.main import main; main()"]


def _wif(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WIF, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )


def test_config_validate_accepts_the_dev_configuration(mesh: dict[str, Any]) -> None:
    result = _wif(
        "config", "validate", "config/dev-trust.yaml", env=mesh["config_variables"]
    )

    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_config_validate_names_the_bad_field(
    tmp_path: Path, mesh: dict[str, Any]
) -> None:
    text = (REPO_ROOT / "config" / "dev-trust.yaml").read_text()
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        text.replace("clock_skew_seconds: 30", "clock_skew_seconds: 3000")
    )

    result = _wif("config", "validate", str(broken), env=mesh["config_variables"])

    assert result.returncode == 1
    assert "providers[0].clock_skew_seconds: must be between 0 and 300" in result.stderr


def test_config_get_prints_the_configuration_in_force(mesh: dict[str, Any]) -> None:
    result = _wif("--etcd", mesh["etcd"], "config", "get")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["mesh"]["trust_domain"] == "acme.example"
    assert document["revision"] > 0


def test_config_apply_without_etcd_says_how_to_find_one(tmp_path: Path) -> None:
    env = {"WIF_ETCD_ENDPOINT": "", "WIF_DEV_STATE_DIR": str(tmp_path)}
    result = _wif("config", "apply", "config/dev-trust.yaml", env=env)

    assert result.returncode == 3
    assert "wif dev up" in result.stderr


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return int(response.status)


def test_policy_service_drains_and_exits_on_sigterm(
    tmp_path: Path, mesh: dict[str, Any]
) -> None:
    ready = tmp_path / "policy.ready"
    env = {
        **os.environ,
        "WIF_ETCD_ENDPOINT": mesh["etcd"],
        "WIF_READY_FILE": str(ready),
        "WIF_POLICY_GRPC_LISTEN": "127.0.0.1:0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.policy.main"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        port = json.loads(ready.read_text())["grpc_port"]
        assert _health(f"127.0.0.1:{port}") == health_pb2.HealthCheckResponse.SERVING

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=15) == 0
    finally:
        process.kill()


def test_service_with_a_bad_setting_stops_naming_it() -> None:
    env = {**os.environ, "WIF_STS_GRPC_LISTEN": "nowhere"}
    result = subprocess.run(
        [sys.executable, "-m", "services.sts.main"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode != 0
    assert "grpc_listen (WIF_STS_GRPC_LISTEN)" in result.stderr


def test_its_refuses_to_start_without_a_key_encryption_key(
    mesh: dict[str, Any],
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WIF_KEK", "WIF_KEK_FILE")}
    env["WIF_ETCD_ENDPOINT"] = mesh["etcd"]
    result = subprocess.run(
        [sys.executable, "-m", "services.its.main"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode != 0
    assert "WIF_KEK_FILE" in result.stderr


def test_dev_up_writes_endpoints_and_dev_down_stops_everything(tmp_path: Path) -> None:
    state = tmp_path / "dev"
    up = _wif(
        "--state-dir",
        str(state),
        "--json",
        "dev",
        "up",
        "--no-oidc",
        "--trust-config",
        "config/dev-trust.yaml",
        env={"WIF_DEV_OIDC_ISSUER": "http://127.0.0.1:9"},
    )
    try:
        assert up.returncode == 0, up.stderr
        endpoints = json.loads((state / "endpoints.json").read_text())
        assert {"etcd", "its", "policy", "sts", "issuer"} <= set(endpoints)
        assert (
            _health(endpoints["sts"]["grpc"]) == health_pb2.HealthCheckResponse.SERVING
        )
        assert "... starting etcd" in up.stderr
        assert "... starting the sts service" in up.stderr
        assert json.loads(up.stdout)["etcd"] == endpoints["etcd"]
        apply = _wif(
            "--state-dir", str(state), "config", "apply", "config/dev-trust.yaml",
            "--json",
        )  # fmt: skip
        assert apply.returncode == 0, apply.stderr
        assert "... validating config/dev-trust.yaml" in apply.stderr
        assert "... writing " in apply.stderr
        revision = json.loads(apply.stdout)["revision"]
        assert f"... etcd revision {revision}" in apply.stderr
        diff = _wif(
            "--state-dir", str(state), "config", "diff", "config/dev-trust.yaml"
        )
        assert diff.returncode == 0, diff.stdout + diff.stderr
        assert "identical" in diff.stdout
        pids = list(endpoints["pids"].values())
    finally:
        down = _wif("--state-dir", str(state), "dev", "down")

    assert down.returncode == 0
    assert not (state / "endpoints.json").exists()
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )


def test_service_refuses_plaintext_unless_allowed() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIF_")}
    result = subprocess.run(
        [sys.executable, "-m", "services.policy.main"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode != 0
    assert "WIF_ALLOW_PLAINTEXT=true" in result.stderr
