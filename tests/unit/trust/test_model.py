"""Tests for wif.trust.model: each kind of document, parsed on its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from wif.errors import ConfigError
from wif.trust.model import (
    MIN_LIFETIME_SECONDS,
    check_id,
    parse_audience,
    parse_policy,
    parse_pool,
    parse_provider,
    parse_workload,
)

WHERE = "providers[0]"


def provider_doc(**changes: Any) -> dict[str, Any]:
    """A small valid provider document, with ``changes`` applied."""
    doc: dict[str, Any] = {
        "id": "ci",
        "pool": "payments-ci",
        "issuer": "https://ci.example.test",
        "audiences": ["https://wif.acme.example"],
        "condition": "assertion.ref == 'refs/heads/main'",
        "mapping": {"subject": "assertion.repository"},
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


@pytest.mark.parametrize(
    "value", ["a", "acme", "payments-ci", "a.b_c-d", "0day", "x" * 63]
)
def test_check_id_accepts_lower_case_names(value: str) -> None:
    assert check_id(value, "pools[0].id") == value


@pytest.mark.parametrize(
    "value", ["", "Acme", "-acme", ".acme", "a/b", "a#1", "a b", "x" * 64]
)
def test_check_id_refuses_other_names(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_id(value, "pools[0].id")

    assert caught.value.message.startswith(f"pools[0].id: {value!r} must be lower-case")


def test_parse_pool_reads_id_parent_and_description() -> None:
    pool = parse_pool({"id": "payments", "parent": "acme", "description": "d"}, "p")

    assert (pool.id, pool.parent, pool.description) == ("payments", "acme", "d")


def test_parse_pool_refuses_a_document_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_pool(["acme"], "pools[0]")

    assert caught.value.message == "pools[0]: must be a mapping"


def test_parse_pool_refuses_a_missing_id() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_pool({"parent": "acme"}, "pools[0]")

    assert caught.value.message == "pools[0].id: must be a non-empty string"


def test_parse_provider_applies_defaults() -> None:
    provider = parse_provider(provider_doc(), WHERE)

    assert provider.algorithms == ("ES256", "RS256")
    assert provider.jwks.discovery is True
    assert provider.jwks.uri is None
    assert provider.max_token_age_seconds == 3600
    assert provider.clock_skew_seconds == 30
    assert provider.bound_to_subject_expiry is False
    assert provider.condition is not None
    assert provider.mapping.attributes == {}


def test_parse_provider_keeps_expression_sources() -> None:
    provider = parse_provider(
        provider_doc(mapping={"subject": "assertion.sub", "attributes": {"a": "'x'"}}),
        WHERE,
    )

    assert provider.mapping.subject.source == "assertion.sub"
    assert provider.mapping.attributes["a"].source == "'x'"


def test_parse_provider_accepts_http_issuer_on_loopback_when_allowed() -> None:
    doc = provider_doc(issuer="http://[::1]:8080", allow_http_on_loopback=True)

    assert parse_provider(doc, WHERE).issuer == "http://[::1]:8080"


def test_parse_provider_accepts_inline_keys() -> None:
    jwk = {"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k"}

    provider = parse_provider(provider_doc(jwks={"keys": [jwk]}), WHERE)

    assert provider.jwks.discovery is False
    assert provider.jwks.keys == (jwk,)


@dataclass(frozen=True)
class BadProvider:
    name: str
    doc: dict[str, Any]
    message: str


BAD_PROVIDERS = [
    BadProvider(
        "jwks-uri-and-discovery",
        provider_doc(jwks={"uri": "https://ci.example.test/jwks", "discovery": True}),
        "providers[0].jwks: give exactly one of discovery, uri or keys",
    ),
    BadProvider(
        "jwks-no-source",
        provider_doc(jwks={"discovery": False}),
        "providers[0].jwks: give exactly one of discovery, uri or keys",
    ),
    BadProvider(
        "jwks-empty-keys",
        provider_doc(jwks={"keys": []}),
        "providers[0].jwks.keys: must be a non-empty list of JWKs",
    ),
    BadProvider(
        "jwks-keys-not-objects",
        provider_doc(jwks={"keys": ["k"]}),
        "providers[0].jwks.keys: must be a non-empty list of JWKs",
    ),
    BadProvider(
        "jwks-http-uri-off-loopback",
        provider_doc(jwks={"uri": "http://ci.example.test/jwks"}),
        "providers[0].jwks.uri: must be an https URL (http only on loopback)",
    ),
    BadProvider(
        "issuer-https-without-host",
        provider_doc(issuer="https:///path"),
        "providers[0].issuer: must be an https URL (http only on loopback)",
    ),
    BadProvider(
        "algorithms-not-a-list",
        provider_doc(algorithms="ES256"),
        "providers[0].algorithms: must be a list of strings",
    ),
    BadProvider(
        "max-token-age-zero",
        provider_doc(max_token_age_seconds=0),
        "providers[0].max_token_age_seconds: must be between 1 and 86400",
    ),
    BadProvider(
        "clock-skew-negative",
        provider_doc(clock_skew_seconds=-1),
        "providers[0].clock_skew_seconds: must be between 0 and 300",
    ),
    BadProvider(
        "clock-skew-a-string",
        provider_doc(clock_skew_seconds="30"),
        "providers[0].clock_skew_seconds: must be an integer",
    ),
    BadProvider(
        "bound-to-subject-expiry-a-string",
        provider_doc(bound_to_subject_expiry="yes"),
        "providers[0].bound_to_subject_expiry: must be true or false",
    ),
    BadProvider(
        "mapping-without-subject",
        provider_doc(mapping={"attributes": {"a": "'x'"}}),
        "providers[0].mapping.subject: must be a non-empty string",
    ),
    BadProvider(
        "mapping-attribute-upper-case-name",
        provider_doc(mapping={"subject": "'x'", "attributes": {"Repo": "'x'"}}),
        "providers[0].mapping.attributes: 'Repo' must be lower-case",
    ),
    BadProvider(
        "mapping-attribute-named-act",
        provider_doc(mapping={"subject": "'x'", "attributes": {"act": "'x'"}}),
        "providers[0].mapping.attributes.act: a claim the ITS sets itself",
    ),
    BadProvider(
        "mapping-unknown-setting",
        provider_doc(mapping={"subject": "'x'", "attribute": {}}),
        "providers[0].mapping: unknown setting 'attribute'",
    ),
    BadProvider(
        "condition-empty",
        provider_doc(condition=""),
        "providers[0].condition: must be a non-empty string",
    ),
]


@pytest.mark.parametrize("case", BAD_PROVIDERS, ids=lambda case: case.name)
def test_parse_provider_refuses_bad_document(case: BadProvider) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_provider(case.doc, WHERE)

    assert caught.value.message.startswith(case.message)


def test_parse_audience_applies_defaults() -> None:
    audience = parse_audience({"id": "internal"}, "audiences[0]")

    assert audience.parent is None
    assert audience.resources == ()
    assert audience.scopes == ()
    assert audience.max_lifetime_seconds == MIN_LIFETIME_SECONDS


def test_parse_audience_accepts_http_resource_on_loopback() -> None:
    doc = {"id": "local", "resources": ["http://127.0.0.1:9000"]}

    assert parse_audience(doc, "audiences[0]").resources == ("http://127.0.0.1:9000",)


def test_parse_audience_refuses_http_resource_off_loopback() -> None:
    doc = {"id": "api", "resources": ["http://api.acme.example"]}

    with pytest.raises(ConfigError) as caught:
        parse_audience(doc, "audiences[0]")

    assert caught.value.message == (
        "audiences[0].resources: must be an https URL (http only on loopback)"
    )


def test_parse_audience_refuses_a_scope_listed_twice() -> None:
    doc = {"id": "api", "scopes": ["read", "read"]}

    with pytest.raises(ConfigError) as caught:
        parse_audience(doc, "audiences[0]")

    assert caught.value.message == "audiences[0].scopes: holds a value twice"


def test_parse_audience_refuses_an_id_that_is_not_a_document_id() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_audience({"id": "payments api"}, "audiences[0]")

    assert caught.value.message.startswith("audiences[0].id: 'payments api' must be")


def test_parse_workload_reads_string_attributes() -> None:
    doc = {"path": "acme-corp/api", "pool": "payments", "attributes": {"a": "b"}}

    workload = parse_workload(doc, "workloads[0]")

    assert (workload.path, workload.pool) == ("acme-corp/api", "payments")
    assert workload.attributes == {"a": "b"}


def test_parse_workload_refuses_attributes_that_are_not_strings() -> None:
    doc = {"path": "acme-corp/api", "pool": "payments", "attributes": {"level": 3}}

    with pytest.raises(ConfigError) as caught:
        parse_workload(doc, "workloads[0]")

    assert caught.value.message == "workloads[0].attributes: values must be strings"


def test_parse_policy_reads_id_text_and_description() -> None:
    doc = {"id": "p", "cedar": "permit (principal, action, resource);"}

    policy = parse_policy(doc, "policies[0]")

    assert policy.id == "p"
    assert policy.cedar.startswith("permit")
    assert policy.description == ""


def test_parse_policy_refuses_a_policy_without_text() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy({"id": "p"}, "policies[0]")

    assert caught.value.message == "policies[0].cedar: must be a non-empty string"
