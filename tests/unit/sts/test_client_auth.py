"""Tests for services.sts.client_auth: who may call /introspect and /revoke."""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from services.sts.client_auth import (
    INTROSPECT_SCOPE,
    REVOKE_SCOPE,
    Caller,
    CallerNotAllowed,
    ClientAuthenticator,
    InsufficientScope,
    InvalidClient,
    bearer_token,
    challenge,
    check_network,
)
from services.sts.http import error_response
from services.sts.validation import MeshTokenValidator
from wif.audit import AuditLog
from wif.revocations import RevocationList, token_key
from wif.store import Snapshot
from wif.tokens import SigningKey
from wif.trust.config import TrustConfig

AUDIENCE = "wif-sts"
SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"
OTHER = "spiffe://acme.example/payments-ci/acme-corp/mesh-operations"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.fixture
def clients(validator: MeshTokenValidator) -> ClientAuthenticator:
    return ClientAuthenticator(validator, AUDIENCE, LOOPBACK, AuditLog("sts", None))


def mesh_token(key: SigningKey, config: TrustConfig, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": config.issuer,
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "caller-1",
        "scope": INTROSPECT_SCOPE,
        **changes,
    }
    return key.sign({k: v for k, v in claims.items() if v is not None})


@pytest.mark.parametrize(
    ("remote", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("10.0.0.5", False),
        (None, False),
        ("x", False),
    ],
)
def test_check_network_allows_only_the_admin_networks(
    remote: str | None, allowed: bool
) -> None:
    if allowed:
        check_network(remote, LOOPBACK)
        return
    with pytest.raises(CallerNotAllowed) as caught:
        check_network(remote, LOOPBACK)
    assert (caught.value.http_status, caught.value.oauth_error) == (
        403,
        "access_denied",
    )


@dataclass(frozen=True)
class HeaderCase:
    name: str
    values: tuple[str, ...]
    reason: str
    challenge: str


HEADER_REFUSALS = [
    HeaderCase("absent", (), "MISSING_CREDENTIALS", 'Bearer realm="wif-sts"'),
    HeaderCase(
        "basic", ("Basic abc=",), "UNSUPPORTED_AUTH_SCHEME", 'Bearer realm="wif-sts"'
    ),
    HeaderCase(
        "scheme only",
        ("Bearer",),
        "MALFORMED_CREDENTIALS",
        'Bearer realm="wif-sts", error="invalid_request"',
    ),
    HeaderCase(
        "two tokens",
        ("Bearer a.b.c d.e.f",),
        "MALFORMED_CREDENTIALS",
        'Bearer realm="wif-sts", error="invalid_request"',
    ),
    HeaderCase(
        "two headers",
        ("Bearer a.b.c", "Bearer a.b.c"),
        "MALFORMED_CREDENTIALS",
        'Bearer realm="wif-sts", error="invalid_request"',
    ),
    HeaderCase(
        "not a b64token",
        ('Bearer a"b',),
        "MALFORMED_CREDENTIALS",
        'Bearer realm="wif-sts", error="invalid_request"',
    ),
]


@pytest.mark.parametrize("case", HEADER_REFUSALS, ids=lambda case: case.name)
def test_bearer_token_refuses_unusable_headers(case: HeaderCase) -> None:
    with pytest.raises(InvalidClient) as caught:
        bearer_token(case.values, AUDIENCE)

    assert (caught.value.reason, caught.value.challenge) == (
        case.reason,
        case.challenge,
    )
    assert (caught.value.http_status, caught.value.oauth_error) == (
        401,
        "invalid_client",
    )


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_token_takes_the_scheme_in_any_case(scheme: str) -> None:
    assert bearer_token((f"{scheme}  a-b.c_d.e~f+/==",), AUDIENCE) == "a-b.c_d.e~f+/=="


def test_challenge_names_error_and_scope_when_given() -> None:
    assert challenge("wif-sts", "insufficient_scope", REVOKE_SCOPE) == (
        'Bearer realm="wif-sts", error="insufficient_scope", scope="wif.tokens.revoke"'
    )


def test_authenticate_returns_the_subject_and_scopes_of_a_valid_token(
    clients: ClientAuthenticator, key: SigningKey, dev_config: TrustConfig
) -> None:
    token = mesh_token(key, dev_config, scope=f"{INTROSPECT_SCOPE} {REVOKE_SCOPE}")

    caller = clients.authenticate("127.0.0.1", [f"Bearer {token}"])

    assert caller == Caller(
        SUBJECT, "caller-1", frozenset({INTROSPECT_SCOPE, REVOKE_SCOPE})
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "payments-api"}, "AUDIENCE_MISMATCH"),
        ({"exp": 1_000_000, "iat": 999_000, "nbf": 999_000}, "TOKEN_EXPIRED"),
        ({"iss": "https://elsewhere.example"}, "ISSUER_MISMATCH"),
    ],
)
def test_authenticate_refuses_a_token_not_valid_here(
    clients: ClientAuthenticator,
    key: SigningKey,
    dev_config: TrustConfig,
    changes: dict[str, Any],
    reason: str,
) -> None:
    token = mesh_token(key, dev_config, **changes)

    with pytest.raises(InvalidClient) as caught:
        clients.authenticate("127.0.0.1", [f"Bearer {token}"])

    assert caught.value.reason == reason
    assert caught.value.challenge == 'Bearer realm="wif-sts", error="invalid_token"'


@pytest.mark.parametrize("aud", [["payments-api", AUDIENCE], [AUDIENCE, AUDIENCE]])
def test_authenticate_refuses_a_token_for_another_audience_as_well(
    clients: ClientAuthenticator, key: SigningKey, dev_config: TrustConfig, aud: Any
) -> None:
    # payments-api receives such a token and could present it here as its caller.
    token = mesh_token(key, dev_config, aud=aud)

    with pytest.raises(InvalidClient) as caught:
        clients.authenticate("127.0.0.1", [f"Bearer {token}"])

    assert caught.value.reason == "AUDIENCE_NOT_EXCLUSIVE"
    assert caught.value.challenge == 'Bearer realm="wif-sts", error="invalid_token"'


def test_authenticate_accepts_the_audience_alone_in_a_list(
    clients: ClientAuthenticator, key: SigningKey, dev_config: TrustConfig
) -> None:
    token = mesh_token(key, dev_config, aud=[AUDIENCE])

    assert clients.authenticate("127.0.0.1", [f"Bearer {token}"]).subject == SUBJECT


def test_authenticate_refuses_a_revoked_caller_token(
    clients: ClientAuthenticator,
    key: SigningKey,
    dev_config: TrustConfig,
    revoked: RevocationList,
) -> None:
    revoked.apply(Snapshot(2, {token_key("caller-1"): b"{}"}))

    with pytest.raises(InvalidClient) as caught:
        clients.authenticate("127.0.0.1", [f"Bearer {mesh_token(key, dev_config)}"])

    assert caught.value.reason == "TOKEN_REVOKED"


def test_authenticate_checks_the_network_before_the_token(
    clients: ClientAuthenticator,
) -> None:
    with pytest.raises(CallerNotAllowed):
        clients.authenticate("10.0.0.5", [])


def test_check_may_introspect_needs_the_introspect_scope(
    clients: ClientAuthenticator,
) -> None:
    clients.check_may_introspect(Caller(SUBJECT, "t", frozenset({INTROSPECT_SCOPE})))

    with pytest.raises(InsufficientScope) as caught:
        clients.check_may_introspect(Caller(SUBJECT, "t", frozenset({REVOKE_SCOPE})))
    assert caught.value.challenge == challenge(
        AUDIENCE, "insufficient_scope", INTROSPECT_SCOPE
    )


@dataclass(frozen=True)
class RevokeCase:
    name: str
    scopes: frozenset[str]
    token_subject: str | None
    #: The subject the revocation is limited to, or "refused".
    expected: str | None


REVOKE_CASES = [
    RevokeCase("scope, another subject", frozenset({REVOKE_SCOPE}), OTHER, None),
    RevokeCase("scope, not a token", frozenset({REVOKE_SCOPE}), None, None),
    RevokeCase("no scope, own subject", frozenset(), SUBJECT, SUBJECT),
    RevokeCase("no scope, another subject", frozenset(), OTHER, "refused"),
    RevokeCase("no scope, not a token", frozenset(), None, "refused"),
    RevokeCase(
        "introspect scope, another subject",
        frozenset({INTROSPECT_SCOPE}),
        OTHER,
        "refused",
    ),
]


@pytest.mark.parametrize("case", REVOKE_CASES, ids=lambda case: case.name)
def test_revocable_subject_is_anyones_with_the_scope_else_the_callers_own(
    clients: ClientAuthenticator,
    key: SigningKey,
    dev_config: TrustConfig,
    case: RevokeCase,
) -> None:
    caller = Caller(SUBJECT, "t", case.scopes)
    token = (
        mesh_token(key, dev_config, sub=case.token_subject, aud="payments-api")
        if case.token_subject
        else "not.a.token"
    )

    if case.expected == "refused":
        with pytest.raises(InsufficientScope) as caught:
            clients.revocable_subject(caller, token)
        assert 'scope="wif.tokens.revoke"' in caught.value.challenge
        return
    assert clients.revocable_subject(caller, token) == case.expected


def test_error_response_carries_the_challenge_of_a_bearer_refusal() -> None:
    refused = InsufficientScope(
        "the caller's token lacks the scope wif.tokens.revoke",
        challenge=challenge(AUDIENCE, "insufficient_scope", REVOKE_SCOPE),
    )

    response = error_response(refused)

    assert response.status == 403
    assert response.headers["WWW-Authenticate"] == refused.challenge
    assert response.headers["Cache-Control"] == "no-store"
    assert response.body is not None
    assert json.loads(bytes(response.body)) == {  # type: ignore[arg-type]
        "error": "insufficient_scope",
        "error_description": refused.message,
    }
