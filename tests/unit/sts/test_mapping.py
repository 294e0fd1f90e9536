"""Tests for services.sts.subject.map_principal: claims to a mesh principal."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from services.sts.subject import map_principal
from wif.errors import InvalidGrant
from wif.trust.config import TrustConfig
from wif.trust.expressions import CelInput, compile_expression
from wif.trust.model import AttributeMapping, Provider

TRUST_DOMAIN = "acme.example"


@pytest.fixture
def provider(dev_config: TrustConfig) -> Provider:
    return dev_config.providers["ci"]


def with_mapping(
    provider: Provider, subject: str, attributes: dict[str, str] | None = None
) -> Provider:
    mapping = AttributeMapping(
        subject=compile_expression(subject, "test.subject"),
        attributes={
            name: compile_expression(source, f"test.{name}")
            for name, source in (attributes or {}).items()
        },
    )
    return replace(provider, mapping=mapping)


def test_map_principal_builds_the_spiffe_subject_under_the_pool(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    principal = map_principal(provider, github_claims, TRUST_DOMAIN)

    assert principal.subject == (
        "spiffe://acme.example/payments-ci/acme-corp/payments-api"
    )
    assert principal.pool_id == "payments-ci"
    assert principal.provider_id == "ci"


def test_map_principal_maps_the_attributes(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    principal = map_principal(provider, github_claims, TRUST_DOMAIN)

    assert principal.attributes == {
        "repository": "acme-corp/payments-api",
        "ref": "refs/heads/main",
        "workflow": "deploy",
        "workload_type": "ci-job",
        "environment_tier": "production",
    }


def test_map_principal_falls_back_when_an_optional_claim_is_absent(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    del github_claims["environment"]

    principal = map_principal(provider, github_claims, TRUST_DOMAIN)

    assert principal.attributes["environment_tier"] == "none"


def test_map_principal_keeps_the_claims_and_token_id(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    principal = map_principal(provider, github_claims, TRUST_DOMAIN)

    assert principal.claims == github_claims
    assert principal.token_id == "6f1c9c7e-2b7a-4e3e-9d51-0c3f6a1b2e11"


def test_map_principal_gives_an_empty_token_id_without_jti(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    del github_claims["jti"]

    assert map_principal(provider, github_claims, TRUST_DOMAIN).token_id == ""


@pytest.mark.parametrize(
    ("source", "expected"),
    [("assertion.run_number", "417"), ("1 + 2", "3"), ("true", "true")],
)
def test_map_principal_writes_scalar_attributes_as_strings(
    source: str,
    expected: str,
    provider: Provider,
    github_claims: dict[str, Any],
) -> None:
    mapped = with_mapping(provider, "assertion.repository", {"value": source})

    principal = map_principal(mapped, github_claims, TRUST_DOMAIN)

    assert principal.attributes == {"value": expected}


def _refusal(
    provider: Provider, claims: dict[str, Any], trust_domain: str = TRUST_DOMAIN
) -> InvalidGrant:
    with pytest.raises(InvalidGrant) as caught:
        map_principal(provider, claims, trust_domain)
    return caught.value


def test_map_principal_refuses_a_mapping_reading_a_missing_claim(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    del github_claims["workflow"]

    error = _refusal(provider, github_claims)

    assert error.reason == "ATTRIBUTE_MAPPING_FAILED"
    assert error.oauth_error == "invalid_grant"


def test_map_principal_refuses_a_subject_reading_a_missing_claim(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    del github_claims["repository"]

    assert _refusal(provider, github_claims).reason == "ATTRIBUTE_MAPPING_FAILED"


@pytest.mark.parametrize(
    "repository",
    [
        "acme-corp/../search/x",
        "acme-corp//payments-api",
        "acme-corp/payments api",
        "acme-corp/payments%2Fapi",
        "/acme-corp/payments-api",
        "acme-corp/payments-api/",
        "",
    ],
)
def test_map_principal_refuses_a_subject_that_is_not_a_spiffe_path(
    repository: str, provider: Provider, github_claims: dict[str, Any]
) -> None:
    github_claims["repository"] = repository

    error = _refusal(provider, github_claims)

    assert error.reason == "ATTRIBUTE_MAPPING_FAILED"
    assert error.message == "the mapped subject is not a valid SPIFFE ID path"


def test_map_principal_refuses_a_subject_that_is_not_a_string(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    mapped = with_mapping(provider, "42")

    assert _refusal(mapped, github_claims).reason == "ATTRIBUTE_MAPPING_FAILED"


def test_map_principal_refuses_a_subject_making_an_overlong_id(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    github_claims["repository"] = "acme-corp/" + "a" * 2048

    error = _refusal(provider, github_claims)

    assert error.reason == "ATTRIBUTE_MAPPING_FAILED"
    assert "longer than 2048 characters" in error.message


@pytest.mark.parametrize("source", ["[1, 2]", "{'a': 1}", "null"])
def test_map_principal_refuses_an_attribute_that_is_not_a_scalar(
    source: str, provider: Provider, github_claims: dict[str, Any]
) -> None:
    mapped = with_mapping(provider, "assertion.repository", {"value": source})

    error = _refusal(mapped, github_claims)

    assert error.reason == "ATTRIBUTE_MAPPING_FAILED"
    assert error.message == "attribute mapping 'value' did not give a string"


def test_map_principal_gives_the_same_principal_from_a_cel_input(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    from_claims = map_principal(provider, github_claims, TRUST_DOMAIN)
    from_input = map_principal(provider, CelInput(github_claims), TRUST_DOMAIN)

    assert from_input == from_claims
    assert from_input.claims is github_claims


def test_map_principal_refuses_a_cel_input_missing_a_claim(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    del github_claims["workflow"]

    with pytest.raises(InvalidGrant) as caught:
        map_principal(provider, CelInput(github_claims), TRUST_DOMAIN)

    assert caught.value.reason == "ATTRIBUTE_MAPPING_FAILED"


def test_map_principal_refuses_claims_cel_cannot_take(
    provider: Provider, github_claims: dict[str, Any]
) -> None:
    github_claims["workflow"] = json.loads('"\\ud800"')  # a lone surrogate

    with pytest.raises(InvalidGrant) as caught:
        map_principal(provider, CelInput(github_claims), TRUST_DOMAIN)

    assert caught.value.reason == "ATTRIBUTE_MAPPING_FAILED"
    assert caught.value.message.startswith(
        "the attribute mapping could not be evaluated: "
    )
