"""Two of each service against one etcd on one machine.

The module's own mesh (etcd, ITS, Policy, STS and the OpenID provider) is
the first chain; a second ITS, Policy service and STS, the STS wired to the
second ITS and Policy service, are the second. They share nothing but etcd.
That exactly one ITS replica leads key rotation is shown in
test_key_lifecycle.py, and revocation between two STS replicas sharing one
ITS in test_sts_trust_model.py; here every hop differs between the chains.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.mesh import STS_AUDIENCE, TYPE_JWT, bearer, job_token, refusal
from tests.support.replicas import Replica, start_replica
from wif.dev.mesh import apply_config, start_mesh, stop_mesh
from wif.v1 import its_pb2, its_pb2_grpc, sts_pb2, sts_pb2_grpc

NEW_AUDIENCE = "reports-api"
SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"
PROPAGATION_POLLS = 200
POLL_SECONDS = 0.05


@dataclass
class Chain:
    """One STS, with the ITS and Policy service it calls."""

    its: str
    policy: str
    sts: str
    sts_http: str


@dataclass
class Replicated:
    endpoints: dict[str, Any]
    chains: list[Chain] = field(default_factory=list)
    replicas: list[Replica] = field(default_factory=list)


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    state = tmp_path_factory.mktemp("replicas-mesh")
    try:
        endpoints = start_mesh(state, with_oidc=True)
    except BaseException:
        stop_mesh(state)
        raise
    mesh = Replicated(endpoints)
    mesh.chains.append(
        Chain(
            endpoints["its"]["grpc"],
            endpoints["policy"]["grpc"],
            endpoints["sts"]["grpc"],
            endpoints["sts"]["http"],
        )
    )
    shared = {
        "WIF_ETCD_ENDPOINT": endpoints["etcd"],
        "WIF_KEK_FILE": str(state / "kek"),
    }
    try:
        its = start_replica("its", "its-2", state, shared)
        mesh.replicas.append(its)
        policy = start_replica("policy", "policy-2", state, shared)
        mesh.replicas.append(policy)
        wiring = {"WIF_ITS_ADDRESS": its.grpc, "WIF_POLICY_ADDRESS": policy.grpc}
        sts = start_replica("sts", "sts-2", state, {**shared, **wiring})
        mesh.replicas.append(sts)
        ready = json.loads((state / "sts-2.ready").read_text())
        sts_http = f"http://127.0.0.1:{ready['http_port']}"
        mesh.chains.append(Chain(its.grpc, policy.grpc, sts.grpc, sts_http))
        yield mesh
    finally:
        for replica in reversed(mesh.replicas):
            replica.stop()
        stop_mesh(state)


@pytest.fixture
async def sts(replicated: Replicated) -> AsyncIterator[list[Any]]:
    channels = [grpc.aio.insecure_channel(c.sts) for c in replicated.chains]
    yield [sts_pb2_grpc.SecurityTokenServiceStub(c) for c in channels]
    for channel in channels:
        await channel.close()


@pytest.fixture
async def its(replicated: Replicated) -> AsyncIterator[list[Any]]:
    channels = [grpc.aio.insecure_channel(c.its) for c in replicated.chains]
    yield [its_pb2_grpc.IdentityTokenServiceStub(c) for c in channels]
    for channel in channels:
        await channel.close()


def _ask(token: str, audience: str = "payments-api") -> sts_pb2.ExchangeTokenRequest:
    return sts_pb2.ExchangeTokenRequest(
        subject_token=token, subject_token_type=TYPE_JWT, audience=[audience]
    )


async def _platform_token(replicated: Replicated) -> str:
    return await asyncio.to_thread(
        job_token, replicated.endpoints, "github-payments-deploy"
    )


async def test_a_token_from_either_sts_validates_at_the_other(
    replicated: Replicated, sts: list[Any]
) -> None:
    issued = [
        await stub.ExchangeToken(_ask(await _platform_token(replicated)), timeout=10)
        for stub in sts
    ]

    crossed = [
        await validator.ValidateToken(
            sts_pb2.ValidateTokenRequest(token=token.access_token), timeout=10
        )
        for validator, token in zip(reversed(sts), issued, strict=True)
    ]

    assert [v.token_id for v in crossed] == [t.token_id for t in issued]
    assert {v.subject for v in crossed} == {SUBJECT}


def _with_new_audience(text: str) -> str:
    audience = f"""  - id: {NEW_AUDIENCE}
    scopes: [reports.read]
  - id: ledger-admin
"""
    policy = f"""  - id: payments-reach-reports
    cedar: |
      permit (
        principal in Pool::"payments",
        action == Action::"exchange",
        resource == Audience::"{NEW_AUDIENCE}"
      );
"""
    assert "  - id: ledger-admin\n" in text
    return text.replace("  - id: ledger-admin\n", audience, 1) + policy


async def _issue_for_new_audience(its: Any) -> bool:
    request = its_pb2.IssueTokenRequest(
        subject=SUBJECT, audiences=[NEW_AUDIENCE], lifetime_seconds=3600
    )
    try:
        await its.IssueToken(request, timeout=10)
    except grpc.aio.AioRpcError:
        return False
    return True


async def _exchange_for_new_audience(sts: Any, token: str) -> bool:
    try:
        await sts.ExchangeToken(_ask(token, NEW_AUDIENCE), timeout=10)
    except grpc.aio.AioRpcError:
        return False
    return True


async def test_a_configuration_change_reaches_all_six_services(
    replicated: Replicated, sts: list[Any], its: list[Any]
) -> None:
    endpoints = replicated.endpoints
    original = Path(endpoints["trust_config"])
    changed = Path(endpoints["state_dir"]) / "trust-reports.yaml"
    changed.write_text(_with_new_audience(original.read_text()))
    token = await _platform_token(replicated)
    before = [await _issue_for_new_audience(stub) for stub in its]

    await apply_config(endpoints["etcd"], changed, endpoints["config_variables"])
    pending = {("its", i) for i in range(2)} | {("sts", i) for i in range(2)}
    for _ in range(PROPAGATION_POLLS):
        for kind, index in sorted(pending):
            if kind == "its":
                done = await _issue_for_new_audience(its[index])
            else:
                # The exchange needs the audience at the STS, a permit at its
                # Policy service and the audience again at its ITS.
                done = await _exchange_for_new_audience(sts[index], token)
            if done:
                pending.discard((kind, index))
        if not pending:
            break
        await asyncio.sleep(POLL_SECONDS)

    assert before == [False, False]
    assert pending == set()


def _post_form(url: str, fields: list[tuple[str, str]], caller: str) -> int:
    body = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(  # noqa: S310
        url, data=body, method="POST", headers=bearer(caller)
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return int(response.status)


async def test_a_revocation_at_the_second_sts_is_honoured_by_the_first(
    replicated: Replicated, sts: list[Any]
) -> None:
    token = await _platform_token(replicated)
    issued = await sts[0].ExchangeToken(_ask(token), timeout=10)
    check = sts_pb2.ValidateTokenRequest(token=issued.access_token)
    await sts[0].ValidateToken(check, timeout=10)
    # The workload revokes its own token, so its caller token needs no scope.
    own = await sts[1].ExchangeToken(
        _ask(await _platform_token(replicated), STS_AUDIENCE), timeout=10
    )

    revoke_url = replicated.chains[1].sts_http + "/revoke"
    status = await asyncio.to_thread(
        _post_form, revoke_url, [("token", issued.access_token)], own.access_token
    )
    outcome = None
    for _ in range(PROPAGATION_POLLS):
        try:
            await sts[0].ValidateToken(check, timeout=10)
        except grpc.aio.AioRpcError as exc:
            outcome = refusal(exc)
            break
        await asyncio.sleep(POLL_SECONDS)

    assert status == 200
    assert outcome == (
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_REVOKED",
        "invalid_token",
    )
