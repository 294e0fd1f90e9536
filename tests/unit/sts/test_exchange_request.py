"""Tests for the request checks of services.sts.exchange (RFC 8693 section 2.1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from services.sts.exchange import (
    TYPE_ACCESS_TOKEN,
    TYPE_ID_TOKEN,
    TYPE_JWT,
    ExchangeRequest,
    actor_claim,
    check_request,
    check_scopes,
    resolve_targets,
)
from services.sts.subject import Principal
from wif.errors import WifError
from wif.trust.config import TrustConfig

TYPE_SAML2 = "urn:ietf:params:oauth:token-type:saml2"
TYPE_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"

GOOD = ExchangeRequest(
    subject_token="header.payload.signature",
    subject_token_type=TYPE_JWT,
    audience=("payments-api",),
    scope=("payments.read",),
)


@dataclass(frozen=True)
class Case:
    name: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    oauth_error: str | None = None
    reason: str | None = None


CHECKS = [
    Case("minimal"),
    Case("id-token-subject", {"subject_token_type": TYPE_ID_TOKEN}),
    Case("access-token-subject", {"subject_token_type": TYPE_ACCESS_TOKEN}),
    Case("with-actor", {"actor_token": "a.b.c", "actor_token_type": TYPE_JWT}),
    Case("requested-jwt", {"requested_token_type": TYPE_JWT}),
    Case("requested-access-token", {"requested_token_type": TYPE_ACCESS_TOKEN}),
    Case("eight-targets", {"audience": ["a"] * 4, "resource": ["r"] * 4}),
    Case("thirty-two-scopes", {"scope": [f"s{n}" for n in range(32)]}),
    Case(
        "missing-subject-token",
        {"subject_token": ""},
        "invalid_request",
        "MISSING_SUBJECT_TOKEN",
    ),
    Case(
        "missing-subject-token-type",
        {"subject_token_type": ""},
        "invalid_request",
        "MISSING_TOKEN_TYPE",
    ),
    Case(
        "unknown-subject-token-type",
        {"subject_token_type": TYPE_SAML2},
        "unsupported_token_type",
        "UNSUPPORTED_TOKEN_TYPE",
    ),
    Case(
        "refresh-token-as-subject",
        {"subject_token_type": TYPE_REFRESH},
        "unsupported_token_type",
        "UNSUPPORTED_TOKEN_TYPE",
    ),
    Case(
        "actor-token-without-type",
        {"actor_token": "a.b.c"},
        "invalid_request",
        "ACTOR_TOKEN_TYPE",
    ),
    Case(
        "actor-token-type-without-token",
        {"actor_token_type": TYPE_JWT},
        "invalid_request",
        "ACTOR_TOKEN_TYPE",
    ),
    Case(
        "unknown-actor-token-type",
        {"actor_token": "a.b.c", "actor_token_type": TYPE_SAML2},
        "unsupported_token_type",
        "UNSUPPORTED_TOKEN_TYPE",
    ),
    Case(
        "requested-id-token",
        {"requested_token_type": TYPE_ID_TOKEN},
        "invalid_request",
        "UNSUPPORTED_REQUESTED_TYPE",
    ),
    Case(
        "requested-saml2",
        {"requested_token_type": TYPE_SAML2},
        "invalid_request",
        "UNSUPPORTED_REQUESTED_TYPE",
    ),
    Case(
        "nine-targets",
        {"audience": ["a"] * 5, "resource": ["r"] * 4},
        "invalid_request",
        "TOO_MANY_TARGETS",
    ),
    Case(
        "thirty-three-scopes",
        {"scope": [f"s{n}" for n in range(33)]},
        "invalid_request",
        "TOO_MANY_SCOPES",
    ),
]


@pytest.mark.parametrize("case", CHECKS, ids=lambda case: case.name)
def test_check_request_follows_rfc_8693_parameters(case: Case) -> None:
    request = replace(GOOD, **case.changes)

    if case.oauth_error is None:
        check_request(request)
        return
    with pytest.raises(WifError) as caught:
        check_request(request)

    assert caught.value.oauth_error == case.oauth_error
    assert caught.value.reason == case.reason
    assert caught.value.http_status == 400


def test_exchange_request_without_subject_token_is_invalid_request() -> None:
    with pytest.raises(WifError) as caught:
        check_request(replace(GOOD, subject_token=""))

    assert caught.value.oauth_error == "invalid_request"
    assert caught.value.reason == "MISSING_SUBJECT_TOKEN"


TARGETS = [
    Case("audience", {"audience": ["payments-api"]}),
    Case("resource", {"audience": [], "resource": ["https://payments.acme.example"]}),
    Case(
        "unknown-audience",
        {"audience": ["nosuch-api"]},
        "invalid_target",
        "UNKNOWN_AUDIENCE",
    ),
    Case(
        "audience-given-as-resource-uri",
        {"audience": ["https://payments.acme.example"]},
        "invalid_target",
        "UNKNOWN_AUDIENCE",
    ),
    Case(
        "unknown-resource",
        {"audience": [], "resource": ["https://nosuch.acme.example"]},
        "invalid_target",
        "UNKNOWN_RESOURCE",
    ),
    Case(
        "resource-with-trailing-slash",
        {"audience": [], "resource": ["https://payments.acme.example/"]},
        "invalid_target",
        "UNKNOWN_RESOURCE",
    ),
    Case(
        "one-unknown-among-known",
        {"audience": ["payments-api", "nosuch-api"]},
        "invalid_target",
        "UNKNOWN_AUDIENCE",
    ),
    Case("no-target", {"audience": []}, "invalid_request", "MISSING_TARGET"),
]


@pytest.mark.parametrize("case", TARGETS, ids=lambda case: case.name)
def test_resolve_targets_names_known_audiences_only(
    case: Case, dev_config: TrustConfig
) -> None:
    request = replace(GOOD, **case.changes)

    if case.oauth_error is None:
        assert [a.id for a in resolve_targets(request, dev_config)] == ["payments-api"]
        return
    with pytest.raises(WifError) as caught:
        resolve_targets(request, dev_config)

    assert caught.value.oauth_error == case.oauth_error
    assert caught.value.reason == case.reason


def test_resolve_targets_merges_audience_and_resource_of_one_target(
    dev_config: TrustConfig,
) -> None:
    request = replace(
        GOOD,
        audience=["payments-api", "search-api"],
        resource=["https://payments.acme.example"],
    )

    targets = resolve_targets(request, dev_config)

    assert [a.id for a in targets] == ["payments-api", "search-api"]


def test_resolve_targets_names_the_unknown_audience_in_metadata(
    dev_config: TrustConfig,
) -> None:
    with pytest.raises(WifError) as caught:
        resolve_targets(replace(GOOD, audience=["x" * 500]), dev_config)

    assert caught.value.metadata == {"audience": "x" * 200}


def test_check_scopes_accepts_scopes_offered_by_any_target(
    dev_config: TrustConfig,
) -> None:
    targets = [dev_config.audiences["payments-api"], dev_config.audiences["search-api"]]

    check_scopes(["payments.write", "search.read"], targets)
    check_scopes([], targets)


@pytest.mark.parametrize(
    ("scopes", "named"),
    [
        (["ledger.admin"], "ledger.admin"),
        (["payments.read", "search.read"], "search.read"),
        (["PAYMENTS.READ"], "PAYMENTS.READ"),
    ],
)
def test_check_scopes_refuses_a_scope_not_offered(
    scopes: list[str], named: str, dev_config: TrustConfig
) -> None:
    with pytest.raises(WifError) as caught:
        check_scopes(scopes, [dev_config.audiences["payments-api"]])

    assert caught.value.oauth_error == "invalid_scope"
    assert caught.value.reason == "SCOPE_NOT_OFFERED"
    assert caught.value.metadata == {"scope": named}


def principal(subject: str, claims: Mapping[str, Any] | None = None) -> Principal:
    return Principal(
        subject=subject,
        pool_id="payments-ci",
        provider_id="ci",
        attributes={},
        claims=dict(claims or {}),
        token_id="jti-1",
    )


SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"
ACTOR = "spiffe://acme.example/payments-k8s/deployer"


def test_actor_claim_is_absent_without_actor_or_earlier_chain() -> None:
    assert actor_claim(None, principal(SUBJECT)) is None


def test_actor_claim_names_the_actor() -> None:
    assert actor_claim(principal(ACTOR), principal(SUBJECT)) == {"sub": ACTOR}


def test_actor_claim_does_not_carry_a_foreign_tokens_chain() -> None:
    earlier = {"sub": "ci-runner", "act": {"sub": "scheduler"}}
    subject = principal(SUBJECT, {"act": earlier})

    assert actor_claim(principal(ACTOR), subject) == {"sub": ACTOR}
    assert actor_claim(None, subject) is None


def test_actor_claim_ignores_an_earlier_act_that_is_not_an_object() -> None:
    subject = principal(SUBJECT, {"act": "ci-runner"})

    assert actor_claim(None, subject) is None
    assert actor_claim(principal(ACTOR), subject) == {"sub": ACTOR}
