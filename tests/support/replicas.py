"""Extra service replicas beside a running mesh, each its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from wif.dev.etcd import free_port

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_SECONDS = 60.0


@dataclass
class Replica:
    """A running service process and its gRPC address."""

    name: str
    process: subprocess.Popen[bytes]
    grpc: str
    audit_log: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ten seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


#: Starts tried before giving up: a free port can be taken by another
#: process between the moment it is picked and the moment the service binds it.
START_ATTEMPTS = 3


def start_replica(service: str, name: str, state: Path, env: dict[str, str]) -> Replica:
    """Starts ``python -m services.<service>.main`` on free loopback ports.

    ``env`` adds to (and overrides) this process's environment; listen
    addresses, the ready file and the audit log are set here. A process that
    exits before it is ready (a port taken meanwhile) is started again on
    other ports, up to START_ATTEMPTS times.
    """
    for _ in range(START_ATTEMPTS - 1):
        replica = _start_once(service, name, state, env)
        if replica is not None:
            return replica
    replica = _start_once(service, name, state, env)
    if replica is None:
        raise RuntimeError(f"replica {name} did not start; see its log")
    return replica


def _start_once(
    service: str, name: str, state: Path, env: dict[str, str]
) -> Replica | None:
    prefix = f"WIF_{service.upper()}"
    grpc_address = f"{LOOPBACK}:{free_port()}"
    ready = state / f"{name}.ready"
    audit = state / f"audit-{name}.jsonl"
    ready.unlink(missing_ok=True)
    full_env = {
        "WIF_ALLOW_PLAINTEXT": "true",  # as the mesh runs unless started with TLS
        **os.environ,
        **env,
        f"{prefix}_GRPC_LISTEN": grpc_address,
        f"{prefix}_HTTP_LISTEN": f"{LOOPBACK}:{free_port()}",
        "WIF_READY_FILE": str(ready),
        "WIF_AUDIT_LOG": str(audit),
    }
    log = (state / "logs" / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}.main"],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    replica = Replica(name, process, grpc_address, audit)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not ready.exists():
        if process.poll() is not None:
            replica.stop()
            return None
        if time.monotonic() > deadline:
            replica.stop()
            raise RuntimeError(f"replica {name} did not start in time; see its log")
        time.sleep(0.05)
    json.loads(ready.read_text())
    return replica
