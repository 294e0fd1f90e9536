"""Tests for wif.mesh_tokens: checking a token the mesh issued."""

from __future__ import annotations

import time
from typing import Any

import pytest

from wif.errors import InvalidToken
from wif.mesh_tokens import verify_mesh_token
from wif.tokens import KeySet, SigningKey

ISSUER = "https://wif.test"
NOW = time.time()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("ES256")


def claims(**changes: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "sub": "spiffe://acme.example/team/job",
        "aud": "api",
        "iat": int(NOW) - 10,
        "nbf": int(NOW) - 10,
        "exp": int(NOW) + 3600,
        "jti": "token-1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def keys_of(key: SigningKey) -> KeySet:
    return KeySet.from_jwks({"keys": [key.public_jwk()]}, ("ES256",))[0]


def test_verify_mesh_token_returns_the_tokens_facts(key: SigningKey) -> None:
    token = verify_mesh_token(
        key.sign(claims()), keys_of(key), issuer=ISSUER, audience="api", now=NOW
    )

    assert token.subject == "spiffe://acme.example/team/job"
    assert token.token_id == "token-1"
    assert token.expires_at == int(NOW) + 3600
    assert token.issued_at == int(NOW) - 10


@pytest.mark.parametrize(
    ("changes", "audience", "reason"),
    [
        ({"exp": int(NOW) - 60}, "api", "TOKEN_EXPIRED"),
        ({"iss": "https://other.test"}, "api", "ISSUER_MISMATCH"),
        ({}, "other-api", "AUDIENCE_MISMATCH"),
        ({"sub": None}, "api", "MISSING_CLAIM"),
        ({"nbf": int(NOW) + 600}, "api", "TOKEN_NOT_YET_VALID"),
    ],
)
def test_verify_mesh_token_names_the_failed_check(
    key: SigningKey, changes: dict[str, Any], audience: str, reason: str
) -> None:
    with pytest.raises(InvalidToken) as caught:
        verify_mesh_token(
            key.sign(claims(**changes)),
            keys_of(key),
            issuer=ISSUER,
            audience=audience,
            now=NOW,
        )

    assert caught.value.reason == reason
    assert caught.value.oauth_error == "invalid_token"


def test_verify_mesh_token_refuses_a_key_the_mesh_does_not_publish(
    key: SigningKey,
) -> None:
    other = SigningKey.generate("ES256")

    with pytest.raises(InvalidToken) as caught:
        verify_mesh_token(
            other.sign(claims()), keys_of(key), issuer=ISSUER, audience="api", now=NOW
        )

    assert caught.value.reason == "UNKNOWN_KEY_ID"
