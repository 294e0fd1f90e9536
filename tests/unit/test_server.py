"""Tests for wif.server's client channels: mTLS to a peer named by its certificate.

A real server from :func:`wif.server.start_grpc_server` on loopback answers
one raw method with the serial of the client certificate it saw; the
certificates come from one development CA, so every peer's certificate
chains to the bundle and only the names tell the services apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from wif.channels import client_channel
from wif.dev.ca import DevCa, IssuedFiles, write_private, write_public
from wif.server import start_grpc_server
from wif.settings import SettingsError
from wif.tls import (
    CLIENT_CHECK_INTERVAL_SECONDS,
    ReloadingChannel,
    TlsFiles,
    server_credentials,
)

METHOD = "/wif.test.Peer/Serial"


@dataclass
class Served:
    """How many calls the test server answered."""

    calls: int = 0


def tls_files(issued: IssuedFiles) -> TlsFiles:
    return TlsFiles(issued.cert, issued.key, issued.ca)


def serial_of(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def write_pair(files: TlsFiles, key: bytes, cert: bytes) -> None:
    """Replaces the key, then the certificate, as an issuer rotating them does."""
    write_private(files.key, key)
    write_public(files.cert, cert)


@asynccontextmanager
async def peer(files: TlsFiles) -> AsyncIterator[tuple[str, Served]]:
    """A mesh server with ``files``; yields its address and what it answered."""
    served = Served()

    async def client_serial(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        served.calls += 1
        pem = context.auth_context()["x509_pem_cert"][0]
        return str(x509.load_pem_x509_certificate(pem).serial_number).encode()

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(client_serial)
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("wif.test.Peer", {"Serial": handler})]
        )

    credentials = server_credentials(
        files, files.read(), require_client_certificate=True
    )
    running = await start_grpc_server(
        "127.0.0.1:0", register, (), credentials=credentials
    )
    try:
        yield f"127.0.0.1:{running.port}", served
    finally:
        await running.server.stop(0)


Channel = grpc.aio.Channel | ReloadingChannel


async def client_serial(channel: Channel, *, wait: bool = False) -> int:
    """Calls the test server; returns the client certificate serial it saw."""
    call = channel.unary_unary(METHOD)
    return int(await call(b"", timeout=5, wait_for_ready=wait))


async def refused_code(channel: Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client_serial(channel)
    code: grpc.StatusCode = refused.value.code()
    return code


@pytest.fixture(scope="module")
def ca() -> DevCa:
    return DevCa.create("acme.example")


async def test_client_channel_reaches_the_service_its_certificate_names(
    ca: DevCa, tmp_path: Path
) -> None:
    policy = ca.issue("policy", tmp_path / "policy")
    sts = ca.issue("sts", tmp_path / "sts")

    async with peer(tls_files(policy)) as (address, served):
        channel = client_channel(address, tls_files(sts), service="policy")
        seen = await client_serial(channel)
        await channel.close()

    assert seen == serial_of(sts.cert)
    assert served.calls == 1


async def test_client_channel_refuses_a_certificate_issued_for_another_service(
    ca: DevCa, tmp_path: Path
) -> None:
    # The ITS's certificate chains to the same CA and names 127.0.0.1, so
    # a check by address alone would take this server for the Policy service.
    its = ca.issue("its", tmp_path / "its")
    sts = ca.issue("sts", tmp_path / "sts")

    async with peer(tls_files(its)) as (address, served):
        channel = client_channel(address, tls_files(sts), service="policy")
        code = await refused_code(channel)
        await channel.close()

    assert code == grpc.StatusCode.UNAVAILABLE
    assert served.calls == 0


@dataclass(frozen=True)
class NameCase:
    name: str
    certificate_names: tuple[str, ...]
    server_name: str | None
    reached: bool


NAME_CASES = [
    NameCase(
        "given-name", ("policy.wif.prod.example",), "policy.wif.prod.example", True
    ),
    NameCase("given-name-missing", ("policy.acme.example.wif.internal",), "p.x", False),
    NameCase("default-name-missing", ("policy.wif.prod.example",), None, False),
    NameCase("other-trust-domain", ("policy.other.example.wif.internal",), None, False),
    NameCase("no-dns-name", (), None, False),
]


@pytest.mark.parametrize("case", NAME_CASES, ids=lambda case: case.name)
async def test_client_channel_checks_the_given_or_default_server_name(
    ca: DevCa, tmp_path: Path, case: NameCase
) -> None:
    sts = ca.issue("sts", tmp_path)
    server = TlsFiles(tmp_path / "policy.pem", tmp_path / "policy.key", sts.ca)
    write_pair(
        server,
        *ca.issue_pem(ca.spiffe_id("policy"), dns_names=case.certificate_names),
    )

    async with peer(server) as (address, served):
        channel = client_channel(
            address, tls_files(sts), service="policy", server_name=case.server_name
        )
        if case.reached:
            await client_serial(channel)
        else:
            assert await refused_code(channel) == grpc.StatusCode.UNAVAILABLE
        await channel.close()

    assert served.calls == (1 if case.reached else 0)


async def test_names_are_still_checked_after_either_side_replaces_its_certificate(
    ca: DevCa, tmp_path: Path
) -> None:
    server_folder = tmp_path / "server"
    wrong = ca.issue("its", server_folder)
    sts = ca.issue("sts", tmp_path / "sts")
    first = serial_of(sts.cert)

    async with peer(tls_files(wrong)) as (address, served):
        channel = client_channel(address, tls_files(sts), service="policy")
        before = await refused_code(channel)

        # The STS's own certificate is replaced: the channel re-opened at the
        # next call presents the new one and still checks the peer's name.
        ca.issue("sts", tmp_path / "sts")
        renewed = serial_of(sts.cert)
        await asyncio.sleep(CLIENT_CHECK_INTERVAL_SECONDS + 0.1)
        after_client_reload = await refused_code(channel)

        # The peer's files now hold a Policy service certificate: the next
        # connection gets it, and the name matches.
        key, cert = ca.issue_pem(
            ca.spiffe_id("policy"), dns_names=(ca.service_name("policy"),)
        )
        write_pair(tls_files(wrong), key, cert)
        seen = await client_serial(channel, wait=True)
        await channel.close()

    assert before == after_client_reload == grpc.StatusCode.UNAVAILABLE
    assert seen == renewed != first
    assert served.calls == 1


async def test_client_channel_needs_a_trust_domain_that_names_the_peer(
    tmp_path: Path,
) -> None:
    # An underscore is allowed in a trust domain but not in a DNS name.
    odd = DevCa.create("under_score")
    files = TlsFiles(tmp_path / "sts.pem", tmp_path / "sts.key", odd.save(tmp_path))
    write_pair(files, *odd.issue_pem(odd.spiffe_id("sts")))

    with pytest.raises(SettingsError) as caught:
        client_channel("127.0.0.1:1", files, service="policy")

    assert str(caught.value).startswith(
        "setting policy_server_name is needed: trust domain 'under_score' "
        "gives no DNS name"
    )
    named = client_channel(
        "127.0.0.1:1", files, service="policy", server_name="policy.wif.example"
    )
    await named.close()
