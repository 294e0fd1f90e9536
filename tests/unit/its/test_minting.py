"""Tests for services.its.minting: the checks before signing, and the claims."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.its.minting import MintedToken, MintLimits, TokenRequest, mint
from wif.errors import InvalidRequest, TemporarilyUnavailable
from wif.tokens import SigningKey, TokenTooLarge, parse_compact, verify_signature
from wif.trust.model import Audience

ISSUER = "https://wif.acme.example"
TRUST_DOMAIN = "acme.example"
SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"
NOW = 1_700_000_000


@pytest.fixture(scope="module")
def signer() -> SigningKey:
    return SigningKey.generate("ES256")


def request_for(**changes: Any) -> TokenRequest:
    values: dict[str, Any] = {
        "subject": SUBJECT,
        "audiences": ["payments-api"],
        "scopes": ["payments.read"],
        "lifetime_seconds": 3600,
        "not_after": 0,
        "claims": {"workload_type": "ci-job"},
        "act": None,
    }
    values.update(changes)
    return TokenRequest(**values)


def mint_now(request: TokenRequest, signer: SigningKey) -> MintedToken:
    return mint(
        request, issuer=ISSUER, trust_domain=TRUST_DOMAIN, signer=signer, now=NOW
    )


def claims_of(minted: MintedToken, signer: SigningKey) -> dict[str, Any]:
    parsed = parse_compact(minted.token)
    verify_signature(parsed, signer.verification_key())
    return dict(parsed.claims)


@dataclass(frozen=True)
class Refusal:
    name: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""


REFUSALS = [
    Refusal(
        "subject-in-another-trust-domain",
        {"subject": "spiffe://other.example/payments-ci/x"},
        "INVALID_SUBJECT",
    ),
    Refusal("subject-not-spiffe", {"subject": "repo:acme-corp/x"}, "INVALID_SUBJECT"),
    Refusal(
        "subject-https-url",
        {"subject": "https://acme.example/payments-ci/x"},
        "INVALID_SUBJECT",
    ),
    Refusal(
        "subject-with-dot-dot",
        {"subject": "spiffe://acme.example/payments-ci/../search"},
        "INVALID_SUBJECT",
    ),
    Refusal(
        "subject-domain-only", {"subject": "spiffe://acme.example"}, "INVALID_SUBJECT"
    ),
    Refusal("no-audience", {"audiences": []}, "INVALID_AUDIENCE"),
    Refusal("empty-audience", {"audiences": [""]}, "INVALID_AUDIENCE"),
    Refusal("audience-with-space", {"audiences": ["payments api"]}, "INVALID_AUDIENCE"),
    Refusal(
        "seventeen-audiences",
        {"audiences": [f"a{n}" for n in range(17)]},
        "INVALID_AUDIENCE",
    ),
    Refusal("scope-with-space", {"scopes": ["payments read"]}, "INVALID_SCOPE"),
    Refusal("scope-with-quote", {"scopes": ['payments"read']}, "INVALID_SCOPE"),
    Refusal("scope-with-backslash", {"scopes": ["payments\\read"]}, "INVALID_SCOPE"),
    Refusal("scope-empty", {"scopes": [""]}, "INVALID_SCOPE"),
    Refusal(
        "too-many-scopes", {"scopes": [f"s{n}" for n in range(65)]}, "INVALID_SCOPE"
    ),
    Refusal("claim-sub", {"claims": {"sub": "spiffe://x/y"}}, "RESERVED_CLAIM"),
    Refusal("claim-iss", {"claims": {"iss": "https://evil.test"}}, "RESERVED_CLAIM"),
    Refusal("claim-exp", {"claims": {"exp": NOW + 10**9}}, "RESERVED_CLAIM"),
    Refusal("claim-scope", {"claims": {"scope": "ledger.admin"}}, "RESERVED_CLAIM"),
    Refusal("claim-act", {"claims": {"act": {"sub": "x"}}}, "RESERVED_CLAIM"),
    Refusal("claim-cnf", {"claims": {"cnf": {"jkt": "x"}}}, "RESERVED_CLAIM"),
    Refusal(
        "thirty-three-claims",
        {"claims": {f"c{n}": "v" for n in range(33)}},
        "TOO_MANY_CLAIMS",
    ),
    Refusal("lifetime-zero", {"lifetime_seconds": 0}, "INVALID_LIFETIME"),
    Refusal("lifetime-negative", {"lifetime_seconds": -1}, "INVALID_LIFETIME"),
    Refusal(
        "lifetime-above-three-hours", {"lifetime_seconds": 10801}, "INVALID_LIFETIME"
    ),
    Refusal("not-after-in-the-past", {"not_after": NOW - 1}, "INVALID_LIFETIME"),
    Refusal("not-after-now", {"not_after": NOW}, "INVALID_LIFETIME"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=lambda case: case.name)
def test_mint_refuses_bad_request(case: Refusal, signer: SigningKey) -> None:
    with pytest.raises(InvalidRequest) as caught:
        mint_now(request_for(**case.changes), signer)

    assert caught.value.reason == case.reason
    assert caught.value.oauth_error == "invalid_request"


def test_mint_accepts_the_longest_lifetime(signer: SigningKey) -> None:
    minted = mint_now(request_for(lifetime_seconds=10800), signer)

    assert minted.expires_at == NOW + 10800


def test_mint_clamps_expiry_to_not_after(signer: SigningKey) -> None:
    minted = mint_now(request_for(not_after=NOW + 600), signer)

    assert minted.expires_at == NOW + 600
    assert claims_of(minted, signer)["exp"] == NOW + 600


def test_mint_ignores_a_not_after_later_than_the_lifetime(signer: SigningKey) -> None:
    minted = mint_now(request_for(not_after=NOW + 99999), signer)

    assert minted.expires_at == NOW + 3600


def test_mint_sets_registered_claims(signer: SigningKey) -> None:
    minted = mint_now(request_for(), signer)

    claims = claims_of(minted, signer)
    assert claims["iss"] == ISSUER
    assert claims["sub"] == SUBJECT
    assert claims["aud"] == "payments-api"
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (NOW, NOW, NOW + 3600)
    assert claims["jti"] == minted.token_id
    assert claims["workload_type"] == "ci-job"
    assert "act" not in claims


def test_mint_reports_the_facts_of_the_token(signer: SigningKey) -> None:
    minted = mint_now(request_for(), signer)

    assert minted.key_id == signer.kid
    assert minted.issued_at == NOW
    assert minted.expires_at == NOW + 3600
    assert parse_compact(minted.token).header == {
        "alg": "ES256",
        "kid": signer.kid,
        "typ": "JWT",
    }


def test_mint_writes_several_audiences_as_a_list(signer: SigningKey) -> None:
    minted = mint_now(request_for(audiences=["payments-api", "search-api"]), signer)

    assert claims_of(minted, signer)["aud"] == ["payments-api", "search-api"]


def test_mint_joins_scopes_with_spaces(signer: SigningKey) -> None:
    minted = mint_now(request_for(scopes=["payments.read", "payments.write"]), signer)

    assert claims_of(minted, signer)["scope"] == "payments.read payments.write"


def test_mint_leaves_scope_out_when_none_is_granted(signer: SigningKey) -> None:
    minted = mint_now(request_for(scopes=[]), signer)

    assert "scope" not in claims_of(minted, signer)


def test_mint_sets_the_act_claim(signer: SigningKey) -> None:
    act = {"sub": "spiffe://acme.example/payments-k8s/deployer", "act": {"sub": "x"}}

    minted = mint_now(request_for(act=act), signer)

    assert claims_of(minted, signer)["act"] == act


def test_mint_gives_each_token_its_own_jti(signer: SigningKey) -> None:
    first = mint_now(request_for(), signer)
    second = mint_now(request_for(), signer)

    assert first.token_id != second.token_id
    assert claims_of(first, signer)["jti"] != claims_of(second, signer)["jti"]


def test_mint_refuses_a_token_larger_than_8_kb(signer: SigningKey) -> None:
    claims = {f"big{n}": "x" * 1000 for n in range(10)}

    with pytest.raises(TokenTooLarge) as caught:
        mint_now(request_for(claims=claims), signer)

    assert caught.value.reason == "TOKEN_TOO_LARGE"
    assert caught.value.oauth_error == "invalid_request"


AUDIENCES = {
    "payments-api": Audience("payments-api", max_lifetime_seconds=3600),
    "ledger-admin": Audience("ledger-admin", max_lifetime_seconds=7200),
}


def mint_limited(
    request: TokenRequest, signer: SigningKey, **limits: Any
) -> MintedToken:
    return mint(
        request,
        issuer=ISSUER,
        trust_domain=TRUST_DOMAIN,
        signer=signer,
        now=NOW,
        limits=MintLimits(**limits),
    )


def test_mint_refuses_an_audience_not_in_the_trust_configuration(
    signer: SigningKey,
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        mint_limited(request_for(audiences=["search-api"]), signer, audiences=AUDIENCES)

    assert caught.value.reason == "UNKNOWN_AUDIENCE"


def test_mint_refuses_a_lifetime_past_the_audiences_maximum(
    signer: SigningKey,
) -> None:
    request = request_for(
        audiences=["payments-api", "ledger-admin"], lifetime_seconds=3601
    )

    with pytest.raises(InvalidRequest) as caught:
        mint_limited(request, signer, audiences=AUDIENCES)

    assert caught.value.reason == "INVALID_LIFETIME"
    assert caught.value.message == "lifetime must be 1 to 3600 seconds"


def test_mint_refuses_a_lifetime_past_the_configured_maximum(
    signer: SigningKey,
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        mint_limited(request_for(lifetime_seconds=601), signer, max_lifetime=600)

    assert caught.value.reason == "INVALID_LIFETIME"


def test_mint_never_lets_a_token_outlive_its_signing_key(signer: SigningKey) -> None:
    minted = mint_limited(
        request_for(lifetime_seconds=3600), signer, key_bound=NOW + 60
    )

    assert minted.expires_at == NOW + 60
    assert claims_of(minted, signer)["exp"] == NOW + 60


def test_mint_refuses_to_sign_with_a_key_past_its_bound(signer: SigningKey) -> None:
    with pytest.raises(TemporarilyUnavailable) as caught:
        mint_limited(request_for(), signer, key_bound=NOW)

    assert caught.value.reason == "NO_SIGNING_KEY"
