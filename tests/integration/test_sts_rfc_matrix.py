"""The RFC 8693 parameter and error matrix, and hostile tokens, over gRPC and HTTP.

Each case is sent to both surfaces of the shared mesh's STS; both must
refuse with the same RFC error code and reason (gRPC carries the reason in
its ErrorInfo; HTTP in the JSON error body's code and status).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from tests.support.mesh import TOKEN_EXCHANGE, TYPE_JWT, job_token, refusal, sts_stub
from wif.dev.oidc import discovery
from wif.v1 import sts_pb2

TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
TYPE_SAML2 = "urn:ietf:params:oauth:token-type:saml2"

#: Parameters of the RFC 8693 request; ``subject_token`` "VALID" is replaced
#: by a fresh job token.
Params = dict[str, Any]


@dataclass(frozen=True)
class MatrixCase:
    name: str
    params: Params
    oauth_error: str
    reason: str
    grpc_code: grpc.StatusCode
    http_status: int = 400


BASE: Params = {
    "subject_token": "VALID",
    "subject_token_type": TYPE_JWT,
    "audience": ["payments-api"],
}

MATRIX = [
    MatrixCase(
        "missing subject_token",
        {"subject_token": ""},
        "invalid_request",
        "MISSING_SUBJECT_TOKEN",
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    MatrixCase(
        "missing subject_token_type",
        {"subject_token_type": ""},
        "invalid_request",
        "MISSING_TOKEN_TYPE",
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    MatrixCase(
        "saml2 subject",
        {"subject_token_type": TYPE_SAML2},
        "unsupported_token_type",
        "UNSUPPORTED_TOKEN_TYPE",
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    MatrixCase(
        "actor token without type",
        {"actor_token": "a.b.c"},
        "invalid_request",
        "ACTOR_TOKEN_TYPE",
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    MatrixCase(
        "saml2 actor",
        {"actor_token": "a.b.c", "actor_token_type": TYPE_SAML2},
        "unsupported_token_type",
        "UNSUPPORTED_TOKEN_TYPE",
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    MatrixCase(
        "id token requested",
        {"requested_token_type": TYPE_ID_TOKEN},
        "invalid_request",
        "UNSUPPORTED_REQUESTED_TYPE",
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    MatrixCase(
        "no target",
        {"audience": []},
        "invalid_request",
        "MISSING_TARGET",
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    MatrixCase(
        "unknown audience",
        {"audience": ["payments-api-v2"]},
        "invalid_target",
        "UNKNOWN_AUDIENCE",
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    MatrixCase(
        "unknown resource",
        {"audience": [], "resource": ["https://payments.acme.example/v2"]},
        "invalid_target",
        "UNKNOWN_RESOURCE",
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    MatrixCase(
        "scope not offered",
        {"scope": ["payments.read", "ledger.admin"]},
        "invalid_scope",
        "SCOPE_NOT_OFFERED",
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    MatrixCase(
        "policy denies the target",
        {"audience": ["search-api"]},
        "invalid_target",
        "POLICY_DENIED",
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    MatrixCase(
        "actor token not a token",
        {"actor_token": "a.b", "actor_token_type": TYPE_JWT},
        "invalid_grant",
        "MALFORMED_TOKEN",
        grpc.StatusCode.UNAUTHENTICATED,
    ),
    MatrixCase(
        "JWT presented as an access token",
        {"subject_token_type": TYPE_ACCESS_TOKEN},
        "invalid_grant",
        "WRONG_TOKEN_KIND",
        grpc.StatusCode.UNAUTHENTICATED,
    ),
]


def _fill(mesh: dict[str, Any], params: Params) -> Params:
    filled = {**BASE, **params}
    if filled["subject_token"] == "VALID":
        filled["subject_token"] = job_token(mesh, "github-payments-deploy")
    return filled


def grpc_request(params: Params) -> sts_pb2.ExchangeTokenRequest:
    return sts_pb2.ExchangeTokenRequest(
        subject_token=params.get("subject_token", ""),
        subject_token_type=params.get("subject_token_type", ""),
        actor_token=params.get("actor_token", ""),
        actor_token_type=params.get("actor_token_type", ""),
        audience=params.get("audience", []),
        resource=params.get("resource", []),
        scope=params.get("scope", []),
        requested_token_type=params.get("requested_token_type", ""),
    )


def form(params: Params, grant_type: str = TOKEN_EXCHANGE) -> list[tuple[str, str]]:
    fields = [("grant_type", grant_type)]
    for name, value in params.items():
        if name == "scope":
            fields.append(("scope", " ".join(value)))
        elif isinstance(value, list):
            fields.extend((name, item) for item in value)
        else:
            fields.append((name, value))
    return fields


def post(
    mesh: dict[str, Any], fields: list[tuple[str, str]], path: str = "/token"
) -> tuple[int, dict[str, Any]]:
    body = urllib.parse.urlencode(fields).encode()
    url = mesh["sts"]["http"] + path
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.headers["Cache-Control"] == "no-store"
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        cache_control = error.headers["Cache-Control"]
        status, body = error.code, json.loads(error.read())
    assert cache_control == "no-store"
    return status, body


async def grpc_refusal(
    mesh: dict[str, Any], request: sts_pb2.ExchangeTokenRequest
) -> tuple[grpc.StatusCode, str, str]:
    channel, stub = sts_stub(mesh)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ExchangeToken(request, timeout=10)
    return refusal(caught.value)


@pytest.mark.parametrize("case", MATRIX, ids=lambda case: case.name)
async def test_rfc_8693_error_matrix_on_both_surfaces(
    mesh: dict[str, Any], case: MatrixCase
) -> None:
    params = await asyncio.to_thread(_fill, mesh, case.params)

    over_grpc = await grpc_refusal(mesh, grpc_request(params))
    status, body = await asyncio.to_thread(post, mesh, form(params))

    assert over_grpc == (case.grpc_code, case.reason, case.oauth_error)
    assert (status, body["error"]) == (case.http_status, case.oauth_error)
    assert "access_token" not in body


def test_http_wrong_grant_type_is_unsupported_grant_type(mesh: dict[str, Any]) -> None:
    params = _fill(mesh, {})
    status, body = post(mesh, form(params, "client_credentials"))

    assert (status, body["error"]) == (400, "unsupported_grant_type")


@pytest.mark.parametrize(
    ("requested", "issued"),
    [("", TYPE_JWT), (TYPE_JWT, TYPE_JWT), (TYPE_ACCESS_TOKEN, TYPE_ACCESS_TOKEN)],
)
async def test_issued_token_type_follows_the_request_and_is_bearer(
    mesh: dict[str, Any], requested: str, issued: str
) -> None:
    params = await asyncio.to_thread(
        _fill, mesh, {"requested_token_type": requested, "scope": ["payments.read"]}
    )
    channel, stub = sts_stub(mesh)
    async with channel:
        answer = await stub.ExchangeToken(grpc_request(params), timeout=10)
    status, body = await asyncio.to_thread(post, mesh, form(params))

    assert (answer.issued_token_type, answer.token_type) == (issued, "Bearer")
    assert list(answer.scope) == ["payments.read"]
    assert status == 200
    assert (body["issued_token_type"], body["token_type"]) == (issued, "Bearer")
    assert body["scope"] == "payments.read"
    assert 0 < body["expires_in"] <= 3600


# Hostile tokens ------------------------------------------------------------


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _with_header(mesh: dict[str, Any], **header: Any) -> str:
    """A real job token whose header is replaced (the signature then breaks)."""
    _, payload, signature = job_token(mesh, "github-payments-deploy").split(".")
    return f"{_b64(header)}.{payload}.{signature}"


def _hmac_with_public_key(mesh: dict[str, Any]) -> str:
    """HS256 keyed with the issuer's published public key (a classic confusion)."""
    real = job_token(mesh, "github-payments-deploy")
    _, payload, _ = real.split(".")
    jwks_uri = discovery(mesh["oidc"]["issuer"])["jwks_uri"]
    with urllib.request.urlopen(jwks_uri, timeout=10) as response:  # noqa: S310
        key = json.dumps(json.loads(response.read())["keys"][0]).encode()
    head = _b64({"alg": "HS256", "typ": "JWT"})
    mac = hmac.new(key, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{_b64(mac)}"


@dataclass(frozen=True)
class HostileCase:
    name: str
    make: Callable[[dict[str, Any]], str]
    reason: str
    grpc_only: bool = False


HOSTILE = [
    HostileCase(
        "far beyond 8 KB", lambda m: "e" * 200_000 + ".e.e", "TOKEN_TOO_LARGE", True
    ),
    HostileCase("just beyond 8 KB", lambda m: "e" * 8200 + ".e.e", "TOKEN_TOO_LARGE"),
    HostileCase("two segments", lambda m: "eyJhIjoxfQ.eyJhIjoxfQ", "MALFORMED_TOKEN"),
    HostileCase("four segments", lambda m: "eyJhIjoxfQ.e.e.e", "MALFORMED_TOKEN"),
    HostileCase("five segments (JWE)", lambda m: "a.b.c.d.e", "MALFORMED_TOKEN"),
    HostileCase(
        "alg none",
        lambda m: _with_header(m, alg="none", typ="JWT").rsplit(".", 1)[0] + ".",
        "ALG_NONE",
    ),
    HostileCase("HMAC with the public key", _hmac_with_public_key, "ALG_NOT_ALLOWED"),
    HostileCase(
        "embedded jwk",
        lambda m: _with_header(m, alg="ES256", kid="k", jwk={"kty": "EC"}),
        "HEADER_KEY_NOT_ALLOWED",
    ),
    HostileCase(
        "jku",
        lambda m: _with_header(m, alg="ES256", kid="k", jku="http://127.0.0.1:9/k"),
        "HEADER_KEY_NOT_ALLOWED",
    ),
    HostileCase(
        "x5c",
        lambda m: _with_header(m, alg="ES256", kid="k", x5c=["MIIB"]),
        "HEADER_KEY_NOT_ALLOWED",
    ),
    HostileCase(
        "crit",
        lambda m: _with_header(m, alg="ES256", kid="k", crit=["exp"], exp=1),
        "CRIT_NOT_SUPPORTED",
    ),
    HostileCase(
        "unknown kid",
        lambda m: _with_header(m, alg="ES256", kid="no-such-kid", typ="JWT"),
        "UNKNOWN_KEY_ID",
    ),
    HostileCase(
        "near-miss audience",
        lambda m: job_token(m, "github-payments-deploy", "https://wif.acme.example/"),
        "AUDIENCE_MISMATCH",
    ),
]


@pytest.mark.parametrize("case", HOSTILE, ids=lambda case: case.name)
async def test_hostile_token_is_refused_with_its_reason_on_both_surfaces(
    mesh: dict[str, Any], case: HostileCase
) -> None:
    token = await asyncio.to_thread(case.make, mesh)
    params = {**BASE, "subject_token": token}

    over_grpc = await grpc_refusal(mesh, grpc_request(params))

    assert over_grpc == (grpc.StatusCode.UNAUTHENTICATED, case.reason, "invalid_grant")
    if not case.grpc_only:  # the HTTP form body is capped at 64 KiB
        status, body = await asyncio.to_thread(post, mesh, form(params))
        assert (status, body["error"]) == (400, "invalid_grant")


def test_http_body_far_beyond_the_form_limit_is_refused(mesh: dict[str, Any]) -> None:
    status, body = post(mesh, form({**BASE, "subject_token": "e" * 200_000}))

    assert status in (400, 413)
    assert body["error"] == "invalid_request"


async def test_caller_text_echoed_in_errors_is_printable_and_bounded(
    mesh: dict[str, Any],
) -> None:
    params = await asyncio.to_thread(
        _fill, mesh, {"audience": ["pay\u202ements\x00\n" + "x" * 1000]}
    )
    channel, stub = sts_stub(mesh)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ExchangeToken(grpc_request(params), timeout=10)

    from wif.grpc_errors import error_info

    info = error_info(caught.value)
    assert info is not None
    echoed = info.metadata["audience"]
    assert echoed.startswith("pay?ments??")
    assert len(echoed) <= 200
    assert all(0x20 <= ord(c) < 0x7F for c in echoed)
