"""Tests for wif.trust.config: the whole configuration, checked as one."""

from __future__ import annotations

import copy
import gc
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wif.errors import ConfigError
from wif.trust.config import (
    TRUST_PREFIX,
    TrustConfig,
    build_config,
    from_etcd_items,
    gradual_release,
    load_file,
    to_etcd_items,
)
from wif.trust.source import expand_variables

Edit = Callable[[dict[str, Any]], None]

GOOD_CONDITION = "assertion.ref == 'refs/heads/main'"
GOOD_POLICY = 'permit (principal, action, resource == Audience::"payments-api");'


def _walk(doc: Any, path: str) -> tuple[Any, Any]:
    """The container holding the last step of a dotted ``path``, and that step."""
    *steps, last = (int(s) if s.isdigit() else s for s in path.split("."))
    for step in steps:
        doc = doc[step]
    return doc, last


def setting(path: str, value: Any) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        container, last = _walk(raw, path)
        container[last] = value

    return edit


def removing(path: str) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        container, last = _walk(raw, path)
        del container[last]

    return edit


def copying(kind: str, index: int, **changes: Any) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        raw[kind].append({**copy.deepcopy(raw[kind][index]), **changes})

    return edit


def both(*edits: Edit) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        for each in edits:
            each(raw)

    return edit


def test_load_file_accepts_the_dev_configuration(dev_config: TrustConfig) -> None:
    assert dev_config.trust_domain == "acme.example"
    assert dev_config.issuer == "http://127.0.0.1:1"
    assert set(dev_config.pools) == {
        "acme",
        "payments",
        "payments-ci",
        "payments-k8s",
        "search",
    }
    assert set(dev_config.providers) == {"ci"}
    assert set(dev_config.audiences) == {
        "internal",
        "payments-api",
        "search-api",
        "ledger-admin",
        "wif-sts",
    }
    assert dev_config.revision == 0


def test_load_file_indexes_providers_by_exact_issuer(dev_config: TrustConfig) -> None:
    provider = dev_config.provider_for_issuer("http://127.0.0.1:2")

    assert provider is not None
    assert provider.id == "ci"
    assert dev_config.provider_for_issuer("http://127.0.0.1:2/") is None


def test_load_file_indexes_audiences_by_resource(dev_config: TrustConfig) -> None:
    audience = dev_config.audience_for_resource("https://payments.acme.example")

    assert audience is not None
    assert audience.id == "payments-api"
    assert dev_config.audience_for_resource("https://nosuch.acme.example") is None


def test_pool_ancestry_lists_nearest_first(dev_config: TrustConfig) -> None:
    assert dev_config.pool_ancestry("payments-ci") == [
        "payments-ci",
        "payments",
        "acme",
    ]
    assert dev_config.pool_ancestry("acme") == ["acme"]


def test_build_config_trims_a_trailing_slash_of_the_mesh_issuer(
    dev_raw: dict[str, Any],
) -> None:
    dev_raw["mesh"]["issuer"] = "https://wif.acme.example/"

    assert build_config(dev_raw).issuer == "https://wif.acme.example"


def test_build_config_accepts_accept_all_tokens_without_condition(
    dev_raw: dict[str, Any],
) -> None:
    del dev_raw["providers"][0]["condition"]
    dev_raw["providers"][0]["accept_all_tokens_from_issuer"] = True

    assert build_config(dev_raw).providers["ci"].condition is None


@dataclass(frozen=True)
class Broken:
    name: str
    edit: Edit
    message: str


BROKEN = [
    # Misspelt or unknown settings stop the configuration.
    Broken(
        "misspelt-provider-setting",
        setting("providers.0.max_token_age", 900),
        "providers[0]: unknown setting 'max_token_age'",
    ),
    Broken(
        "misspelt-pool-setting",
        setting("pools.1.parnet", "acme"),
        "pools[1]: unknown setting 'parnet'",
    ),
    Broken(
        "misspelt-mesh-setting",
        setting("mesh.trust_domian", "acme.example"),
        "mesh: unknown setting 'trust_domian'",
    ),
    Broken(
        "misspelt-jwks-setting",
        setting("providers.0.jwks", {"discovery": True, "url": "https://x.test"}),
        "providers[0].jwks: unknown setting 'url'",
    ),
    Broken("unknown-section", setting("policy", []), "unknown section 'policy'"),
    # The attribute condition: one of condition or accept_all, never both.
    Broken(
        "provider-without-condition",
        removing("providers.0.condition"),
        "providers[0].condition: a provider needs an attribute condition, "
        "or accept_all_tokens_from_issuer: true",
    ),
    Broken(
        "provider-with-condition-and-accept-all",
        setting("providers.0.accept_all_tokens_from_issuer", True),
        "providers[0].condition: give a condition or "
        "accept_all_tokens_from_issuer, not both",
    ),
    Broken(
        "provider-with-accept-all-false-and-no-condition",
        both(
            removing("providers.0.condition"),
            setting("providers.0.accept_all_tokens_from_issuer", False),
        ),
        "providers[0].condition: a provider needs an attribute condition",
    ),
    # Audiences and algorithms.
    Broken(
        "provider-with-empty-audiences",
        setting("providers.0.audiences", []),
        "providers[0].audiences: must not be empty",
    ),
    Broken(
        "provider-without-audiences",
        removing("providers.0.audiences"),
        "providers[0].audiences: must not be empty",
    ),
    Broken(
        "provider-with-duplicate-audience",
        setting("providers.0.audiences", ["https://a.test", "https://a.test"]),
        "providers[0].audiences: holds a value twice",
    ),
    Broken(
        "provider-allowing-hs256",
        setting("providers.0.algorithms", ["ES256", "HS256"]),
        "providers[0].algorithms: 'HS256' is not allowed",
    ),
    Broken(
        "provider-allowing-none",
        setting("providers.0.algorithms", ["none"]),
        "providers[0].algorithms: 'none' is not allowed",
    ),
    # Issuers: https, or http on loopback when explicitly allowed.
    Broken(
        "provider-http-issuer-off-loopback",
        setting("providers.0.issuer", "http://idp.example.test"),
        "providers[0].issuer: must be an https URL (http only on loopback)",
    ),
    Broken(
        "provider-http-issuer-on-a-loopback-lookalike",
        setting("providers.0.issuer", "http://127.0.0.1.example.test"),
        "providers[0].issuer: must be an https URL (http only on loopback)",
    ),
    Broken(
        "provider-http-loopback-issuer-not-allowed",
        removing("providers.0.allow_http_on_loopback"),
        "providers[0].issuer: must be an https URL (http only on loopback)",
    ),
    Broken(
        "mesh-http-issuer-off-loopback",
        setting("mesh.issuer", "http://wif.acme.example"),
        "mesh.issuer: must be an https URL (http only on loopback)",
    ),
    Broken(
        "mesh-http-issuer-on-a-loopback-lookalike",
        setting("mesh.issuer", "http://127.0.0.1.example.test"),
        "mesh.issuer: must be an https URL (http only on loopback)",
    ),
    Broken(
        "mesh-http-issuer-on-a-localhost-lookalike",
        setting("mesh.issuer", "http://localhost.example.test"),
        "mesh.issuer: must be an https URL (http only on loopback)",
    ),
    Broken(
        "mesh-upper-case-trust-domain",
        setting("mesh.trust_domain", "Acme.example"),
        "mesh.trust_domain: not a valid SPIFFE trust domain",
    ),
    Broken(
        "issuer-duplicated-across-providers",
        copying("providers", 0, id="ci-copy"),
        "providers issuer: 'http://127.0.0.1:2' is defined twice",
    ),
    # References and hierarchies.
    Broken(
        "provider-in-unknown-pool",
        setting("providers.0.pool", "nosuch"),
        "providers.ci: pool 'nosuch' unknown",
    ),
    Broken(
        "pool-parent-cycle",
        setting("pools.0.parent", "payments-ci"),
        "pools.acme: parents form a cycle",
    ),
    Broken(
        "pool-is-its-own-parent",
        setting("pools.4.parent", "search"),
        "pools.search: parents form a cycle",
    ),
    Broken(
        "pool-with-unknown-parent",
        setting("pools.4.parent", "nosuch"),
        "pools.search: parent 'nosuch' is not defined",
    ),
    Broken(
        "audience-with-unknown-parent",
        setting("audiences.3.parent", "nosuch"),
        "audiences.ledger-admin: parent 'nosuch' is not defined",
    ),
    Broken(
        "pool-defined-twice",
        copying("pools", 4),
        "pools: 'search' is defined twice",
    ),
    Broken(
        "policy-defined-twice",
        copying("policies", 2),
        "policies: 'search-is-isolated' is defined twice",
    ),
    Broken(
        "resource-claimed-by-two-audiences",
        setting("audiences.2.resources", ["https://payments.acme.example"]),
        "audiences resource: 'https://payments.acme.example' is defined twice",
    ),
    Broken(
        "workload-in-unknown-pool",
        setting("workloads", [{"path": "acme-corp/x", "pool": "nosuch"}]),
        "workloads.acme-corp/x: pool 'nosuch' unknown",
    ),
    Broken(
        "workload-with-dot-dot-path",
        setting("workloads", [{"path": "acme-corp/../x", "pool": "payments"}]),
        "workloads.acme-corp/../x: not a valid SPIFFE ID path",
    ),
    # Bounds.
    Broken(
        "clock-skew-above-300",
        setting("providers.0.clock_skew_seconds", 301),
        "providers[0].clock_skew_seconds: must be between 0 and 300",
    ),
    Broken(
        "audience-lifetime-below-an-hour",
        setting("audiences.1.max_lifetime_seconds", 3599),
        "audiences[1].max_lifetime_seconds: must be between 3600 and 10800",
    ),
    Broken(
        "audience-lifetime-above-three-hours",
        setting("audiences.1.max_lifetime_seconds", 10801),
        "audiences[1].max_lifetime_seconds: must be between 3600 and 10800",
    ),
    Broken(
        "audience-id-with-upper-case",
        setting("audiences.3.id", "Ledger-Admin"),
        "audiences[3].id: 'Ledger-Admin' must be lower-case letters",
    ),
    # Mapping and expressions.
    Broken(
        "mapping-attribute-named-scope",
        setting("providers.0.mapping.attributes.scope", "'payments.write'"),
        "providers[0].mapping.attributes.scope: a claim the ITS sets itself",
    ),
    Broken(
        "mapping-attribute-named-sub",
        setting("providers.0.mapping.attributes.sub", "assertion.sub"),
        "providers[0].mapping.attributes.sub: a claim the ITS sets itself",
    ),
    Broken(
        "condition-with-bad-cel",
        setting("providers.0.condition", "assertion.ref =="),
        "providers[0].condition: Failed to parse expression",
    ),
    Broken(
        "mapping-subject-with-bad-cel",
        setting("providers.0.mapping.subject", "assertion.("),
        "providers[0].mapping.subject: Failed to parse expression",
    ),
    Broken(
        "mapping-attribute-with-bad-cel",
        setting("providers.0.mapping.attributes.ref", "'unterminated"),
        "providers[0].mapping.attributes.ref: Failed to parse expression",
    ),
    # Cedar policies.
    Broken(
        "cedar-policy-failing-schema-validation",
        setting(
            "policies.0.cedar",
            'permit (principal, action, resource) when { principal.nosuch == "x" };',
        ),
        "policies.payments-reach-internal-payments: ",
    ),
    Broken(
        "cedar-policy-with-syntax-error",
        setting("policies.2.cedar", "forbid (principal, action"),
        "policies.search-is-isolated: Policy parse error",
    ),
]


@pytest.mark.parametrize("case", BROKEN, ids=lambda case: case.name)
def test_build_config_refuses_broken_document(
    case: Broken, dev_raw: dict[str, Any]
) -> None:
    case.edit(dev_raw)

    with pytest.raises(ConfigError) as caught:
        build_config(dev_raw)

    assert case.message in caught.value.message
    assert caught.value.reason == "INVALID_CONFIGURATION"


def test_build_config_names_the_cedar_attribute_that_fails_validation(
    dev_raw: dict[str, Any],
) -> None:
    dev_raw["policies"][0]["cedar"] = (
        'permit (principal, action, resource) when { principal.nosuch == "x" };'
    )

    with pytest.raises(ConfigError, match=r"attribute `nosuch` on entity type"):
        build_config(dev_raw)


def test_load_file_refuses_an_unset_variable(
    dev_trust_file: Path, dev_environ: dict[str, str]
) -> None:
    del dev_environ["WIF_DEV_OIDC_ISSUER"]

    with pytest.raises(ConfigError) as caught:
        load_file(dev_trust_file, environ=dev_environ)

    assert caught.value.message == "variable ${WIF_DEV_OIDC_ISSUER} is not set"


def test_load_file_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read .*nosuch\.yaml"):
        load_file(tmp_path / "nosuch.yaml", environ={})


def test_load_file_refuses_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text("mesh: [unclosed\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"not valid YAML"):
        load_file(path, environ={})


def test_expand_variables_fills_in_every_occurrence() -> None:
    raw = {"a": "${ONE}", "b": ["${ONE}-${TWO}"], "c": "$NOT_A_VARIABLE", "d": 3}

    expanded = expand_variables(raw, {"ONE": "1", "TWO": "2"})

    assert expanded == {"a": "1", "b": ["1-2"], "c": "$NOT_A_VARIABLE", "d": 3}


def test_a_variable_value_is_data_and_never_adds_keys(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text("mesh:\n  trust_domain: ${TD}\n  issuer: https://x.example\n")

    with pytest.raises(ConfigError, match=r"mesh.trust_domain"):
        load_file(path, environ={"TD": "acme.example\n  condition: 'true'"})


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text("mesh:\n  trust_domain: a\n  trust_domain: b\n")

    with pytest.raises(
        ConfigError, match=r"line 3: the key 'trust_domain' is given twice"
    ):
        load_file(path, environ={})


def test_to_etcd_items_writes_one_document_per_key(dev_config: TrustConfig) -> None:
    items = to_etcd_items(dev_config)

    assert all(key.startswith(TRUST_PREFIX) for key in items)
    assert json.loads(items[TRUST_PREFIX + "mesh"]) == dev_config.documents["mesh"]
    assert TRUST_PREFIX + "pools/payments-ci" in items
    assert TRUST_PREFIX + "providers/ci" in items
    assert TRUST_PREFIX + "policies/search-is-isolated" in items
    assert len(items) == 1 + 5 + 1 + 5 + 6


def test_etcd_items_round_trip_keeps_documents_and_revision(
    dev_config: TrustConfig,
) -> None:
    items = to_etcd_items(dev_config)

    rebuilt = from_etcd_items(items, revision=42)

    assert rebuilt.revision == 42
    assert to_etcd_items(rebuilt) == items
    for kind in ("pools", "providers", "audiences", "policies"):
        by_id = {doc["id"]: doc for doc in dev_config.documents[kind]}
        assert {doc["id"]: doc for doc in rebuilt.documents[kind]} == by_id
    assert rebuilt.pools == dev_config.pools
    assert rebuilt.audiences == dev_config.audiences
    assert sorted(rebuilt.compiled.ids) == sorted(dev_config.compiled.ids)


def test_etcd_items_round_trip_keeps_workloads(dev_raw: dict[str, Any]) -> None:
    dev_raw["workloads"] = [
        {
            "path": "acme-corp/payments-api",
            "pool": "payments-ci",
            "attributes": {"security_clearance": "high"},
        }
    ]
    items = to_etcd_items(build_config(dev_raw))

    rebuilt = from_etcd_items(items, revision=7)

    assert TRUST_PREFIX + "workloads/payments-ci/acme-corp/payments-api" in items
    workload = rebuilt.workloads[("payments-ci", "acme-corp/payments-api")]
    assert workload.attributes == {"security_clearance": "high"}


def test_from_etcd_items_refuses_a_snapshot_without_mesh(
    dev_config: TrustConfig,
) -> None:
    items = to_etcd_items(dev_config)
    del items[TRUST_PREFIX + "mesh"]

    with pytest.raises(ConfigError) as caught:
        from_etcd_items(items, revision=3)

    assert caught.value.message == "no trust configuration has been applied"


def test_from_etcd_items_refuses_a_document_that_is_not_json(
    dev_config: TrustConfig,
) -> None:
    items = to_etcd_items(dev_config)
    items[TRUST_PREFIX + "pools/acme"] = b"{not json"

    with pytest.raises(ConfigError) as caught:
        from_etcd_items(items, revision=3)

    assert caught.value.message == "/wif/trust/pools/acme: not valid JSON"


def test_from_etcd_items_refuses_an_unknown_kind(dev_config: TrustConfig) -> None:
    items = to_etcd_items(dev_config)
    items[TRUST_PREFIX + "gadgets/x"] = b"{}"

    with pytest.raises(ConfigError) as caught:
        from_etcd_items(items, revision=3)

    assert caught.value.message == "/wif/trust/gadgets/x: unknown kind of document"


def test_from_etcd_items_revalidates_every_document(dev_config: TrustConfig) -> None:
    items = to_etcd_items(dev_config)
    provider = json.loads(items[TRUST_PREFIX + "providers/ci"])
    provider["algorithms"] = ["HS256"]
    items[TRUST_PREFIX + "providers/ci"] = json.dumps(provider).encode()

    with pytest.raises(ConfigError, match=r"'HS256' is not allowed"):
        from_etcd_items(items, revision=3)


def test_compiled_policy_ids_are_the_document_ids(dev_config: TrustConfig) -> None:
    assert dev_config.compiled.ids == (
        "payments-reach-internal-payments",
        "production-deploys-only",
        "search-is-isolated",
        "payments-access-payments-api",
        "payments-reach-the-sts",
        "token-administration-for-mesh-operations-only",
    )


def test_compiled_policy_ids_number_the_statements_of_one_document(
    dev_raw: dict[str, Any],
) -> None:
    dev_raw["policies"].append(
        {"id": "two-rules", "cedar": GOOD_POLICY + "\n" + GOOD_POLICY}
    )

    config = build_config(dev_raw)

    assert config.compiled.ids[-2:] == ("two-rules#1", "two-rules#2")


def test_build_config_compiles_shadow_policies_apart(dev_raw: dict[str, Any]) -> None:
    dev_raw["shadow_policies"] = [{"id": "candidate", "cedar": GOOD_POLICY}]

    config = build_config(dev_raw)

    assert config.shadow is not None
    assert config.shadow.ids == ("candidate",)
    assert "candidate" not in config.compiled.ids
    assert build_config({**dev_raw, "shadow_policies": []}).shadow is None


def test_build_config_validates_shadow_policies_like_policies(
    dev_raw: dict[str, Any],
) -> None:
    dev_raw["shadow_policies"] = [
        {"id": "candidate", "cedar": "permit (principal, action, resource) when { 1 };"}
    ]

    with pytest.raises(ConfigError) as caught:
        build_config(dev_raw)

    assert caught.value.message.startswith("shadow_policies.candidate: ")


def test_shadow_policies_round_trip_through_etcd_items(dev_raw: dict[str, Any]) -> None:
    dev_raw["shadow_policies"] = [{"id": "candidate", "cedar": GOOD_POLICY}]
    items = to_etcd_items(build_config(dev_raw))

    assert TRUST_PREFIX + "shadow_policies/candidate" in items
    rebuilt = from_etcd_items(items, 9)
    assert rebuilt.shadow is not None
    assert rebuilt.shadow.ids == ("candidate",)


def _edited(items: dict[str, bytes], key: str, **changes: Any) -> dict[str, bytes]:
    edited = dict(items)
    doc = json.loads(items[TRUST_PREFIX + key])
    doc.update(changes)
    edited[TRUST_PREFIX + key] = json.dumps(doc, sort_keys=True).encode()
    return edited


def test_from_etcd_items_parses_only_what_changed_since_the_previous_one(
    dev_config: TrustConfig,
) -> None:
    items = to_etcd_items(dev_config)
    previous = from_etcd_items(items, revision=1)
    changed = _edited(items, "providers/ci", max_token_age_seconds=600)
    del changed[TRUST_PREFIX + "policies/search-is-isolated"]

    rebuilt = from_etcd_items(changed, 2, previous)

    assert rebuilt.providers["ci"].max_token_age_seconds == 600
    assert rebuilt.providers["ci"] is not previous.providers["ci"]
    assert all(rebuilt.pools[p] is previous.pools[p] for p in previous.pools)
    assert "search-is-isolated" not in rebuilt.compiled.ids
    whole = from_etcd_items(changed, 2)
    assert to_etcd_items(rebuilt) == to_etcd_items(whole) == changed
    assert rebuilt.compiled.ids == whole.compiled.ids
    assert (rebuilt.pools, rebuilt.audiences) == (whole.pools, whole.audiences)


def test_from_etcd_items_checks_unchanged_documents_against_changed_ones(
    dev_config: TrustConfig,
) -> None:
    items = to_etcd_items(dev_config)
    previous = from_etcd_items(items, revision=1)
    without_pool = dict(items)
    del without_pool[TRUST_PREFIX + "pools/payments-ci"]

    with pytest.raises(ConfigError) as caught:
        from_etcd_items(without_pool, 2, previous)

    assert caught.value.message == "providers.ci: pool 'payments-ci' unknown"


def test_from_etcd_items_refuses_a_changed_document_as_a_whole_rebuild_does(
    dev_config: TrustConfig,
) -> None:
    items = to_etcd_items(dev_config)
    previous = from_etcd_items(items, revision=1)
    changed = _edited(items, "providers/ci", algorithms=["HS256"])

    with pytest.raises(ConfigError) as incremental:
        from_etcd_items(changed, 2, previous)
    with pytest.raises(ConfigError) as whole:
        from_etcd_items(changed, 2)

    assert incremental.value.message == whole.value.message
    assert "'HS256' is not allowed" in whole.value.message


def test_gradual_release_leaves_the_configuration_and_its_successor_whole(
    dev_config: TrustConfig,
) -> None:
    items = to_etcd_items(dev_config)
    previous = from_etcd_items(items, revision=1)
    changed = _edited(items, "providers/ci", max_token_age_seconds=600)
    successor = from_etcd_items(changed, 2, previous)

    gradual_release(previous)()

    assert to_etcd_items(previous) == items
    assert previous.providers["ci"] == dev_config.providers["ci"]
    assert to_etcd_items(successor) == changed
    again = from_etcd_items(
        _edited(changed, "pools/acme", description="x"), 3, successor
    )
    assert again.providers["ci"] is successor.providers["ci"]
    assert again.pools["acme"].description == "x"


def test_a_configuration_is_freed_by_reference_counting_alone(
    dev_raw: dict[str, Any],
) -> None:
    # Services freeze what a load builds (wif.collector), which never frees
    # reference cycles: a configuration must hold none.
    dev_raw["workloads"] = [{"path": "a/b", "pool": "payments-ci"}]
    items = to_etcd_items(build_config(dev_raw))
    config = from_etcd_items(items, revision=1)
    parts = [
        config,
        config.compiled,
        *(next(iter(m.values())) for m in (config.pools, config.providers)),
        *(next(iter(m.values())) for m in (config.audiences, config.workloads)),
        *next(iter(config.providers.values())).mapping.attributes.values(),
    ]
    alive = [weakref.ref(part) for part in parts]

    gc.disable()
    try:
        del config, parts
        assert [ref() for ref in alive] == [None] * len(alive)
    finally:
        gc.enable()
