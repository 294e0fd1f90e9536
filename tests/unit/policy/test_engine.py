"""Tests for services.policy.engine: Cedar decisions over the trust hierarchy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from services.policy.engine import DecisionInput, PolicyEngine
from wif.trust.config import TrustConfig, build_config

TRUST_DOMAIN = "acme.example"


def question(
    pool: str,
    *,
    audience: str = "payments-api",
    scopes: Sequence[str] = ("payments.read",),
    attributes: Mapping[str, Any] | None = None,
    action: str = "exchange",
    path: str = "acme-corp/payments-api",
) -> DecisionInput:
    return DecisionInput(
        subject=f"spiffe://{TRUST_DOMAIN}/{pool}/{path}",
        pool_id=pool,
        provider_id="ci",
        attributes=dict(attributes or {}),
        action=action,
        audience=audience,
        scopes=list(scopes),
        context={"source_address": "127.0.0.1", "now": 1_700_000_000},
    )


@pytest.fixture(scope="module")
def engine(dev_config: TrustConfig) -> PolicyEngine:
    engine = PolicyEngine()
    engine.load(dev_config)
    return engine


def test_decide_lets_a_grandchild_pool_inherit_its_ancestors_permit(
    engine: PolicyEngine,
) -> None:
    result = engine.decide(question("payments-ci"))

    assert result.allowed
    assert result.policy_ids == ("payments-reach-internal-payments",)
    assert result.errors == ()


def test_decide_lets_a_sibling_team_inherit_the_same_permit(
    engine: PolicyEngine,
) -> None:
    assert engine.decide(question("payments-k8s")).allowed


def test_decide_isolates_a_sibling_business_unit(engine: PolicyEngine) -> None:
    result = engine.decide(question("search"))

    assert not result.allowed
    assert result.policy_ids == ("search-is-isolated",)
    assert result.errors == ()


def test_decide_denies_the_parent_pool_without_a_permit(engine: PolicyEngine) -> None:
    result = engine.decide(question("acme"))

    assert not result.allowed
    assert result.policy_ids == ()


def test_decide_denies_an_audience_no_policy_permits(engine: PolicyEngine) -> None:
    result = engine.decide(question("payments-ci", audience="ledger-admin", scopes=()))

    assert not result.allowed
    assert result.policy_ids == ()


@pytest.mark.parametrize("tier", [None, "staging", "Production"])
def test_decide_forbids_write_scope_outside_production(
    tier: str | None, engine: PolicyEngine
) -> None:
    attributes = {} if tier is None else {"environment_tier": tier}

    result = engine.decide(
        question("payments-ci", scopes=("payments.write",), attributes=attributes)
    )

    assert not result.allowed
    assert result.policy_ids == ("production-deploys-only",)


def test_decide_allows_write_scope_in_production(engine: PolicyEngine) -> None:
    result = engine.decide(
        question(
            "payments-ci",
            scopes=("payments.read", "payments.write"),
            attributes={"environment_tier": "production"},
        )
    )

    assert result.allowed
    assert result.policy_ids == ("payments-reach-internal-payments",)
    assert result.granted_scopes == ("payments.read", "payments.write")


def test_decide_does_not_apply_the_ci_forbid_to_other_payments_pools(
    engine: PolicyEngine,
) -> None:
    result = engine.decide(question("payments-k8s", scopes=("payments.write",)))

    assert result.allowed


def test_decide_returns_scopes_lifetime_and_revision(dev_raw: dict[str, Any]) -> None:
    engine = PolicyEngine()
    engine.load(build_config(dev_raw, revision=17))

    result = engine.decide(question("payments-ci", scopes=("payments.read", "other")))

    assert result.allowed
    assert result.granted_scopes == ("payments.read",)
    assert result.max_lifetime_seconds == 3600
    assert result.config_revision == 17
    assert engine.revision == 17


@pytest.mark.parametrize(
    ("audience", "action", "error"),
    [
        ("nosuch", "exchange", "unknown audience 'nosuch'"),
        ("payments-api", "delete", "unknown action 'delete'"),
    ],
)
def test_decide_denies_an_unknown_name_with_an_error(
    audience: str, action: str, error: str, engine: PolicyEngine
) -> None:
    result = engine.decide(question("payments-ci", audience=audience, action=action))

    assert not result.allowed
    assert result.policy_ids == ()
    assert result.errors == (error,)
    assert result.granted_scopes == ()


def test_decide_denies_an_unknown_pool_with_an_error(engine: PolicyEngine) -> None:
    result = engine.decide(question("nosuch"))

    assert not result.allowed
    assert result.errors == ("unknown pool 'nosuch'",)


def test_decide_before_any_configuration_denies_with_an_error() -> None:
    engine = PolicyEngine()

    result = engine.decide(question("payments-ci"))

    assert not result.allowed
    assert result.errors == ("no configuration loaded",)
    assert engine.revision == 0


def _tag_config(revision: int = 0) -> TrustConfig:
    """A small configuration whose only policy reads a mapped attribute tag."""
    return build_config(
        {
            "mesh": {"trust_domain": TRUST_DOMAIN, "issuer": "https://wif.test"},
            "pools": [{"id": "org"}, {"id": "team", "parent": "org"}],
            "audiences": [{"id": "payments-api", "scopes": ["payments.read"]}],
            "workloads": [
                {
                    "path": "registered",
                    "pool": "team",
                    "attributes": {"security_clearance": "high"},
                }
            ],
            "policies": [
                {
                    "id": "only-the-payments-repository",
                    "cedar": (
                        'permit (principal in Pool::"org", action, resource)\n'
                        'when { principal.hasTag("repository")\n'
                        '  && principal.getTag("repository")'
                        ' == "acme-corp/payments-api" };'
                    ),
                },
                {
                    "id": "cleared-workloads",
                    "cedar": (
                        "permit (principal, action, resource)\n"
                        "when { principal has security_clearance\n"
                        '  && principal.security_clearance == "high" };'
                    ),
                },
            ],
        },
        revision,
    )


@pytest.fixture(scope="module")
def tag_engine() -> PolicyEngine:
    engine = PolicyEngine()
    engine.load(_tag_config())
    return engine


def test_decide_reads_mapped_attributes_as_tags(tag_engine: PolicyEngine) -> None:
    result = tag_engine.decide(
        question("team", attributes={"repository": "acme-corp/payments-api"})
    )

    assert result.allowed
    assert result.policy_ids == ("only-the-payments-repository",)


@pytest.mark.parametrize(
    "attributes", [{}, {"repository": "acme-corp/other"}, {"ref": "refs/heads/main"}]
)
def test_decide_denies_when_the_tag_is_missing_or_differs(
    attributes: dict[str, str], tag_engine: PolicyEngine
) -> None:
    result = tag_engine.decide(question("team", attributes=attributes))

    assert not result.allowed
    assert result.policy_ids == ()


def test_decide_adds_a_registered_workloads_attributes(
    tag_engine: PolicyEngine,
) -> None:
    result = tag_engine.decide(question("team", path="registered"))

    assert result.allowed
    assert result.policy_ids == ("cleared-workloads",)


def test_decide_does_not_give_registered_attributes_to_other_workloads(
    tag_engine: PolicyEngine,
) -> None:
    result = tag_engine.decide(question("team", path="unregistered"))

    assert not result.allowed


def test_load_swaps_in_the_new_configuration_whole(
    dev_config: TrustConfig,
) -> None:
    engine = PolicyEngine()
    engine.load(dev_config)
    assert engine.decide(question("payments-ci")).allowed

    engine.load(_tag_config(revision=5))

    result = engine.decide(question("team"))
    assert engine.revision == 5
    assert result.config_revision == 5
    assert engine.decide(question("payments-ci")).errors == (
        "unknown pool 'payments-ci'",
    )
