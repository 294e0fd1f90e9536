"""Who may call the STS's /introspect (RFC 7662) and /revoke (RFC 7009).

Callers authenticate with a mesh token for the STS's own audience, got by an
ordinary exchange through the dev trust configuration: the mesh operations
job may ask for both token administration scopes, a payments job for none
(which still lets it revoke its own tokens). Each refusal case asserts the
status, the RFC error, the challenge, what the answer did not reveal, what
was not revoked, and the audit record.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from services.sts.client_auth import INTROSPECT_SCOPE, REVOKE_SCOPE
from tests.support.mesh import (
    OPERATIONS_JOB,
    STS_AUDIENCE,
    audit_records,
    bearer,
    caller_token,
    exchange,
    job_token,
    mesh_signed,
    post_to_sts,
    refusal,
    sts_stub,
)
from wif.tokens import parse_compact
from wif.v1 import sts_pb2

PAYMENTS_JOB = "github-payments-deploy"
OPERATIONS_SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/mesh-operations"
PAYMENTS_SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"
INTROSPECT = "/introspect"
REVOKE = "/revoke"
EVENTS = {INTROSPECT: "token.introspect", REVOKE: "token.revoke"}
#: How long a record written without waiting may take to reach the file.
AUDIT_WAIT_SECONDS = 5.0
#: Comfortably more than the audit log holds an unawaited record back (10 ms).
UNAWAITED_SETTLE_SECONDS = 0.2

Mesh = dict[str, Any]
Headers = dict[str, str]


async def _target(mesh: Mesh, job: str = OPERATIONS_JOB) -> str:
    """A fresh payments-api token of ``job``: the token asked about."""
    platform = await asyncio.to_thread(job_token, mesh, job)
    return (await exchange(mesh, platform)).access_token


async def _validation(mesh: Mesh, token: str) -> str:
    """``valid`` or the reason the STS refuses ``token`` now."""
    channel, stub = sts_stub(mesh)
    async with channel:
        try:
            request = sts_pb2.ValidateTokenRequest(token=token)
            await stub.ValidateToken(request, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return refusal(exc)[1]
    return "valid"


async def _post(
    mesh: Mesh, path: str, token: str, headers: Headers
) -> tuple[int, Headers, dict[str, Any]]:
    return await asyncio.to_thread(post_to_sts, mesh, path, [("token", token)], headers)


async def _refusals(mesh: Mesh, path: str, reason: str) -> int:
    """Refusal records so far, once those written without waiting for the
    disk (refusals hand nothing out) have had time to land."""
    await asyncio.sleep(UNAWAITED_SETTLE_SECONDS)
    return sum(
        1
        for r in audit_records(mesh, "sts")
        if (r["event"], r["outcome"], r.get("reason"))
        == (EVENTS[path], "refused", reason)
    )


async def _wait_for_record(mesh: Mesh, **fields: Any) -> dict[str, Any]:
    """The first STS audit record holding ``fields``, waiting for a record
    written without waiting for the disk."""
    deadline = time.monotonic() + AUDIT_WAIT_SECONDS
    while True:
        for record in audit_records(mesh, "sts"):
            if all(record.get(k) == v for k, v in fields.items()):
                return record
        assert time.monotonic() < deadline, f"no audit record with {fields}"
        await asyncio.sleep(0.05)


# Credentials a refused caller presents -------------------------------------


async def _nothing(mesh: Mesh) -> Headers:
    return {}


async def _basic(mesh: Mesh) -> Headers:
    return {"Authorization": "Basic d2lmOnNlY3JldA=="}


async def _bearer_without_token(mesh: Mesh) -> Headers:
    return {"Authorization": "Bearer"}


async def _two_tokens(mesh: Mesh) -> Headers:
    token = await caller_token(mesh)
    return {"Authorization": f"Bearer {token} {token}"}


async def _foreign(mesh: Mesh) -> Headers:
    """The operations job's own platform token: signed, but not by the mesh."""
    return bearer(await asyncio.to_thread(job_token, mesh, OPERATIONS_JOB))


async def _expired(mesh: Mesh) -> Headers:
    now = int(time.time())
    claims = {
        "iss": mesh["issuer"],
        "sub": OPERATIONS_SUBJECT,
        "aud": STS_AUDIENCE,
        "scope": f"{INTROSPECT_SCOPE} {REVOKE_SCOPE}",
        "iat": now - 7200,
        "nbf": now - 7200,
        "exp": now - 3600,
        "jti": f"expired-caller-{now}",
    }
    return bearer(await mesh_signed(mesh, claims))


async def _revoked(mesh: Mesh) -> Headers:
    """An operations caller token that another operations caller revoked."""
    doomed = await caller_token(mesh)
    status, _, _ = await _post(mesh, REVOKE, doomed, bearer(await caller_token(mesh)))
    assert status == 200
    return bearer(doomed)


async def _other_audience(mesh: Mesh) -> Headers:
    """A valid operations token, but for payments-api rather than the STS."""
    return bearer(await _target(mesh))


async def _unscoped(mesh: Mesh) -> Headers:
    return bearer(await caller_token(mesh, PAYMENTS_JOB, scopes=()))


async def _introspect_only(mesh: Mesh) -> Headers:
    return bearer(await caller_token(mesh, scopes=(INTROSPECT_SCOPE,)))


async def _revoke_only(mesh: Mesh) -> Headers:
    return bearer(await caller_token(mesh, scopes=(REVOKE_SCOPE,)))


@dataclass(frozen=True)
class RefusedCase:
    name: str
    path: str
    credentials: Callable[[Mesh], Awaitable[Headers]]
    status: int
    error: str
    reason: str
    #: What WWW-Authenticate must say after ``Bearer realm="wif-sts"``.
    challenge: str = ""
    #: The job whose token is asked about (never the caller's subject).
    target_job: str = OPERATIONS_JOB


def _unauthenticated(
    name: str,
    credentials: Callable[[Mesh], Awaitable[Headers]],
    reason: str,
    challenge: str,
) -> list[RefusedCase]:
    return [
        RefusedCase(name, path, credentials, 401, "invalid_client", reason, challenge)
        for path in (INTROSPECT, REVOKE)
    ]


REFUSED = [
    *_unauthenticated("no header", _nothing, "MISSING_CREDENTIALS", ""),
    *_unauthenticated("basic scheme", _basic, "UNSUPPORTED_AUTH_SCHEME", ""),
    *_unauthenticated(
        "bearer without a token",
        _bearer_without_token,
        "MALFORMED_CREDENTIALS",
        ', error="invalid_request"',
    ),
    *_unauthenticated(
        "two tokens",
        _two_tokens,
        "MALFORMED_CREDENTIALS",
        ', error="invalid_request"',
    ),
    *_unauthenticated(
        "foreign token", _foreign, "UNKNOWN_KEY_ID", ', error="invalid_token"'
    ),
    *_unauthenticated(
        "expired caller token", _expired, "TOKEN_EXPIRED", ', error="invalid_token"'
    ),
    *_unauthenticated(
        "revoked caller token", _revoked, "TOKEN_REVOKED", ', error="invalid_token"'
    ),
    *_unauthenticated(
        "token for another audience",
        _other_audience,
        "AUDIENCE_MISMATCH",
        ', error="invalid_token"',
    ),
    RefusedCase(
        "no scope",
        INTROSPECT,
        _unscoped,
        403,
        "insufficient_scope",
        "INSUFFICIENT_SCOPE",
        f', error="insufficient_scope", scope="{INTROSPECT_SCOPE}"',
    ),
    RefusedCase(
        "revoke scope only",
        INTROSPECT,
        _revoke_only,
        403,
        "insufficient_scope",
        "INSUFFICIENT_SCOPE",
        f', error="insufficient_scope", scope="{INTROSPECT_SCOPE}"',
    ),
    RefusedCase(
        "no scope, another subject's token",
        REVOKE,
        _unscoped,
        403,
        "insufficient_scope",
        "INSUFFICIENT_SCOPE",
        f', error="insufficient_scope", scope="{REVOKE_SCOPE}"',
    ),
    RefusedCase(
        "introspect scope only, another subject's token",
        REVOKE,
        _introspect_only,
        403,
        "insufficient_scope",
        "INSUFFICIENT_SCOPE",
        f', error="insufficient_scope", scope="{REVOKE_SCOPE}"',
        target_job=PAYMENTS_JOB,
    ),
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda case: f"{case.path} {case.name}")
async def test_refused_caller_learns_nothing_and_changes_nothing(
    mesh: Mesh, case: RefusedCase
) -> None:
    headers = await case.credentials(mesh)
    active = await _target(mesh, case.target_job)
    before = await _refusals(mesh, case.path, case.reason)

    status, answer_headers, body = await _post(mesh, case.path, active, headers)
    _, _, garbage_body = await _post(mesh, case.path, "not.a.token", headers)

    assert (status, body["error"]) == (case.status, case.error)
    assert set(body) == {"error", "error_description"}
    assert garbage_body == body  # an active token and garbage look alike
    assert answer_headers["WWW-Authenticate"] == (
        f'Bearer realm="{STS_AUDIENCE}"{case.challenge}'
    )
    assert answer_headers["Cache-Control"] == "no-store"
    assert await _validation(mesh, active) == "valid"
    assert await _refusals(mesh, case.path, case.reason) == before + 2


def _read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        return str(response.read().decode())


async def test_refusals_are_counted_by_endpoint_outcome_and_reason(
    mesh: Mesh,
) -> None:
    await _post(mesh, INTROSPECT, "a.b.c", {})

    text = await asyncio.to_thread(_read, mesh["metrics"]["sts"])

    assert any(
        line.startswith("wif_rpc_calls")
        and 'rpc="POST /introspect"' in line
        and 'outcome="unauthenticated"' in line
        and 'reason="MISSING_CREDENTIALS"' in line
        for line in text.splitlines()
    )


async def test_workload_without_scope_revokes_its_own_token(mesh: Mesh) -> None:
    caller = bearer(await caller_token(mesh, PAYMENTS_JOB, scopes=()))
    own = await _target(mesh, PAYMENTS_JOB)
    own_id = parse_compact(own).claims["jti"]

    status, _, body = await _post(mesh, REVOKE, own, caller)

    assert (status, body) == (200, {})
    assert await _validation(mesh, own) == "TOKEN_REVOKED"
    record = await _wait_for_record(mesh, event="token.revoke", token_id=own_id)
    assert record["outcome"] == "ok"
    assert record["caller"] == PAYMENTS_SUBJECT
    assert record["subject"] == PAYMENTS_SUBJECT


async def test_workload_without_scope_gets_success_for_its_own_invalid_token(
    mesh: Mesh,
) -> None:
    """RFC 7009 section 2.2: an invalid token is no error; nothing happens."""
    caller = bearer(await caller_token(mesh, PAYMENTS_JOB, scopes=()))
    own = await _target(mesh, PAYMENTS_JOB)
    header, payload, _ = own.split(".")
    forged = f"{header}.{payload}.{'A' * 86}"

    status, _, body = await _post(mesh, REVOKE, forged, caller)

    assert (status, body) == (200, {})
    assert await _validation(mesh, own) == "valid"


async def test_operations_caller_revokes_another_workloads_token(mesh: Mesh) -> None:
    caller = bearer(await caller_token(mesh))
    other = await _target(mesh, PAYMENTS_JOB)
    other_id = parse_compact(other).claims["jti"]

    status, _, body = await _post(mesh, REVOKE, other, caller)
    introspected = await _post(mesh, INTROSPECT, other, caller)

    assert (status, body) == (200, {})
    assert await _validation(mesh, other) == "TOKEN_REVOKED"
    assert introspected[0] == 200
    assert introspected[2] == {"active": False}
    record = await _wait_for_record(mesh, event="token.revoke", token_id=other_id)
    assert record["outcome"] == "ok"
    assert record["caller"] == OPERATIONS_SUBJECT
    assert record["subject"] == PAYMENTS_SUBJECT


async def test_operations_caller_introspects_active_and_inactive_tokens(
    mesh: Mesh,
) -> None:
    caller = bearer(await caller_token(mesh))
    active = await _target(mesh, PAYMENTS_JOB)
    active_id = parse_compact(active).claims["jti"]

    live = await _post(mesh, INTROSPECT, active, caller)
    garbage = await _post(mesh, INTROSPECT, "not.a.token", caller)
    foreign = await _post(
        mesh, INTROSPECT, await asyncio.to_thread(job_token, mesh, PAYMENTS_JOB), caller
    )

    status, _, body = live
    assert status == 200
    assert body["active"] is True
    assert (body["sub"], body["aud"], body["jti"]) == (
        PAYMENTS_SUBJECT,
        "payments-api",
        active_id,
    )
    assert body["token_type"] == "Bearer"
    assert (garbage[0], garbage[2]) == (200, {"active": False})
    assert (foreign[0], foreign[2]) == (200, {"active": False})
    # An answer is sent only once its record is on disk: no waiting here.
    (record,) = [
        r
        for r in audit_records(mesh, "sts", "token.introspect")
        if r.get("token_id") == active_id
    ]
    assert (record["outcome"], record["caller"]) == ("active", OPERATIONS_SUBJECT)


async def test_authorized_caller_still_needs_the_token_parameter(mesh: Mesh) -> None:
    caller = bearer(await caller_token(mesh))

    status, _, body = await asyncio.to_thread(post_to_sts, mesh, INTROSPECT, [], caller)

    assert (status, body["error"]) == (400, "invalid_request")


async def test_only_mesh_operations_may_get_the_administration_scopes(
    mesh: Mesh,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await caller_token(mesh, PAYMENTS_JOB, scopes=(INTROSPECT_SCOPE,))

    assert refusal(caught.value) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "POLICY_DENIED",
        "invalid_target",
    )
