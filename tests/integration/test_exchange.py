"""The whole exchange against real etcd, real services and a real OpenID provider."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
import pytest

from tests.support.mesh import (
    REPO_ROOT,
    audit_records,
    exchange,
    job_token,
    refusal,
)
from wif.dev.oidc import verify_with_node_jose
from wif.tokens import SigningKey

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _get_json(url: str) -> tuple[dict[str, Any], dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
        return json.loads(response.read()), dict(response.headers)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_exchange_issues_token_that_independent_verifiers_accept(
    mesh: dict[str, Any],
) -> None:
    result = await exchange(
        mesh, job_token(mesh, "github-payments-deploy"), scopes=("payments.read",)
    )

    assert result.token_type == "Bearer"
    assert result.issued_token_type == "urn:ietf:params:oauth:token-type:jwt"
    assert 3500 <= result.expires_in <= 3600
    assert list(result.scope) == ["payments.read"]
    jwks, _ = _get_json(mesh["its"]["http"] + "/.well-known/jwks.json")
    assert jwks["keys"]
    assert all(not PRIVATE_JWK_MEMBERS & set(k) for k in jwks["keys"])

    header = jwt.get_unverified_header(result.access_token)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        result.access_token,
        jwt.PyJWK(key).key,
        algorithms=[key["alg"]],
        audience="payments-api",
        issuer=mesh["issuer"],
    )
    assert claims["sub"] == "spiffe://acme.example/payments-ci/acme-corp/payments-api"
    assert claims["repository"] == "acme-corp/payments-api"
    assert claims["workload_type"] == "ci-job"
    assert claims["jti"] == result.token_id

    verified = verify_with_node_jose(
        REPO_ROOT,
        result.access_token,
        mesh["its"]["http"] + "/.well-known/jwks.json",
        mesh["issuer"],
        "payments-api",
    )
    assert verified["jti"] == result.token_id


async def test_exchange_is_audited_before_the_token_is_returned(
    mesh: dict[str, Any],
) -> None:
    result = await exchange(mesh, job_token(mesh, "github-payments-deploy"))

    issued = [r for r in audit_records(mesh, "its") if r["event"] == "token.issued"]
    exchanged = [
        r for r in audit_records(mesh, "sts") if r["event"] == "token.exchange"
    ]
    assert result.token_id in {r["token_id"] for r in issued}
    assert result.token_id in {r.get("token_id") for r in exchanged}
    assert all(result.access_token not in json.dumps(r) for r in issued + exchanged)


def test_discovery_names_the_issuer_and_its_jwks(mesh: dict[str, Any]) -> None:
    document, headers = _get_json(
        mesh["its"]["http"] + "/.well-known/openid-configuration"
    )

    assert document["issuer"] == mesh["issuer"]
    assert document["jwks_uri"] == mesh["issuer"] + "/.well-known/jwks.json"
    assert "max-age" in headers["Cache-Control"]
    assert headers["ETag"]


@dataclass(frozen=True)
class RefusalCase:
    name: str
    code: grpc.StatusCode
    reason: str
    oauth_error: str


def _expired_token(mesh: dict[str, Any]) -> str:
    token = job_token(mesh, "github-short-lived")
    exp = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"]
    time.sleep(max(0.0, exp + 1.5 - time.time()))  # past exp and the 1 s test skew
    return token


def _unknown_issuer_token(mesh: dict[str, Any]) -> str:
    key = SigningKey.generate("ES256")
    now = int(time.time())
    return key.sign(
        {
            "iss": "http://127.0.0.1:9/not-trusted",
            "sub": "x",
            "aud": "https://wif.acme.example",
            "iat": now,
            "exp": now + 300,
        }
    )


def _bad_signature_token(mesh: dict[str, Any]) -> str:
    head, payload, signature = job_token(mesh, "github-payments-deploy").split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def _alg_none_token(mesh: dict[str, Any]) -> str:
    _, payload, _ = job_token(mesh, "github-payments-deploy").split(".")
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."


CASES = {
    "expired": (
        _expired_token,
        "payments-api",
        RefusalCase(
            "expired", grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED", "invalid_grant"
        ),
    ),
    "unknown issuer": (
        _unknown_issuer_token,
        "payments-api",
        RefusalCase(
            "unknown issuer",
            grpc.StatusCode.UNAUTHENTICATED,
            "UNKNOWN_ISSUER",
            "invalid_grant",
        ),
    ),
    "bad signature": (
        _bad_signature_token,
        "payments-api",
        RefusalCase(
            "bad signature",
            grpc.StatusCode.UNAUTHENTICATED,
            "BAD_SIGNATURE",
            "invalid_grant",
        ),
    ),
    "alg none": (
        _alg_none_token,
        "payments-api",
        RefusalCase(
            "alg none", grpc.StatusCode.UNAUTHENTICATED, "ALG_NONE", "invalid_grant"
        ),
    ),
    "wrong audience": (
        lambda m: job_token(
            m, "github-payments-deploy", "https://elsewhere.acme.example"
        ),
        "payments-api",
        RefusalCase(
            "wrong audience",
            grpc.StatusCode.UNAUTHENTICATED,
            "AUDIENCE_MISMATCH",
            "invalid_grant",
        ),
    ),
    "failed condition": (
        lambda m: job_token(m, "github-untrusted-branch"),
        "payments-api",
        RefusalCase(
            "failed condition",
            grpc.StatusCode.UNAUTHENTICATED,
            "ATTRIBUTE_CONDITION_FAILED",
            "invalid_grant",
        ),
    ),
    "policy deny": (
        lambda m: job_token(m, "github-payments-deploy"),
        "ledger-admin",
        RefusalCase(
            "policy deny",
            grpc.StatusCode.PERMISSION_DENIED,
            "POLICY_DENIED",
            "invalid_target",
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_exchange_refusal_has_right_status_and_issues_nothing(
    mesh: dict[str, Any], case: str
) -> None:
    make_token, audience, expected = CASES[case]
    token = await asyncio.to_thread(make_token, mesh)
    issued_before = len(
        [r for r in audit_records(mesh, "its") if r["event"] == "token.issued"]
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await exchange(mesh, token, audience=audience)

    assert refusal(caught.value) == (
        expected.code,
        expected.reason,
        expected.oauth_error,
    )
    issued_after = len(
        [r for r in audit_records(mesh, "its") if r["event"] == "token.issued"]
    )
    assert issued_after == issued_before
    refused = [
        r
        for r in audit_records(mesh, "sts", "token.exchange")
        if r["outcome"] == "refused"
    ]
    assert refused[-1]["reason"] == expected.reason
