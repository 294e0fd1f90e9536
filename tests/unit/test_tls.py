"""Tests for wif.tls: certificate files, and reloading them on both sides.

A real grpc.aio server on loopback answers one raw method with the serial
of the client certificate it saw, so a test can tell which certificate each
side of a new connection used.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from wif.dev.ca import DevCa, IssuedFiles
from wif.settings import SettingsError
from wif.tls import (
    ReloadingChannel,
    TlsFiles,
    TlsFilesError,
    TlsMaterial,
    server_credentials,
)

METHOD = "/wif.test.Peer/Serial"


def tls_files(issued: IssuedFiles) -> TlsFiles:
    return TlsFiles(issued.cert, issued.key, issued.ca)


def serial_of(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


async def peer_serial(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    pem = context.auth_context()["x509_pem_cert"][0]
    return str(x509.load_pem_x509_certificate(pem).serial_number).encode()


@asynccontextmanager
async def tls_server(files: TlsFiles) -> AsyncIterator[str]:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(peer_serial)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("wif.test.Peer", {"Serial": handler})]
    )
    credentials = server_credentials(
        files, files.read(), require_client_certificate=True
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def reloading_channel(
    address: str, files: TlsFiles, interval: float = 0.0
) -> ReloadingChannel:
    def open_channel(material: TlsMaterial) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            material.ca_bundle, material.private_key, material.cert_chain
        )
        return grpc.aio.secure_channel(address, credentials)

    return ReloadingChannel(files, open_channel, check_interval=interval)


def served_serial(address: str, client: IssuedFiles) -> int:
    host, _, port = address.rpartition(":")
    context = ssl.create_default_context(cafile=client.ca)
    context.load_cert_chain(client.cert, client.key)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as connection,
    ):
        der = connection.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture(scope="module")
def ca() -> DevCa:
    return DevCa.create("acme.example")


def test_read_returns_the_spiffe_id_and_serial(ca: DevCa, tmp_path: Path) -> None:
    issued = ca.issue("its", tmp_path)

    material = tls_files(issued).read()

    assert material.spiffe_id == "spiffe://acme.example/wif/its"
    assert material.serial == serial_of(issued.cert)
    assert "PRIVATE" not in repr(material)


def test_read_refuses_a_key_that_does_not_match(ca: DevCa, tmp_path: Path) -> None:
    its = ca.issue("its", tmp_path / "its")
    sts = ca.issue("sts", tmp_path / "sts")

    with pytest.raises(TlsFilesError, match="does not match"):
        TlsFiles(its.cert, sts.key, its.ca).read()


def test_read_at_start_names_the_settings(tmp_path: Path) -> None:
    missing = TlsFiles(tmp_path / "a.pem", tmp_path / "a.key", tmp_path / "ca.pem")

    with pytest.raises(SettingsError, match=r"tls_\*_file: cannot read"):
        missing.read_at_start()


async def test_server_serves_a_replaced_certificate_to_new_connections(
    ca: DevCa, tmp_path: Path
) -> None:
    server = ca.issue("its", tmp_path / "server")
    client = ca.issue("sts", tmp_path / "client")

    async with tls_server(tls_files(server)) as address:
        first = await asyncio.to_thread(served_serial, address, client)
        ca.issue("its", tmp_path / "server")
        second = await asyncio.to_thread(served_serial, address, client)

    assert first != second == serial_of(server.cert)


async def test_server_keeps_its_pair_while_key_and_certificate_disagree(
    ca: DevCa, tmp_path: Path
) -> None:
    server = ca.issue("its", tmp_path / "server")
    client = ca.issue("sts", tmp_path / "client")
    other = ca.issue("its", tmp_path / "other")

    async with tls_server(tls_files(server)) as address:
        before = await asyncio.to_thread(served_serial, address, client)
        server.key.write_bytes(other.key.read_bytes())
        during = await asyncio.to_thread(served_serial, address, client)
        server.cert.write_bytes(other.cert.read_bytes())
        after = await asyncio.to_thread(served_serial, address, client)

    assert before == during != after == serial_of(other.cert)


async def test_reloading_channel_presents_a_replaced_client_certificate(
    ca: DevCa, tmp_path: Path
) -> None:
    server = ca.issue("its", tmp_path / "server")
    client = ca.issue("sts", tmp_path / "client")

    async with tls_server(tls_files(server)) as address:
        channel = reloading_channel(address, tls_files(client))
        call = channel.unary_unary(METHOD)
        first = int(await call(b"", timeout=5))
        ca.issue("sts", tmp_path / "client")
        second = int(await call(b"", timeout=5))
        await channel.close()

    assert first != second == serial_of(client.cert)


async def test_reloading_channel_checks_the_files_at_most_once_per_interval(
    ca: DevCa, tmp_path: Path
) -> None:
    server = ca.issue("its", tmp_path / "server")
    client = ca.issue("sts", tmp_path / "client")

    async with tls_server(tls_files(server)) as address:
        channel = reloading_channel(address, tls_files(client), interval=3600)
        call = channel.unary_unary(METHOD)
        first = int(await call(b"", timeout=5))
        ca.issue("sts", tmp_path / "client")
        second = int(await call(b"", timeout=5))
        await channel.close()

    assert first == second


def test_fingerprint_changes_when_a_file_is_replaced(ca: DevCa, tmp_path: Path) -> None:
    files = tls_files(ca.issue("its", tmp_path))
    before = files.fingerprint()
    time.sleep(0.01)

    ca.issue("its", tmp_path)

    assert files.fingerprint() != before
