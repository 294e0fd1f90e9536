"""Service-to-service trust on a mesh of its own that speaks mTLS.

Certificates come from the development CA; callers are told apart by the
SPIFFE ID in their certificate, and the services the STS calls by the DNS
name of the service in theirs. The tests replace certificate files on disk,
so they do not share the session's mesh.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from tests.support.mesh import (
    REPO_ROOT,
    audit_records,
    exchange,
    job_token,
    mesh_channel,
    refusal,
)
from tests.support.replicas import Replica, start_replica
from wif.dev.ca import DevCa
from wif.dev.mesh import TLS_DIR, start_mesh, stop_mesh
from wif.v1 import (
    its_pb2,
    its_pb2_grpc,
    key_admin_pb2,
    key_admin_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
)

SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"

#: Seconds the reload checks wait at most for the new certificate.
RELOAD_WAIT_SECONDS = 10.0

WIF = [sys.executable, "-c", "from wif.cli.main import main; main()"]
TLS_VARIABLES = ("WIF_TLS_CERT_FILE", "WIF_TLS_KEY_FILE", "WIF_TLS_CA_FILE")


@pytest.fixture(scope="module")
def tls_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("mtls-mesh")
    trust = REPO_ROOT / "config" / "dev-trust.yaml"
    try:
        endpoints = start_mesh(state, with_oidc=True, trust_config=trust, tls=True)
    except BaseException:
        stop_mesh(state)
        raise
    yield endpoints
    stop_mesh(state)


def dev_ca(mesh: dict[str, Any]) -> DevCa:
    return DevCa.load(Path(mesh["state_dir"]) / TLS_DIR)


def channel_with(
    mesh: dict[str, Any], service: str, key: Path, cert: Path, ca: Path
) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        ca.read_bytes(), key.read_bytes(), cert.read_bytes()
    )
    return grpc.aio.secure_channel(mesh[service]["grpc"], credentials)


def issue_request() -> its_pb2.IssueTokenRequest:
    return its_pb2.IssueTokenRequest(
        subject=SUBJECT,
        audiences=["payments-api"],
        scopes=["payments.read"],
        lifetime_seconds=3600,
    )


def decide_request() -> policy_pb2.DecideRequest:
    return policy_pb2.DecideRequest(
        principal=policy_pb2.Principal(subject=SUBJECT, pool_id="payments-ci"),
        action="exchange",
        audience="payments-api",
    )


def events(mesh: dict[str, Any], service: str, event: str) -> list[dict[str, Any]]:
    return [r for r in audit_records(mesh, service) if r["event"] == event]


def served_serial(mesh: dict[str, Any], service: str) -> int:
    """The serial of the certificate a new TLS connection to ``service`` sees."""
    host, _, port = mesh[service]["grpc"].rpartition(":")
    tls = mesh["tls"]
    context = ssl.create_default_context(cafile=tls["ca"])
    context.load_cert_chain(tls["operator_cert"], tls["operator_key"])
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as connection,
    ):
        der = connection.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_exchange_works_over_mtls(tls_mesh: dict[str, Any]) -> None:
    issued_before = len(events(tls_mesh, "its", "token.issued"))

    result = await exchange(
        tls_mesh,
        job_token(tls_mesh, "github-payments-deploy"),
        scopes=("payments.read",),
    )

    assert result.access_token.count(".") == 2
    assert len(events(tls_mesh, "its", "token.issued")) == issued_before + 1


async def test_plaintext_client_cannot_reach_the_its(tls_mesh: dict[str, Any]) -> None:
    async with grpc.aio.insecure_channel(tls_mesh["its"]["grpc"]) as channel:
        stub = its_pb2_grpc.IdentityTokenServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetJwks(its_pb2.GetJwksRequest(), timeout=5)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_client_without_certificate_cannot_reach_the_its(
    tls_mesh: dict[str, Any],
) -> None:
    async with mesh_channel(tls_mesh, "its", identity=None) as channel:
        stub = its_pb2_grpc.IdentityTokenServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetJwks(its_pb2.GetJwksRequest(), timeout=5)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_certificate_from_another_ca_fails_the_handshake(
    tls_mesh: dict[str, Any], tmp_path: Path
) -> None:
    # The impostor even carries the STS's SPIFFE ID; only the CA differs.
    impostor = DevCa.create("acme.example").issue("sts", tmp_path)
    issued_before = len(events(tls_mesh, "its", "token.issued"))

    async with channel_with(
        tls_mesh, "its", impostor.key, impostor.cert, Path(tls_mesh["tls"]["ca"])
    ) as channel:
        stub = its_pb2_grpc.IdentityTokenServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.IssueToken(issue_request(), timeout=5)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(events(tls_mesh, "its", "token.issued")) == issued_before


async def test_issue_token_refuses_a_caller_that_is_not_the_sts(
    tls_mesh: dict[str, Any], tmp_path: Path
) -> None:
    intruder = dev_ca(tls_mesh).issue("intruder", tmp_path)
    issued_before = len(events(tls_mesh, "its", "token.issued"))

    async with channel_with(
        tls_mesh, "its", intruder.key, intruder.cert, intruder.ca
    ) as channel:
        stub = its_pb2_grpc.IdentityTokenServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.IssueToken(issue_request(), timeout=5)

    code, reason, oauth_error = refusal(refused.value)
    assert (code, reason, oauth_error) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_NOT_ALLOWED",
        "unauthorized_client",
    )
    assert len(events(tls_mesh, "its", "token.issued")) == issued_before
    record = events(tls_mesh, "its", "rpc.refused")[-1]
    assert record["caller"] == "spiffe://acme.example/wif/intruder"
    assert record["method"] == "/wif.v1.IdentityTokenService/IssueToken"
    assert record["reason"] == "CALLER_NOT_ALLOWED"


@dataclass(frozen=True)
class AdminCase:
    identity: str
    allowed: bool


@pytest.mark.parametrize(
    "case",
    [
        AdminCase("operator", allowed=True),
        AdminCase("sts", allowed=False),
        AdminCase("policy", allowed=False),
    ],
    ids=lambda case: case.identity,
)
async def test_only_operators_list_keys(
    tls_mesh: dict[str, Any], case: AdminCase
) -> None:
    async with mesh_channel(tls_mesh, "its", identity=case.identity) as channel:
        stub = key_admin_pb2_grpc.KeyAdminServiceStub(channel)
        call = stub.ListKeys(key_admin_pb2.ListKeysRequest(), timeout=5)
        if case.allowed:
            assert (await call).keys
            return
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call

    assert refusal(refused.value)[:2] == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_NOT_ALLOWED",
    )
    record = events(tls_mesh, "its", "rpc.refused")[-1]
    assert record["caller"] == f"spiffe://acme.example/wif/{case.identity}"


@pytest.mark.parametrize(
    "case",
    [AdminCase("sts", allowed=True), AdminCase("operator", allowed=False)],
    ids=lambda case: case.identity,
)
async def test_only_the_sts_and_enforcers_ask_for_decisions(
    tls_mesh: dict[str, Any], case: AdminCase
) -> None:
    async with mesh_channel(tls_mesh, "policy", identity=case.identity) as channel:
        stub = policy_pb2_grpc.PolicyServiceStub(channel)
        call = stub.Decide(decide_request(), timeout=5)
        if case.allowed:
            await call
            return
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert events(tls_mesh, "policy", "rpc.refused")[-1]["method"] == (
        "/wif.v1.PolicyService/Decide"
    )


async def test_replaced_server_certificate_is_served_without_restart(
    tls_mesh: dict[str, Any],
) -> None:
    before = served_serial(tls_mesh, "its")
    folder = Path(tls_mesh["state_dir"]) / TLS_DIR

    dev_ca(tls_mesh).issue("its", folder)
    expected = x509.load_pem_x509_certificate(
        (folder / "its.pem").read_bytes()
    ).serial_number

    deadline = time.monotonic() + RELOAD_WAIT_SECONDS
    seen = served_serial(tls_mesh, "its")
    while seen != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        seen = served_serial(tls_mesh, "its")
    assert seen == expected != before
    # Same process, and the mesh still works end to end with the new certificate.
    result = await exchange(tls_mesh, job_token(tls_mesh, "github-payments-deploy"))
    assert result.access_token


async def test_replaced_client_certificate_is_used_without_restart(
    tls_mesh: dict[str, Any],
) -> None:
    folder = Path(tls_mesh["state_dir"]) / TLS_DIR
    dev_ca(tls_mesh).issue("sts", folder)
    serial = x509.load_pem_x509_certificate(
        (folder / "sts.pem").read_bytes()
    ).serial_number
    log = Path(tls_mesh["state_dir"]) / "logs" / "sts.log"

    deadline = time.monotonic() + RELOAD_WAIT_SECONDS
    reloaded = False
    while not reloaded and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        await exchange(tls_mesh, job_token(tls_mesh, "github-payments-deploy"))
        reloaded = any(
            "client certificate reloaded" in line and f'"serial": "{serial:x}"' in line
            for line in log.read_text().splitlines()
        )

    assert reloaded, "the STS did not pick up its new client certificate"
    result = await exchange(tls_mesh, job_token(tls_mesh, "github-payments-deploy"))
    assert result.access_token


def wif(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in TLS_VARIABLES}
    return subprocess.run(
        [*WIF, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env={**environ, "WIF_ITS_ADDRESS": "", "WIF_POLICY_ADDRESS": ""},
    )


def test_cli_uses_the_operator_certificate_of_the_local_mesh(
    tls_mesh: dict[str, Any],
) -> None:
    listed = wif("--json", "--state-dir", tls_mesh["state_dir"], "keys", "list")

    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["keys"]


def test_cli_with_a_service_certificate_is_refused(tls_mesh: dict[str, Any]) -> None:
    sts = tls_mesh["tls"]["service_certs"]["sts"]
    refused = wif(
        *("--state-dir", tls_mesh["state_dir"]),
        *("--tls-cert", sts["cert"], "--tls-key", sts["key"]),
        *("--tls-ca", tls_mesh["tls"]["ca"], "policy", "report"),
    )

    assert refused.returncode == 1
    assert refused.stderr.startswith("wif: permission_denied: ")
    assert refused.stderr.rstrip().endswith("(CALLER_NOT_ALLOWED)")


@dataclass
class Misdirected:
    """An STS of its own whose Policy address leads to the wrong service.

    What answers there is a real Policy service that presents the ITS's
    certificate: issued by the mesh's CA, valid, naming 127.0.0.1.
    """

    sts: Replica
    impostor: Replica
    sts_folder: Path
    impostor_folder: Path


@pytest.fixture
def misdirected(tls_mesh: dict[str, Any], tmp_path: Path) -> Iterator[Misdirected]:
    ca = dev_ca(tls_mesh)
    state = Path(tls_mesh["state_dir"])
    impostor_folder = tmp_path / "impostor"
    its = ca.issue("its", impostor_folder)
    # The Policy service's file names, holding the ITS's pair.
    shutil.copy(its.key, impostor_folder / "policy.key")
    shutil.copy(its.cert, impostor_folder / "policy.pem")
    sts = ca.issue("sts", tmp_path / "sts")
    common = {
        "WIF_ETCD_ENDPOINT": tls_mesh["etcd"],
        "WIF_TLS_CA_FILE": tls_mesh["tls"]["ca"],
    }
    started: list[Replica] = []
    try:
        impostor = start_replica(
            "policy",
            f"policy-impostor-{tmp_path.name}",
            state,
            {
                **common,
                "WIF_TLS_CERT_FILE": str(impostor_folder / "policy.pem"),
                "WIF_TLS_KEY_FILE": str(impostor_folder / "policy.key"),
            },
        )
        started.append(impostor)
        replica = start_replica(
            "sts",
            f"sts-misdirected-{tmp_path.name}",
            state,
            {
                **common,
                "WIF_TLS_CERT_FILE": str(sts.cert),
                "WIF_TLS_KEY_FILE": str(sts.key),
                "WIF_ITS_ADDRESS": tls_mesh["its"]["grpc"],
                "WIF_POLICY_ADDRESS": impostor.grpc,
                # Every exchange reaches the channel: no open circuit between.
                "WIF_STS_BREAKER_FAILURES": "1000",
            },
        )
        started.append(replica)
        yield Misdirected(replica, impostor, sts.cert.parent, impostor_folder)
    finally:
        for running in reversed(started):
            running.stop()


def decisions(replica: Replica) -> list[dict[str, Any]]:
    if not replica.audit_log.exists():
        return []
    records = [json.loads(line) for line in replica.audit_log.read_text().splitlines()]
    return [r for r in records if r["event"] == "policy.decision"]


async def exchange_through(
    mesh: dict[str, Any], sts: Replica
) -> tuple[grpc.StatusCode, str, str] | None:
    """Runs one exchange through ``sts``; returns its refusal, or None if issued."""
    try:
        await exchange(
            {**mesh, "sts": {"grpc": sts.grpc}},
            job_token(mesh, "github-payments-deploy"),
        )
    except grpc.aio.AioRpcError as exc:
        return refusal(exc)
    return None


POLICY_UNREACHED = (
    grpc.StatusCode.UNAVAILABLE,
    "POLICY_SERVICE_UNAVAILABLE",
    "temporarily_unavailable",
)


async def test_exchange_fails_closed_when_the_policy_service_is_another_service(
    tls_mesh: dict[str, Any], misdirected: Misdirected
) -> None:
    issued_before = len(events(tls_mesh, "its", "token.issued"))

    refused = await exchange_through(tls_mesh, misdirected.sts)

    assert refused == POLICY_UNREACHED
    assert len(events(tls_mesh, "its", "token.issued")) == issued_before
    assert decisions(misdirected.impostor) == []
    # Checked by address alone, as the tests' own channels are, the impostor
    # passes for the Policy service and answers the STS.
    by_address = {**tls_mesh, "policy": {"grpc": misdirected.impostor.grpc}}
    async with mesh_channel(by_address, "policy", identity="sts") as channel:
        stub = policy_pb2_grpc.PolicyServiceStub(channel)
        await stub.Decide(decide_request(), timeout=5)
    assert len(decisions(misdirected.impostor)) == 1


async def test_peer_names_are_checked_after_certificates_rotate(
    tls_mesh: dict[str, Any], misdirected: Misdirected
) -> None:
    ca = dev_ca(tls_mesh)
    log = Path(tls_mesh["state_dir"]) / "logs" / f"{misdirected.sts.name}.log"

    # The STS's own certificate rotates: the channel it re-opens still
    # checks the Policy service's name.
    ca.issue("sts", misdirected.sts_folder)
    serial = x509.load_pem_x509_certificate(
        (misdirected.sts_folder / "sts.pem").read_bytes()
    ).serial_number
    deadline = time.monotonic() + RELOAD_WAIT_SECONDS
    reloaded = False
    while not reloaded and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        assert await exchange_through(tls_mesh, misdirected.sts) == POLICY_UNREACHED
        reloaded = any(
            "client certificate reloaded" in line and f'"serial": "{serial:x}"' in line
            for line in log.read_text().splitlines()
        )
    assert reloaded, "the STS did not pick up its new client certificate"
    assert await exchange_through(tls_mesh, misdirected.sts) == POLICY_UNREACHED

    # The impostor's files rotate to a Policy service certificate: the next
    # connection carries the right name, and the same STS gets its answers.
    ca.issue("policy", misdirected.impostor_folder)
    deadline = time.monotonic() + RELOAD_WAIT_SECONDS
    refused = await exchange_through(tls_mesh, misdirected.sts)
    while refused is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        refused = await exchange_through(tls_mesh, misdirected.sts)
    assert refused is None
    assert len(decisions(misdirected.impostor)) == 1
