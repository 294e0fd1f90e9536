"""The real mesh the benchmarks run against, and the processes beside it.

:func:`bench_mesh` starts, in a temporary folder and on loopback only: an
OTLP trace sink, the mesh of :func:`wif.dev.mesh.start_mesh` (etcd, ITS,
Policy, STS and the OpenID provider) with span export on, the echo server
and a second STS replica. Everything stops when the context ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from tests.support.replicas import Replica, start_replica
from wif.dev.etcd import free_port

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_SECONDS = 60.0
#: The OTLP/gRPC services the sink answers: spans and metrics.
OTLP_SERVICES = (
    "opentelemetry.proto.collector.trace.v1.TraceService",
    "opentelemetry.proto.collector.metrics.v1.MetricsService",
)


class OtlpSink:
    """An OTLP/gRPC endpoint that acknowledges and counts, keeping nothing.

    Unlike the test receiver it does not decode spans, so that the
    collector's own work stays out of the measurements.
    """

    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        export = grpc.unary_unary_rpc_method_handler(self._export)
        self._server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(name, {"Export": export})
                for name in OTLP_SERVICES
            ]
        )
        port = self._server.add_insecure_port(f"{LOOPBACK}:0")
        self.endpoint = f"http://{LOOPBACK}:{port}"
        self._server.start()

    def _export(self, request: bytes, context: Any) -> bytes:
        with self._lock:
            self.exports += 1
            self.bytes += len(request)
        return b""

    def stop(self) -> None:
        """Stops the sink."""
        self._server.stop(grace=None)


@dataclass
class BenchMesh:
    """Endpoints of the running mesh and of the processes beside it."""

    endpoints: dict[str, Any]
    state: Path
    echo: str
    sts2: str
    sink: OtlpSink
    echo_pid: int = 0

    def server_pids(self) -> dict[str, int]:
        """The processes that answer RPCs, by name: the services and the echo."""
        pids = {
            name: int(pid)
            for name, pid in self.endpoints["pids"].items()
            if name in ("sts", "policy", "its")
        }
        return {**pids, "echo": self.echo_pid}


def _start_echo(state: Path) -> tuple[subprocess.Popen[bytes], str]:
    address = f"{LOOPBACK}:{free_port()}"
    ready = state / "echo.ready"
    log = (state / "logs" / "echo.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.echo_server"],
        env={
            **os.environ,
            "WIF_ECHO_GRPC_LISTEN": address,
            "WIF_READY_FILE": str(ready),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the echo server did not start; see its log")
        time.sleep(0.05)
    return process, address


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def _tracing_env(endpoint: str) -> Iterator[None]:
    """Span export on for every process started inside; restored afterwards."""
    names = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_BSP_SCHEDULE_DELAY")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "500"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def bench_mesh() -> Iterator[BenchMesh]:
    """The mesh, the echo server and a second STS, stopped on exit."""
    from wif.dev.mesh import start_mesh, stop_mesh

    sink = OtlpSink()
    with tempfile.TemporaryDirectory(prefix="wif-bench-") as folder:
        state = Path(folder)
        replica: Replica | None = None
        echo: subprocess.Popen[bytes] | None = None
        try:
            with _tracing_env(sink.endpoint):
                endpoints = start_mesh(state, with_oidc=True)
                echo, echo_address = _start_echo(state)
                replica = start_replica(
                    "sts",
                    "sts-2",
                    state,
                    {
                        "WIF_ETCD_ENDPOINT": endpoints["etcd"],
                        "WIF_ITS_ADDRESS": endpoints["its"]["grpc"],
                        "WIF_POLICY_ADDRESS": endpoints["policy"]["grpc"],
                    },
                )
            yield BenchMesh(
                endpoints, state, echo_address, replica.grpc, sink, echo.pid
            )
        finally:
            if replica is not None:
                replica.stop()
            if echo is not None:
                _stop(echo)
            stop_mesh(state)
            sink.stop()
