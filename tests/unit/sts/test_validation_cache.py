"""Tests for services.sts.validation: the cache of valid mesh tokens and revocation."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from services.sts.validation import MeshTokenValidator
from wif.errors import InvalidToken
from wif.revocations import RevocationList, subject_key, token_key
from wif.store import Snapshot
from wif.tokens import KeySet, SigningKey, base64url
from wif.trust.config import TrustConfig

SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"
#: The order of the P-256 group.
P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


def mesh_token(key: SigningKey, config: TrustConfig, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": config.issuer,
        "sub": SUBJECT,
        "aud": "payments-api",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "token-1",
        **changes,
    }
    return key.sign(claims)


def malleated(token: str) -> str:
    """The same token with its ECDSA signature (r, s) rewritten as (r, n - s)."""
    head, payload, signature = token.split(".")
    raw = base64url.decode(signature)
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    other = r + (P256_ORDER - s).to_bytes(32, "big")
    return f"{head}.{payload}.{base64url.encode(other)}"


def test_revocation_by_jti_overrides_the_cache_for_every_text_of_a_token(
    validator: MeshTokenValidator,
    key: SigningKey,
    revoked: RevocationList,
    dev_config: TrustConfig,
) -> None:
    token = mesh_token(key, dev_config)
    twin = malleated(token)

    first = validator.validate(token, "payments-api")
    twin_valid = validator.validate(twin)
    revoked.apply(Snapshot(2, {token_key("token-1"): b"{}"}))

    assert first.token_id == twin_valid.token_id == "token-1"
    assert len(validator.cache) == 2
    for text in (token, twin):
        with pytest.raises(InvalidToken) as caught:
            validator.validate(text)
        assert caught.value.reason == "TOKEN_REVOKED"


def test_revocation_by_subject_overrides_the_cache(
    validator: MeshTokenValidator,
    key: SigningKey,
    revoked: RevocationList,
    dev_config: TrustConfig,
) -> None:
    token = mesh_token(key, dev_config)
    validator.validate(token)

    revoked.apply(Snapshot(2, {subject_key(SUBJECT): b"{}"}))

    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    assert caught.value.reason == "SUBJECT_REVOKED"


def test_cached_token_still_has_its_audience_checked(
    validator: MeshTokenValidator, key: SigningKey, dev_config: TrustConfig
) -> None:
    token = mesh_token(key, dev_config)
    validator.validate(token, "payments-api")

    with pytest.raises(InvalidToken) as caught:
        validator.validate(token, "search-api")
    assert caught.value.reason == "AUDIENCE_MISMATCH"


def test_failures_are_not_cached_and_expired_tokens_leave_the_cache(
    validator: MeshTokenValidator, key: SigningKey, dev_config: TrustConfig
) -> None:
    expired = mesh_token(key, dev_config, exp=int(time.time()) - 60)

    with pytest.raises(InvalidToken):
        validator.validate(expired)
    assert len(validator.cache) == 0


def test_cached_token_of_a_key_that_left_the_keyset_is_refused(
    validator: MeshTokenValidator, key: SigningKey, dev_config: TrustConfig
) -> None:
    token = mesh_token(key, dev_config)
    validator.validate(token)

    validator._keyring.keyset = KeySet()

    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    assert caught.value.reason == "UNKNOWN_KEY_ID"


def test_header_text_echoed_in_a_refusal_is_printable_ascii(
    validator: MeshTokenValidator, key: SigningKey, dev_config: TrustConfig
) -> None:
    _, payload, signature = mesh_token(key, dev_config).split(".")
    header = json.dumps({"alg": "ES256", "kid": "k\u202ex\u0007", "typ": "JWT"})
    token = f"{base64url.encode(header.encode())}.{payload}.{signature}"

    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)

    assert caught.value.reason == "UNKNOWN_KEY_ID"
    assert caught.value.metadata["kid"] == "k?x?"
