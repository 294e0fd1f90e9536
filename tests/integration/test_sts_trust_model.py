"""Delegation, downscoping, isolation, explanation, replay and revocation in the STS.

The module runs its own mesh with ``sts_trust.yaml``: the CI provider (the
test OpenID provider, one-time tokens) in ``payments-ci`` and a second
OpenID provider instance playing a Kubernetes cluster in the sibling pool
``payments-k8s``. A second STS replica shares the mesh's etcd.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.mesh import (
    MESH_AUDIENCE,
    REPO_ROOT,
    TYPE_JWT,
    bearer,
    caller_token,
    refusal,
)
from tests.support.replicas import Replica, start_replica
from wif.dev.mesh import start_mesh, stop_mesh
from wif.dev.oidc import (
    OidcProvider,
    fetch_job_token,
    job_credentials,
    start_oidc_provider,
)
from wif.revocations import subject_key
from wif.store import EtcdStore
from wif.tokens import SigningKey, parse_compact
from wif.v1 import sts_pb2, sts_pb2_grpc

CI_SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"
K8S_SUBJECT = "spiffe://acme.example/payments-k8s/ns/payments/sa/payments-api"
TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
PROPAGATION_POLLS = 100


@pytest.fixture(scope="module")
def k8s_provider() -> Iterator[OidcProvider]:
    with start_oidc_provider(REPO_ROOT) as provider:
        yield provider


INLINE_ISSUER = "https://inline.acme.example"
INLINE_KEY = SigningKey.generate("ES256")


def _inline_provider() -> str:
    """A provider with inline keys whose private half this module holds."""
    jwk = json.dumps(INLINE_KEY.public_jwk())
    return f"""
  - id: inline
    pool: payments-ci
    issuer: {INLINE_ISSUER}
    jwks: {{keys: [{jwk}]}}
    audiences: ["{MESH_AUDIENCE}"]
    algorithms: [ES256]
    accept_all_tokens_from_issuer: true
    mapping: {{subject: "'inline/' + assertion.sub"}}
"""


@pytest.fixture(scope="module")
def sts_mesh(
    tmp_path_factory: pytest.TempPathFactory, k8s_provider: OidcProvider
) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("sts-mesh")
    text = Path(__file__).with_name("sts_trust.yaml").read_text()
    trust = state / "trust.yaml"
    trust.write_text(text.replace("\naudiences:", _inline_provider() + "\naudiences:"))
    os.environ["WIF_TEST_K8S_ISSUER"] = k8s_provider.issuer
    try:
        endpoints = start_mesh(state, with_oidc=True, trust_config=trust)
    except BaseException:
        stop_mesh(state)
        raise
    finally:
        os.environ.pop("WIF_TEST_K8S_ISSUER", None)
    endpoints["k8s_issuer"] = k8s_provider.issuer
    yield endpoints
    stop_mesh(state)


@pytest.fixture(scope="module")
def second_sts(sts_mesh: dict[str, Any]) -> Iterator[dict[str, str]]:
    """A second STS process against the same etcd, ITS and Policy service."""
    state = Path(sts_mesh["state_dir"])
    replica: Replica = start_replica(
        "sts",
        "sts-2",
        state,
        {
            "WIF_ETCD_ENDPOINT": sts_mesh["etcd"],
            "WIF_ITS_ADDRESS": sts_mesh["its"]["grpc"],
            "WIF_POLICY_ADDRESS": sts_mesh["policy"]["grpc"],
        },
    )
    ready = json.loads((state / "sts-2.ready").read_text())
    yield {"grpc": replica.grpc, "http": f"http://127.0.0.1:{ready['http_port']}"}
    replica.stop()


@pytest.fixture
async def sts(
    sts_mesh: dict[str, Any],
) -> AsyncIterator[sts_pb2_grpc.SecurityTokenServiceStub]:
    async with grpc.aio.insecure_channel(sts_mesh["sts"]["grpc"]) as channel:
        yield sts_pb2_grpc.SecurityTokenServiceStub(channel)


@pytest.fixture
async def sts2(
    second_sts: dict[str, str],
) -> AsyncIterator[sts_pb2_grpc.SecurityTokenServiceStub]:
    async with grpc.aio.insecure_channel(second_sts["grpc"]) as channel:
        yield sts_pb2_grpc.SecurityTokenServiceStub(channel)


def ci_token(mesh: dict[str, Any], job: str = "github-payments-deploy") -> str:
    client_id, secret = job_credentials(REPO_ROOT, job)
    return fetch_job_token(mesh["oidc"]["issuer"], client_id, secret, MESH_AUDIENCE)


def k8s_token(mesh: dict[str, Any]) -> str:
    client_id, secret = job_credentials(REPO_ROOT, "k8s-payments-api")
    return fetch_job_token(mesh["k8s_issuer"], client_id, secret, MESH_AUDIENCE)


def ask(
    subject: str,
    audience: str = "payments-api",
    *,
    actor: str = "",
    scopes: tuple[str, ...] = (),
    trim: bool = False,
    subject_type: str = TYPE_JWT,
) -> sts_pb2.ExchangeTokenRequest:
    return sts_pb2.ExchangeTokenRequest(
        subject_token=subject,
        subject_token_type=subject_type,
        actor_token=actor,
        actor_token_type=TYPE_JWT if actor else "",
        audience=[audience],
        scope=list(scopes),
        allow_scope_trimming=trim,
    )


async def refused(call: Any) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return refusal(caught.value)


def claims_of(token: str) -> dict[str, Any]:
    return parse_compact(token).claims


def post_form(
    url: str, fields: list[tuple[str, str]], caller: str = ""
) -> tuple[int, dict[str, Any]]:
    """POSTs a form, as ``caller`` (a mesh token for the STS) when given."""
    body = urllib.parse.urlencode(fields).encode()
    headers = bearer(caller) if caller else {}
    request = urllib.request.Request(  # noqa: S310
        url, data=body, method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.headers["Cache-Control"] == "no-store"
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        cache_control = error.headers["Cache-Control"]
        status, body = error.code, json.loads(error.read())
    assert cache_control == "no-store"
    return status, body


# Delegation ---------------------------------------------------------------


async def test_actor_token_becomes_the_act_claim_when_may_act_names_it(
    sts_mesh: dict[str, Any], sts: sts_pb2_grpc.SecurityTokenServiceStub
) -> None:
    subject = await asyncio.to_thread(ci_token, sts_mesh, "github-delegable")
    actor = await asyncio.to_thread(k8s_token, sts_mesh)

    issued = await sts.ExchangeToken(ask(subject, actor=actor), timeout=10)

    claims = claims_of(issued.access_token)
    assert claims["sub"] == CI_SUBJECT
    assert claims["act"] == {"sub": K8S_SUBJECT}
    assert "may_act" not in claims


async def test_actor_not_named_by_may_act_is_refused(
    sts_mesh: dict[str, Any], sts: sts_pb2_grpc.SecurityTokenServiceStub
) -> None:
    subject = await asyncio.to_thread(ci_token, sts_mesh, "github-delegable-elsewhere")
    actor = await asyncio.to_thread(k8s_token, sts_mesh)

    assert await refused(sts.ExchangeToken(ask(subject, actor=actor), timeout=10)) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "ACTOR_NOT_ALLOWED",
        "invalid_grant",
    )


async def test_foreign_act_claim_is_not_carried(
    sts_mesh: dict[str, Any], sts: sts_pb2_grpc.SecurityTokenServiceStub
) -> None:
    subject = await asyncio.to_thread(ci_token, sts_mesh, "github-with-foreign-act")
    actor = await asyncio.to_thread(k8s_token, sts_mesh)

    issued = await sts.ExchangeToken(ask(subject, actor=actor), timeout=10)

    assert claims_of(issued.access_token)["act"] == {"sub": K8S_SUBJECT}


async def test_mesh_token_chain_is_nested_and_limited_by_policy_and_cap(
    sts_mesh: dict[str, Any], sts: sts_pb2_grpc.SecurityTokenServiceStub
) -> None:
    subject = await asyncio.to_thread(ci_token, sts_mesh, "github-delegable")
    actor = await asyncio.to_thread(k8s_token, sts_mesh)
    first = await sts.ExchangeToken(ask(subject, actor=actor), timeout=10)

    alone = await refused(sts.ExchangeToken(ask(first.access_token), timeout=10))
    deep_for_payments = await refused(
        sts.ExchangeToken(ask(first.access_token, actor=actor), timeout=10)
    )
    token, depths = first.access_token, [1]
    for _ in range(6):  # the hard cap is 5 actors
        try:
            hop = await sts.ExchangeToken(ask(token, "ledger", actor=actor), timeout=10)
        except grpc.aio.AioRpcError as exc:
            too_deep = refusal(exc)
            break
        token = hop.access_token
        depths.append(len(_chain(claims_of(token)["act"])))
    as_actor = await refused(
        sts.ExchangeToken(
            ask(actor, "cluster-api", actor=first.access_token), timeout=10
        )
    )

    assert as_actor == (
        grpc.StatusCode.UNAUTHENTICATED,
        "MESH_TOKEN_AS_ACTOR",
        "invalid_grant",
    )
    assert alone == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "ACTOR_REQUIRED",
        "invalid_request",
    )
    assert deep_for_payments == (
        grpc.StatusCode.PERMISSION_DENIED,
        "POLICY_DENIED",
        "invalid_target",
    )
    assert depths == [1, 2, 3, 4, 5]
    assert too_deep == (
        grpc.StatusCode.UNAUTHENTICATED,
        "ACTOR_CHAIN_TOO_DEEP",
        "invalid_grant",
    )
    assert claims_of(token)["sub"] == CI_SUBJECT


def _chain(act: dict[str, Any] | None) -> list[str]:
    chain = []
    while act:
        chain.append(act["sub"])
        act = act.get("act")
    return chain


# Downscoping and isolation ------------------------------------------------


async def test_scope_beyond_the_target_is_refused_unless_trimming_is_asked(
    sts_mesh: dict[str, Any], sts: sts_pb2_grpc.SecurityTokenServiceStub
) -> None:
    scopes = ("payments.read", "ledger.read")
    wide = await asyncio.to_thread(ci_token, sts_mesh)
    trimmed_token = await asyncio.to_thread(ci_token, sts_mesh)

    refusal_ = await refused(sts.ExchangeToken(ask(wide, scopes=scopes), timeout=10))
    trimmed = await sts.ExchangeToken(
        ask(trimmed_token, scopes=scopes, trim=True), timeout=10
    )

    assert refusal_ == (
        grpc.StatusCode.PERMISSION_DENIED,
        "SCOPE_NOT_OFFERED",
        "invalid_scope",
    )
    assert list(trimmed.scope) == ["payments.read"]
    assert claims_of(trimmed.access_token)["scope"] == "payments.read"
    assert claims_of(trimmed.access_token)["aud"] == "payments-api"


def test_http_trimming_parameter_reports_the_granted_scope(
    sts_mesh: dict[str, Any],
) -> None:
    fields = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token", ci_token(sts_mesh)),
        ("subject_token_type", TYPE_JWT),
        ("audience", "payments-api"),
        ("scope", "payments.read cluster.read"),
        ("allow_scope_trimming", "true"),
    ]
    status, body = post_form(sts_mesh["sts"]["http"] + "/token", fields)

    assert status == 200
    assert body["scope"] == "payments.read"
    assert body["token_type"] == "Bearer"


async def test_sibling_pools_cannot_reach_each_others_audiences(
    sts_mesh: dict[str, Any], sts: sts_pb2_grpc.SecurityTokenServiceStub
) -> None:
    ci = await asyncio.to_thread(ci_token, sts_mesh)
    k8s = await asyncio.to_thread(k8s_token, sts_mesh)
    k8s_own = await asyncio.to_thread(k8s_token, sts_mesh)

    ci_to_cluster = await refused(sts.ExchangeToken(ask(ci, "cluster-api"), timeout=10))
    k8s_to_payments = await refused(sts.ExchangeToken(ask(k8s), timeout=10))
    own = await sts.ExchangeToken(ask(k8s_own, "cluster-api"), timeout=10)

    denied = (grpc.StatusCode.PERMISSION_DENIED, "POLICY_DENIED", "invalid_target")
    assert ci_to_cluster == denied
    assert k8s_to_payments == denied
    assert claims_of(own.access_token)["sub"] == K8S_SUBJECT


async def test_wrong_token_kind_is_refused(
    sts_mesh: dict[str, Any], sts: sts_pb2_grpc.SecurityTokenServiceStub
) -> None:
    access_token = await asyncio.to_thread(k8s_token, sts_mesh)
    plain_jwt = await asyncio.to_thread(ci_token, sts_mesh)
    id_type = "urn:ietf:params:oauth:token-type:id_token"
    as_access = await asyncio.to_thread(k8s_token, sts_mesh)

    as_id = await refused(
        sts.ExchangeToken(
            ask(access_token, "cluster-api", subject_type=id_type), timeout=10
        )
    )
    jwt_as_access = await refused(
        sts.ExchangeToken(ask(plain_jwt, subject_type=TYPE_ACCESS_TOKEN), timeout=10)
    )
    accepted = await sts.ExchangeToken(
        ask(as_access, "cluster-api", subject_type=TYPE_ACCESS_TOKEN), timeout=10
    )

    wrong = (grpc.StatusCode.UNAUTHENTICATED, "WRONG_TOKEN_KIND", "invalid_grant")
    assert as_id == wrong
    assert jwt_as_access == wrong
    assert accepted.token_type == "Bearer"


# Explanation --------------------------------------------------------------


async def test_explain_reports_every_check_and_issues_nothing(
    sts_mesh: dict[str, Any], sts: sts_pb2_grpc.SecurityTokenServiceStub
) -> None:
    token = await asyncio.to_thread(ci_token, sts_mesh)

    explained = await sts.ExplainExchange(
        sts_pb2.ExplainExchangeRequest(exchange=ask(token, scopes=("payments.read",))),
        timeout=10,
    )
    issued = await sts.ExchangeToken(ask(token), timeout=10)

    outcomes = {c.name: c.outcome for c in explained.checks}
    assert explained.would_issue
    assert explained.subject == CI_SUBJECT
    assert list(explained.audience) == ["payments-api"]
    assert list(explained.scope) == ["payments.read"]
    for name in ("issuer", "signature", "time", "audience", "condition", "mapping"):
        assert outcomes[name] == sts_pb2.CHECK_OUTCOME_PASSED, name
    assert outcomes["policy"] == sts_pb2.CHECK_OUTCOME_PASSED
    assert outcomes["replay"] == sts_pb2.CHECK_OUTCOME_PASSED
    assert outcomes["actor.signature"] == sts_pb2.CHECK_OUTCOME_SKIPPED
    assert issued.access_token  # the explanation did not use the one-time token


async def test_explain_names_the_failed_check_without_leaking_configuration(
    sts_mesh: dict[str, Any], sts: sts_pb2_grpc.SecurityTokenServiceStub
) -> None:
    token = await asyncio.to_thread(ci_token, sts_mesh, "github-untrusted-branch")

    explained = await sts.ExplainExchange(
        sts_pb2.ExplainExchangeRequest(exchange=ask(token)), timeout=10
    )

    failed = [c for c in explained.checks if c.outcome == sts_pb2.CHECK_OUTCOME_FAILED]
    assert not explained.would_issue
    assert (explained.reason, explained.oauth_error) == (
        "ATTRIBUTE_CONDITION_FAILED",
        "invalid_grant",
    )
    assert [c.name for c in failed] == ["condition"]
    after = [c.name for c in explained.checks][
        [c.name for c in explained.checks].index("condition") + 1 :
    ]
    outcomes = {c.name: c.outcome for c in explained.checks}
    assert all(outcomes[name] == sts_pb2.CHECK_OUTCOME_SKIPPED for name in after)
    text = str(explained)
    assert sts_mesh["k8s_issuer"] not in text
    assert "refs/heads/main" not in text  # the condition's text stays private
    assert "permit" not in text


# Replay and revocation across replicas ------------------------------------


async def test_one_time_token_is_refused_on_another_replica(
    sts_mesh: dict[str, Any],
    sts: sts_pb2_grpc.SecurityTokenServiceStub,
    sts2: sts_pb2_grpc.SecurityTokenServiceStub,
) -> None:
    token = await asyncio.to_thread(ci_token, sts_mesh)

    await sts.ExchangeToken(ask(token), timeout=10)
    again_here = await refused(sts.ExchangeToken(ask(token), timeout=10))
    there = await refused(sts2.ExchangeToken(ask(token), timeout=10))

    replayed = (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REPLAYED", "invalid_grant")
    assert again_here == replayed
    assert there == replayed


async def test_revocation_through_one_replica_is_honoured_by_another(
    sts_mesh: dict[str, Any],
    second_sts: dict[str, str],
    sts: sts_pb2_grpc.SecurityTokenServiceStub,
    sts2: sts_pb2_grpc.SecurityTokenServiceStub,
) -> None:
    token = await asyncio.to_thread(ci_token, sts_mesh)
    issued = await sts.ExchangeToken(ask(token), timeout=10)
    check = sts_pb2.ValidateTokenRequest(token=issued.access_token)
    valid_there = await sts2.ValidateToken(check, timeout=10)  # now cached there
    caller = await caller_token(sts_mesh)

    status, body = await asyncio.to_thread(
        post_form,
        sts_mesh["sts"]["http"] + "/revoke",
        [("token", issued.access_token), ("token_type_hint", "access_token")],
        caller,
    )
    for _ in range(PROPAGATION_POLLS):
        try:
            await sts2.ValidateToken(check, timeout=10)
        except grpc.aio.AioRpcError as exc:
            outcome = refusal(exc)
            break
        await asyncio.sleep(0.02)
    _, introspected = await asyncio.to_thread(
        post_form,
        second_sts["http"] + "/introspect",
        [("token", issued.access_token)],
        caller,
    )

    assert valid_there.token_id == issued.token_id
    assert (status, body) == (200, {})
    assert outcome == (
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_REVOKED",
        "invalid_token",
    )
    assert introspected == {"active": False}


async def test_introspection_answers_claims_or_inactive_only(
    sts_mesh: dict[str, Any],
) -> None:
    fields = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token", await asyncio.to_thread(ci_token, sts_mesh)),
        ("subject_token_type", TYPE_JWT),
        ("audience", "payments-api"),
    ]
    caller = await caller_token(sts_mesh)
    foreign_token = await asyncio.to_thread(ci_token, sts_mesh)

    def ask_sts() -> list[tuple[int, dict[str, Any]]]:
        _, issued = post_form(sts_mesh["sts"]["http"] + "/token", fields)
        url = sts_mesh["sts"]["http"] + "/introspect"
        return [
            post_form(url, [("token", issued["access_token"])], caller),
            post_form(url, [("token", "not.a.token")], caller),
            post_form(url, [("token", foreign_token)], caller),
            post_form(
                sts_mesh["sts"]["http"] + "/revoke", [("token", "x.y.z")], caller
            ),
            post_form(url, [], caller),
        ]

    active, garbage, foreign, unknown, missing = await asyncio.to_thread(ask_sts)

    assert active[0] == 200
    assert active[1]["active"] is True
    assert active[1]["sub"] == CI_SUBJECT
    assert active[1]["aud"] == "payments-api"
    assert garbage == (200, {"active": False})
    assert foreign == (200, {"active": False})
    assert unknown == (200, {})
    assert missing[0] == 400
    assert missing[1]["error"] == "invalid_request"


async def test_cli_subject_revocation_stops_validation_and_exchange(
    sts_mesh: dict[str, Any],
    sts: sts_pb2_grpc.SecurityTokenServiceStub,
    sts2: sts_pb2_grpc.SecurityTokenServiceStub,
) -> None:
    actor = await asyncio.to_thread(k8s_token, sts_mesh)
    issued = await sts.ExchangeToken(ask(actor, "cluster-api"), timeout=10)
    later = await asyncio.to_thread(k8s_token, sts_mesh)
    check = sts_pb2.ValidateTokensRequest(
        tokens=[
            sts_pb2.ValidateTokenRequest(token=issued.access_token),
            sts_pb2.ValidateTokenRequest(token="not-a-token"),
        ]
    )
    before = await sts2.ValidateTokens(check, timeout=10)

    wif = str(Path(sys.executable).parent / "wif")
    command = [wif, "--etcd", sts_mesh["etcd"], "token", "revoke"]
    command += ["--subject", K8S_SUBJECT]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, timeout=60, check=False
    )
    try:
        for _ in range(PROPAGATION_POLLS):
            after = await sts2.ValidateTokens(check, timeout=10)
            if not after.results[0].valid:
                break
            await asyncio.sleep(0.02)
        exchange_refusal = await refused(
            sts2.ExchangeToken(ask(later, "cluster-api"), timeout=10)
        )
    finally:
        async with EtcdStore(sts_mesh["etcd"]) as store:
            await store.delete(subject_key(K8S_SUBJECT))

    assert done.returncode == 0, done.stderr.decode()
    assert [r.valid for r in before.results] == [True, False]
    assert before.results[1].reason == "MALFORMED_TOKEN"
    assert before.results[0].token.subject == K8S_SUBJECT
    assert after.results[0].reason == "SUBJECT_REVOKED"
    assert exchange_refusal == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SUBJECT_REVOKED",
        "invalid_grant",
    )


# Hostile claims with a real signature -------------------------------------


def inline_token(**changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": INLINE_ISSUER,
        "sub": "worker",
        "aud": MESH_AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": f"inline-{time.monotonic_ns()}",
    }
    claims.update(changes)
    return INLINE_KEY.sign({k: v for k, v in claims.items() if v is not None})


@dataclass(frozen=True)
class ClaimCase:
    name: str
    changes: dict[str, Any]
    reason: str


CLAIM_CASES = [
    ClaimCase(
        "issuer with a trailing slash", {"iss": INLINE_ISSUER + "/"}, "UNKNOWN_ISSUER"
    ),
    ClaimCase("issuer in upper case", {"iss": INLINE_ISSUER.upper()}, "UNKNOWN_ISSUER"),
    ClaimCase(
        "audience with a trailing slash",
        {"aud": MESH_AUDIENCE + "/"},
        "AUDIENCE_MISMATCH",
    ),
    ClaimCase(
        "audience as a prefix", {"aud": MESH_AUDIENCE + ".evil"}, "AUDIENCE_MISMATCH"
    ),
    ClaimCase("audience in a list of others", {"aud": ["a", "b"]}, "AUDIENCE_MISMATCH"),
    ClaimCase("audience missing", {"aud": None}, "MISSING_CLAIM"),
    ClaimCase(
        "exp as a string", {"exp": str(int(time.time()) + 300)}, "INVALID_CLAIM_TYPE"
    ),
    ClaimCase("exp as a boolean", {"exp": True}, "INVALID_CLAIM_TYPE"),
    ClaimCase("nbf as a list", {"nbf": [1]}, "INVALID_CLAIM_TYPE"),
    ClaimCase("iat missing", {"iat": None}, "MISSING_CLAIM"),
    ClaimCase(
        "iat in the future", {"iat": int(time.time()) + 3600}, "TOKEN_ISSUED_IN_FUTURE"
    ),
    ClaimCase("sub as a number", {"sub": 7}, "INVALID_CLAIM_TYPE"),
]


@pytest.mark.parametrize("case", CLAIM_CASES, ids=lambda case: case.name)
async def test_signed_token_with_hostile_claims_is_refused_on_both_surfaces(
    sts_mesh: dict[str, Any],
    sts: sts_pb2_grpc.SecurityTokenServiceStub,
    case: ClaimCase,
) -> None:
    token = inline_token(**case.changes)

    over_grpc = await refused(sts.ExchangeToken(ask(token), timeout=10))
    status, body = await asyncio.to_thread(
        post_form,
        sts_mesh["sts"]["http"] + "/token",
        [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", token),
            ("subject_token_type", TYPE_JWT),
            ("audience", "payments-api"),
        ],
    )

    assert over_grpc == (grpc.StatusCode.UNAUTHENTICATED, case.reason, "invalid_grant")
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_inline_provider_token_is_exchanged(
    sts: sts_pb2_grpc.SecurityTokenServiceStub,
) -> None:
    issued = await sts.ExchangeToken(ask(inline_token()), timeout=10)

    assert claims_of(issued.access_token)["sub"] == (
        "spiffe://acme.example/payments-ci/inline/worker"
    )
