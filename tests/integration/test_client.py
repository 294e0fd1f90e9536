"""The Python client library against the shared mesh, read-only.

The mesh issues one-hour tokens, so renewal is shown with a tiny renew
fraction: the source renews a few seconds into the token's life.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.mesh import job_token
from wif.client import (
    ExchangeFailed,
    GrpcExchanger,
    HttpExchanger,
    LocalValidator,
    TokenSource,
)
from wif.errors import InvalidToken
from wif.tokens.base64url import decode, encode

AUDIENCE = "payments-api"
POLLS = 300
POLL_SECONDS = 0.05


def _platform_token(mesh: dict[str, Any], job: str) -> Callable[[], str]:
    return lambda: job_token(mesh, job)


def _source(
    mesh: dict[str, Any], job: str = "github-payments-deploy", **options: Any
) -> TokenSource:
    exchanger = GrpcExchanger(mesh["sts"]["grpc"])
    return TokenSource(
        exchanger,
        _platform_token(mesh, job),
        audience=AUDIENCE,
        scopes=("payments.read",),
        **options,
    )


@pytest.fixture
def validator(mesh: dict[str, Any]) -> LocalValidator:
    return LocalValidator(mesh["issuer"], audience=AUDIENCE)


def test_token_source_token_validates_locally(
    mesh: dict[str, Any], validator: LocalValidator
) -> None:
    source = _source(mesh)

    valid = validator.validate(source.token())

    assert valid.subject.startswith("spiffe://acme.example/payments-ci/")
    assert valid.claims["scope"] == "payments.read"
    assert valid.expires_at > time.time() + 3000


def test_http_exchanger_gets_a_token_that_validates_locally(
    mesh: dict[str, Any], validator: LocalValidator
) -> None:
    exchanger = HttpExchanger(mesh["sts"]["http"] + "/token")
    source = TokenSource(
        exchanger, _platform_token(mesh, "github-payments-deploy"), audience=AUDIENCE
    )

    valid = validator.validate(source.token())

    assert valid.claims["aud"] == AUDIENCE


def test_token_source_renews_against_the_real_sts_before_expiry(
    mesh: dict[str, Any], validator: LocalValidator
) -> None:
    with _source(mesh, renew_fraction=0.001, jitter_fraction=0.0) as source:
        first = source.token()
        renewed = first
        for _ in range(POLLS):
            renewed = source.token()
            if renewed != first:
                break
            time.sleep(POLL_SECONDS)

    assert renewed != first
    assert source.renewals >= 1
    first_id = validator.validate(first).token_id
    assert validator.validate(renewed).token_id != first_id


def test_token_source_reports_the_mesh_refusal(mesh: dict[str, Any]) -> None:
    source = _source(mesh, job="github-untrusted-branch")

    with pytest.raises(ExchangeFailed) as refused:
        source.token()

    assert refused.value.error == "invalid_grant"
    assert refused.value.reason == "ATTRIBUTE_CONDITION_FAILED"


def test_local_validation_refuses_tampered_expired_and_misdirected_tokens(
    mesh: dict[str, Any], validator: LocalValidator
) -> None:
    token = _source(mesh).token()
    header, payload, signature = token.split(".")
    widened = decode(payload).replace(b"payments.read", b"payments.writ")
    tampered = ".".join((header, encode(widened), signature))
    two_hours_later = LocalValidator(mesh["issuer"], clock=lambda: time.time() + 7200)

    reasons = []
    for check in (
        lambda: validator.validate(tampered),
        lambda: two_hours_later.validate(token, AUDIENCE),
        lambda: validator.validate(token, "search-api"),
    ):
        with pytest.raises(InvalidToken) as refused:
            check()
        reasons.append(refused.value.reason)

    assert reasons == ["BAD_SIGNATURE", "TOKEN_EXPIRED", "AUDIENCE_MISMATCH"]
