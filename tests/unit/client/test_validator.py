"""LocalValidator against a JWKS served by a real HTTP server on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.unit.client.servers import JwksBehaviour, jwks_server
from wif.client import JwksUnavailable, LocalValidator
from wif.client.validator import cache_seconds
from wif.dev.etcd import free_port
from wif.errors import InvalidToken
from wif.tokens import SigningKey
from wif.tokens.base64url import decode, encode

AUDIENCE = "payments-api"
SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="module")
def next_key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture
def jwks(key: SigningKey) -> JwksBehaviour:
    return JwksBehaviour({"keys": [key.public_jwk()]})


@pytest.fixture
def issuer(jwks: JwksBehaviour) -> Iterator[str]:
    with jwks_server(jwks) as issuer:
        yield issuer


class FakeMonotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _claims(issuer: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": "jti-1",
    }
    claims.update(changes)
    return claims


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = decode(payload).replace(b"payments-api", b"payments-xxx")
    return ".".join((header, encode(claims), signature))


def test_validate_accepts_a_token_signed_by_a_published_key(
    issuer: str, key: SigningKey
) -> None:
    validator = LocalValidator(issuer, audience=AUDIENCE)

    valid = validator.validate(key.sign(_claims(issuer)))

    assert valid.subject == SUBJECT
    assert valid.token_id == "jti-1"


@dataclass(frozen=True)
class Refusal:
    name: str
    changes: dict[str, Any]
    reason: str


REFUSALS = [
    Refusal("expired", {"exp": int(time.time()) - 120}, "TOKEN_EXPIRED"),
    Refusal("wrong audience", {"aud": "search-api"}, "AUDIENCE_MISMATCH"),
    Refusal("wrong issuer", {"iss": "https://elsewhere.example"}, "ISSUER_MISMATCH"),
    Refusal("not yet valid", {"nbf": int(time.time()) + 600}, "TOKEN_NOT_YET_VALID"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=lambda case: case.name)
def test_validate_refuses_a_token_whose_claims_fail(
    issuer: str, key: SigningKey, case: Refusal
) -> None:
    validator = LocalValidator(issuer, audience=AUDIENCE)

    with pytest.raises(InvalidToken) as refused:
        validator.validate(key.sign(_claims(issuer, **case.changes)))

    assert refused.value.reason == case.reason


def test_validate_refuses_a_tampered_token(issuer: str, key: SigningKey) -> None:
    validator = LocalValidator(issuer, audience="payments-xxx")

    with pytest.raises(InvalidToken) as refused:
        validator.validate(_tamper(key.sign(_claims(issuer))))

    assert refused.value.reason == "BAD_SIGNATURE"


def test_validate_refuses_a_malformed_token(issuer: str) -> None:
    validator = LocalValidator(issuer, audience=AUDIENCE)

    with pytest.raises(InvalidToken) as refused:
        validator.validate("not.a-token")

    assert refused.value.reason == "MALFORMED_TOKEN"


def test_keys_are_cached_for_the_max_age_the_its_sends(
    issuer: str, key: SigningKey, jwks: JwksBehaviour
) -> None:
    jwks.cache_control = "public, max-age=60"
    clock = FakeMonotonic()
    validator = LocalValidator(issuer, audience=AUDIENCE, monotonic=clock)
    token = key.sign(_claims(issuer))

    validator.validate(token)
    clock.now += 59
    validator.validate(token)
    fetches_within_max_age = jwks.requests
    clock.now += 2
    validator.validate(token)

    assert fetches_within_max_age == 1
    assert jwks.requests == 2


def test_no_cache_means_a_fetch_per_validation_outside_the_cooldown(
    issuer: str, key: SigningKey, jwks: JwksBehaviour
) -> None:
    jwks.cache_control = "no-cache"
    clock = FakeMonotonic()
    validator = LocalValidator(
        issuer, audience=AUDIENCE, monotonic=clock, refetch_cooldown=5
    )
    token = key.sign(_claims(issuer))

    validator.validate(token)
    validator.validate(token)
    clock.now += 5
    validator.validate(token)

    assert jwks.requests == 2


def test_an_unknown_kid_refetches_at_most_once_per_cooldown(
    issuer: str, key: SigningKey, next_key: SigningKey, jwks: JwksBehaviour
) -> None:
    clock = FakeMonotonic()
    validator = LocalValidator(
        issuer, audience=AUDIENCE, monotonic=clock, refetch_cooldown=30
    )
    validator.validate(key.sign(_claims(issuer)))
    clock.now += 31
    unknown = next_key.sign(_claims(issuer))

    reasons = []
    for _ in range(5):
        with pytest.raises(InvalidToken) as refused:
            validator.validate(unknown)
        reasons.append(refused.value.reason)

    assert reasons == ["UNKNOWN_KEY_ID"] * 5
    assert jwks.requests == 2


def test_a_newly_published_key_is_found_by_refetching(
    issuer: str, key: SigningKey, next_key: SigningKey, jwks: JwksBehaviour
) -> None:
    clock = FakeMonotonic()
    validator = LocalValidator(
        issuer, audience=AUDIENCE, monotonic=clock, refetch_cooldown=30
    )
    validator.validate(key.sign(_claims(issuer)))
    jwks.document = {"keys": [key.public_jwk(), next_key.public_jwk()]}
    clock.now += 31

    valid = validator.validate(next_key.sign(_claims(issuer, jti="jti-2")))

    assert valid.token_id == "jti-2"
    assert jwks.requests == 2


def test_cached_keys_outlive_an_unreachable_its(
    key: SigningKey, jwks: JwksBehaviour
) -> None:
    clock = FakeMonotonic()
    with jwks_server(jwks) as issuer:
        validator = LocalValidator(issuer, audience=AUDIENCE, monotonic=clock)
        token = key.sign(_claims(issuer))
        validator.validate(token)
    clock.now += 301

    valid = validator.validate(token)

    assert valid.subject == SUBJECT


def test_validate_without_reachable_keys_raises_jwks_unavailable(
    key: SigningKey,
) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    validator = LocalValidator(issuer, audience=AUDIENCE)

    with pytest.raises(JwksUnavailable):
        validator.validate(key.sign(_claims(issuer)))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("public, max-age=120", 120.0),
        ("max-age=0", 0.0),
        ("no-store", 0.0),
        (None, 300.0),
        ("public, max-age=99999999", 86400.0),
    ],
)
def test_cache_seconds_reads_cache_control(header: str | None, seconds: float) -> None:
    assert cache_seconds(header) == seconds
