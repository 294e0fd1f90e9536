"""The local mesh: a real etcd, the three services and, on request, the OpenID provider.

:func:`start_mesh` starts every part as its own process on free loopback
ports, applies a trust configuration, and writes the endpoints to
``endpoints.json`` in the state folder so that other tools and tests can
find the running mesh. :func:`stop_mesh` stops whatever that file lists.
The same code backs ``wif dev up``, ``make demo`` and the integration tests.

With ``tls=True`` a development CA (:mod:`wif.dev.ca`) issues a certificate
to each service and one to an operator, in ``<state>/tls``; the services then
speak mTLS and ``endpoints.json`` names the CA and the operator's files under
``tls`` for the ``wif`` commands and the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from wif.dev.ca import DevCa
from wif.dev.etcd import EtcdServer, free_port, start_etcd
from wif.dev.oidc import start_oidc_provider
from wif.envelope import KeyEncryptionKey
from wif.store import EtcdStore
from wif.trust.config import load_file, to_etcd_items
from wif.trust.stored import apply_items

ENDPOINTS_FILE = "endpoints.json"
LOOPBACK = "127.0.0.1"
SERVICES = ("its", "policy", "sts")
READY_TIMEOUT_SECONDS = 60.0
TLS_DIR = "tls"
TLS_ENV = ("WIF_TLS_CERT_FILE", "WIF_TLS_KEY_FILE", "WIF_TLS_CA_FILE")

#: The trust domain of the development CA's certificates.
DEV_TRUST_DOMAIN = "acme.example"

#: The trust configuration the local run applies unless told otherwise.
DEFAULT_TRUST_CONFIG = Path("config/dev-trust.yaml")


def repo_root() -> Path:
    """The checkout this module runs from."""
    return Path(__file__).resolve().parents[3]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _service_env(
    name: str, ports: dict[str, int], state: Path, etcd: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TLS_ENV}
    env.update(
        WIF_ETCD_ENDPOINT=etcd,
        WIF_READY_FILE=str(state / f"{name}.ready"),
        WIF_AUDIT_LOG=str(state / f"audit-{name}.jsonl"),
        WIF_KEK_FILE=str(state / "kek"),
        WIF_ITS_ADDRESS=f"{LOOPBACK}:{ports['its_grpc']}",
        WIF_POLICY_ADDRESS=f"{LOOPBACK}:{ports['policy_grpc']}",
        WIF_ITS_GRPC_LISTEN=f"{LOOPBACK}:{ports['its_grpc']}",
        WIF_ITS_HTTP_LISTEN=f"{LOOPBACK}:{ports['its_http']}",
        WIF_POLICY_GRPC_LISTEN=f"{LOOPBACK}:{ports['policy_grpc']}",
        WIF_STS_GRPC_LISTEN=f"{LOOPBACK}:{ports['sts_grpc']}",
        WIF_STS_HTTP_LISTEN=f"{LOOPBACK}:{ports['sts_http']}",
    )
    return env


def _start_service(
    name: str, env: dict[str, str], state: Path
) -> subprocess.Popen[bytes]:
    ready = Path(env["WIF_READY_FILE"])
    ready.unlink(missing_ok=True)
    log = (state / "logs" / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", f"services.{name}.main"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_ready(name: str, process: subprocess.Popen[bytes], state: Path) -> None:
    ready = state / f"{name}.ready"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = _tail(state / "logs" / f"{name}.log")
            raise RuntimeError(f"the {name} service did not start:\n{tail}")
        time.sleep(0.05)


async def apply_config(etcd: str, path: Path, environ: dict[str, str]) -> int:
    """Validates the file and puts it in force whole; returns the revision."""
    config = load_file(path, environ)
    async with EtcdStore(etcd) as store:
        applied = await apply_items(store, to_etcd_items(config))
    return applied.revision


def issue_dev_certificates(state: Path) -> dict[str, dict[str, str]]:
    """A fresh development CA and a certificate per service and the operator.

    Returns each name's ``cert``, ``key`` and ``ca`` paths.
    """
    folder = state / TLS_DIR
    ca = DevCa.create(DEV_TRUST_DOMAIN)
    ca.save(folder)
    issued = {}
    for name in (*SERVICES, "operator"):
        files = ca.issue(name, folder)
        issued[name] = {
            "cert": str(files.cert),
            "key": str(files.key),
            "ca": str(files.ca),
        }
    return issued


def start_mesh(
    state: Path,
    *,
    with_oidc: bool = True,
    trust_config: Path | None = None,
    etcd: EtcdServer | None = None,
    service_env: dict[str, str] | None = None,
    tls: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Starts the mesh in the background and returns its endpoints.

    Given ``etcd``, the mesh uses that running server and leaves it out of
    the endpoints' ``pids``: the caller stops (or restarts) it. Each service
    gets ``service_env`` on top of the usual environment, for settings.
    With ``tls`` the services speak mTLS with certificates from a fresh
    development CA (see :func:`issue_dev_certificates`). ``progress`` is
    told each step as it begins.
    """
    step = progress or (lambda message: None)
    root = repo_root()
    state.mkdir(parents=True, exist_ok=True)
    (state / "logs").mkdir(exist_ok=True)
    kek = state / "kek"
    if not kek.exists():
        kek.write_text(KeyEncryptionKey.generate_text())
        kek.chmod(0o600)
    ports = {
        p: free_port()
        for p in (
            "its_grpc", "its_http", "policy_grpc", "sts_grpc", "sts_http",
            "its_metrics", "policy_metrics", "sts_metrics",
        )
    }  # fmt: skip
    endpoints: dict[str, Any] = {
        "state_dir": str(state),
        "pids": {},
        "ports": ports,
        "service_env": dict(service_env or {}),
    }
    _write(state, endpoints)

    if etcd is None:
        step("starting etcd")
        etcd = start_etcd(state / "etcd", log_file=state / "logs" / "etcd.log")
        assert etcd.process is not None, "start_etcd returns a running server"
        endpoints["pids"]["etcd"] = etcd.process.pid
    endpoints["etcd"] = etcd.endpoint
    _write(state, endpoints)

    environ = dict(os.environ)
    environ["WIF_ISSUER"] = f"http://{LOOPBACK}:{ports['its_http']}"
    if with_oidc:
        step("starting the OpenID provider")
        oidc = start_oidc_provider(root, log_file=state / "logs" / "oidc.log")
        endpoints["oidc"] = {"issuer": oidc.issuer}
        endpoints["pids"]["oidc"] = oidc.process.pid
        environ["WIF_DEV_OIDC_ISSUER"] = oidc.issuer
        _write(state, endpoints)

    config_path = (root / (trust_config or DEFAULT_TRUST_CONFIG)).resolve()
    endpoints["trust_config"] = str(config_path)
    endpoints["config_variables"] = {
        k: v for k, v in environ.items() if k in ("WIF_ISSUER", "WIF_DEV_OIDC_ISSUER")
    }
    step(f"applying the trust configuration {config_path.name}")
    endpoints["config_revision"] = asyncio.run(
        apply_config(etcd.endpoint, config_path, environ)
    )

    if tls:
        step("issuing certificates from a development CA")
    certificates = issue_dev_certificates(state) if tls else {}
    if tls:
        operator = certificates["operator"]
        endpoints["tls"] = {
            "ca": operator["ca"],
            "operator_cert": operator["cert"],
            "operator_key": operator["key"],
            "service_certs": {
                name: {
                    "cert": certificates[name]["cert"],
                    "key": certificates[name]["key"],
                }
                for name in SERVICES
            },
        }
    processes = {}
    for name in SERVICES:
        step(f"starting the {name} service")
        env = _full_env(name, endpoints)
        processes[name] = _start_service(name, env, state)
        endpoints["pids"][name] = processes[name].pid
        _write(state, endpoints)
    for name, process in processes.items():
        step(f"waiting for the {name} service to be ready")
        _wait_ready(name, process, state)

    endpoints.update(
        issuer=environ["WIF_ISSUER"],
        its={"grpc": f"{LOOPBACK}:{ports['its_grpc']}", "http": environ["WIF_ISSUER"]},
        policy={"grpc": f"{LOOPBACK}:{ports['policy_grpc']}"},
        sts={
            "grpc": f"{LOOPBACK}:{ports['sts_grpc']}",
            "http": f"http://{LOOPBACK}:{ports['sts_http']}",
        },
        audit_logs={name: str(state / f"audit-{name}.jsonl") for name in SERVICES},
        metrics={
            name: f"http://{LOOPBACK}:{ports[name + '_metrics']}/metrics"
            for name in SERVICES
        },
    )
    _write(state, endpoints)
    return endpoints


def _full_env(name: str, endpoints: dict[str, Any]) -> dict[str, str]:
    ports = endpoints["ports"]
    state = Path(endpoints["state_dir"])
    env = _service_env(name, ports, state, endpoints["etcd"])
    env["WIF_METRICS_LISTEN"] = f"{LOOPBACK}:{ports[name + '_metrics']}"
    tls = endpoints.get("tls")
    if tls:
        env.update(
            WIF_TLS_CERT_FILE=tls["service_certs"][name]["cert"],
            WIF_TLS_KEY_FILE=tls["service_certs"][name]["key"],
            WIF_TLS_CA_FILE=tls["ca"],
        )
    else:
        env["WIF_ALLOW_PLAINTEXT"] = "true"
    env.update(endpoints.get("service_env", {}))
    return env


def restart_service(endpoints: dict[str, Any], name: str) -> int:
    """Starts service ``name`` of a running mesh again, on the same ports.

    The old process must have ended. Waits until the new one is ready,
    records its pid in the endpoints (and their file) and returns it.
    """
    state = Path(endpoints["state_dir"])
    process = _start_service(name, _full_env(name, endpoints), state)
    endpoints["pids"][name] = process.pid
    _write(state, endpoints)
    _wait_ready(name, process, state)
    return process.pid


def _write(state: Path, endpoints: dict[str, Any]) -> None:
    tmp = state / (ENDPOINTS_FILE + ".tmp")
    tmp.write_text(json.dumps(endpoints, indent=2))
    tmp.replace(state / ENDPOINTS_FILE)


def read_endpoints(state: Path) -> dict[str, Any]:
    """The endpoints of the mesh running from ``state``; raises FileNotFoundError."""
    result: dict[str, Any] = json.loads((state / ENDPOINTS_FILE).read_text())
    return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_mesh(state: Path, timeout: float = 10.0) -> list[str]:
    """Stops every process the endpoints file lists; returns those still running."""
    try:
        listed: dict[str, int] = read_endpoints(state)["pids"]
    except (FileNotFoundError, KeyError, ValueError):
        return []
    pids = {name: pid for name, pid in listed.items() if _alive(pid)}
    for pid in pids.values():
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        _reap(pids.values())
        time.sleep(0.05)
    for pid in pids.values():
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    _reap(pids.values())
    (state / ENDPOINTS_FILE).unlink(missing_ok=True)
    return list(pids)


def _reap(pids: Any) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def dev_channel(
    endpoints: dict[str, Any], service: str, identity: str | None = "operator"
) -> grpc.aio.Channel:
    """A channel to one of the local mesh's services, as the mesh speaks it.

    On a mesh with mTLS, ``identity`` chooses the client certificate: the
    operator's, a service's (``"sts"``) or none (a workload calling the STS);
    without TLS it is ignored.
    """
    address = endpoints[service]["grpc"]
    tls = endpoints.get("tls")
    if not tls:
        return grpc.aio.insecure_channel(address)
    key: bytes | None = None
    cert: bytes | None = None
    if identity == "operator":
        key = Path(tls["operator_key"]).read_bytes()
        cert = Path(tls["operator_cert"]).read_bytes()
    elif identity is not None:
        key = Path(tls["service_certs"][identity]["key"]).read_bytes()
        cert = Path(tls["service_certs"][identity]["cert"]).read_bytes()
    credentials = grpc.ssl_channel_credentials(Path(tls["ca"]).read_bytes(), key, cert)
    return grpc.aio.secure_channel(address, credentials)
