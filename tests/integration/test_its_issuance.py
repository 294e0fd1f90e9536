"""Issuance by the running ITS: independent verifiers, a public-only JWKS, refusals.

These tests only read keys and issue tokens, so they use the shared mesh;
rotation and revocation run on a mesh of their own (test_key_lifecycle.py).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import struct_pb2

from tests.support.mesh import REPO_ROOT, audit_records, refusal
from wif.dev.oidc import verify_with_node_jose
from wif.tokens.public_jwk import PRIVATE_MEMBERS
from wif.v1 import its_pb2, its_pb2_grpc, key_admin_pb2, key_admin_pb2_grpc

SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"


def fetch(url: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and JSON body of a loopback GET."""
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
        return dict(response.headers), json.loads(response.read())


def issue_request(**changes: Any) -> its_pb2.IssueTokenRequest:
    values: dict[str, Any] = {
        "subject": SUBJECT,
        "audiences": ["payments-api"],
        "scopes": ["payments.read"],
        "lifetime_seconds": 3600,
    }
    values.update(changes)
    return its_pb2.IssueTokenRequest(**values)


async def issue(
    mesh: dict[str, Any], request: its_pb2.IssueTokenRequest
) -> its_pb2.IssueTokenResponse:
    async with grpc.aio.insecure_channel(mesh["its"]["grpc"]) as channel:
        stub = its_pb2_grpc.IdentityTokenServiceStub(channel)
        return await stub.IssueToken(request, timeout=10)


def issued_count(mesh: dict[str, Any]) -> int:
    return sum(r["event"] == "token.issued" for r in audit_records(mesh, "its"))


async def test_issued_token_verifies_with_pyjwt_and_npm_jose(
    mesh: dict[str, Any],
) -> None:
    issued = await issue(mesh, issue_request())
    jwks_url = mesh["issuer"] + "/.well-known/jwks.json"
    _, jwks = await asyncio.to_thread(fetch, jwks_url)

    key = jwt.PyJWKSet.from_dict(jwks)[issued.key_id]
    by_pyjwt = jwt.decode(
        issued.token,
        key=key,
        algorithms=["ES256"],
        audience="payments-api",
        issuer=mesh["issuer"],
    )
    by_jose = await asyncio.to_thread(
        verify_with_node_jose,
        REPO_ROOT,
        issued.token,
        jwks_url,
        mesh["issuer"],
        "payments-api",
    )

    assert by_pyjwt == by_jose
    assert by_pyjwt["jti"] == issued.token_id
    assert by_pyjwt["sub"] == SUBJECT


async def test_jwks_holds_public_parameters_only_and_is_cacheable(
    mesh: dict[str, Any],
) -> None:
    headers, jwks = await asyncio.to_thread(
        fetch, mesh["issuer"] + "/.well-known/jwks.json"
    )

    assert jwks["keys"]
    for jwk in jwks["keys"]:
        assert not PRIVATE_MEMBERS.intersection(jwk), jwk["kid"]
        assert set(jwk) <= {"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"}
    assert headers["Cache-Control"] == "public, max-age=300"
    assert headers["ETag"]


async def test_key_admin_lists_the_active_key_without_private_parts(
    mesh: dict[str, Any],
) -> None:
    async with grpc.aio.insecure_channel(mesh["its"]["grpc"]) as channel:
        stub = key_admin_pb2_grpc.KeyAdminServiceStub(channel)
        reply = await stub.ListKeys(key_admin_pb2.ListKeysRequest(), timeout=10)

    states = [k.state for k in reply.keys]
    assert states.count(key_admin_pb2.KEY_STATE_ACTIVE) == 1
    assert "sealed" not in str(reply)


def _big_claims() -> struct_pb2.Struct:
    claims = struct_pb2.Struct()
    claims.update({f"attr{n}": "x" * 1000 for n in range(9)})
    return claims


@dataclass(frozen=True)
class Refused:
    name: str
    changes: dict[str, Any] = field(default_factory=dict)
    code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    reason: str = ""


REFUSED = [
    Refused(
        "lifetime past three hours",
        {"lifetime_seconds": 10801},
        reason="INVALID_LIFETIME",
    ),
    Refused(
        "lifetime past the audience's maximum",
        {"lifetime_seconds": 3601},
        reason="INVALID_LIFETIME",
    ),
    Refused("oversize token", {"claims": _big_claims()}, reason="TOKEN_TOO_LARGE"),
    Refused(
        "audience not in the trust configuration",
        {"audiences": ["billing-api"]},
        reason="UNKNOWN_AUDIENCE",
    ),
    Refused(
        "subject outside the trust domain",
        {"subject": "spiffe://other.example/a/b"},
        reason="INVALID_SUBJECT",
    ),
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda case: case.name)
async def test_refused_issuance_returns_its_status_and_issues_nothing(
    mesh: dict[str, Any], case: Refused
) -> None:
    before = issued_count(mesh)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await issue(mesh, issue_request(**case.changes))

    code, reason, _ = refusal(refused.value)
    assert (code, reason) == (case.code, case.reason)
    assert issued_count(mesh) == before
