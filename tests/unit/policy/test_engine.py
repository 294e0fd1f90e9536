"""Tests for services.policy.engine: Cedar decisions over the trust hierarchy."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from services.policy.engine import DecisionInput, Outcome, PolicyEngine, Risk
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


@dataclass(frozen=True)
class StsReach:
    """An exchange for the STS's own audience in the dev configuration."""

    name: str
    pool: str
    path: str
    scopes: tuple[str, ...]
    allowed: bool
    policy_ids: tuple[str, ...]


STS_INTROSPECT = "wif.tokens.introspect"
STS_REVOKE = "wif.tokens.revoke"
STS_REACH = [
    StsReach(
        "payments workload, no scope",
        "payments-ci",
        "acme-corp/payments-api",
        (),
        True,
        ("payments-reach-the-sts",),
    ),
    StsReach(
        "payments workload, introspect scope",
        "payments-ci",
        "acme-corp/payments-api",
        (STS_INTROSPECT,),
        False,
        ("token-administration-for-mesh-operations-only",),
    ),
    StsReach(
        "payments workload, revoke scope",
        "payments-ci",
        "acme-corp/payments-api",
        (STS_REVOKE,),
        False,
        ("token-administration-for-mesh-operations-only",),
    ),
    StsReach(
        "mesh operations, both scopes",
        "payments-ci",
        "acme-corp/mesh-operations",
        (STS_INTROSPECT, STS_REVOKE),
        True,
        ("payments-reach-the-sts",),
    ),
    StsReach("search workload", "search", "acme-corp/search", (), False, ()),
]


@pytest.mark.parametrize("case", STS_REACH, ids=lambda case: case.name)
def test_decide_gives_token_administration_scopes_to_mesh_operations_only(
    engine: PolicyEngine, case: StsReach
) -> None:
    result = engine.decide(
        question(case.pool, audience="wif-sts", scopes=case.scopes, path=case.path)
    )

    assert (result.allowed, result.policy_ids) == (case.allowed, case.policy_ids)
    assert result.granted_scopes == (case.scopes if case.allowed else ())


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


def _hierarchy_config(revision: int = 0, **sections: Any) -> TrustConfig:
    """Three levels: org > two units > a team each, one audience per unit."""
    raw: dict[str, Any] = {
        "mesh": {"trust_domain": TRUST_DOMAIN, "issuer": "https://wif.test"},
        "pools": [
            {"id": "org"},
            {"id": "unit-a", "parent": "org"},
            {"id": "unit-b", "parent": "org"},
            {"id": "team-a", "parent": "unit-a"},
            {"id": "team-b", "parent": "unit-b"},
        ],
        "audiences": [
            {"id": "shared", "scopes": ["read"]},
            {"id": "api-a", "scopes": ["read"]},
            {"id": "api-b", "scopes": ["read"]},
        ],
        "policies": [
            {
                "id": "org-reaches-shared",
                "cedar": 'permit (principal in Pool::"org", action, '
                'resource == Audience::"shared");',
            },
            {
                "id": "unit-a-reaches-api-a",
                "cedar": 'permit (principal in Pool::"unit-a", action, '
                'resource == Audience::"api-a");',
            },
            {
                "id": "unit-b-reaches-api-b",
                "cedar": 'permit (principal in Pool::"unit-b", action, '
                'resource == Audience::"api-b");',
            },
        ],
        **sections,
    }
    return build_config(raw, revision)


@dataclass(frozen=True)
class Reach:
    pool: str
    audience: str
    allowed: bool
    policy_ids: tuple[str, ...]


HIERARCHY_CASES = [
    # Inheritance: each level reaches what its ancestors are granted.
    Reach("org", "shared", True, ("org-reaches-shared",)),
    Reach("unit-a", "shared", True, ("org-reaches-shared",)),
    Reach("team-a", "shared", True, ("org-reaches-shared",)),
    Reach("team-a", "api-a", True, ("unit-a-reaches-api-a",)),
    Reach("team-b", "api-b", True, ("unit-b-reaches-api-b",)),
    # Isolation: siblings at either level never reach each other's audience.
    Reach("unit-a", "api-b", False, ()),
    Reach("team-a", "api-b", False, ()),
    Reach("unit-b", "api-a", False, ()),
    Reach("team-b", "api-a", False, ()),
    # A grant to a child never flows up to its parent.
    Reach("org", "api-a", False, ()),
]


@pytest.mark.parametrize(
    "case", HIERARCHY_CASES, ids=lambda c: f"{c.pool}-{c.audience}"
)
def test_decide_inherits_down_and_isolates_across_three_levels(case: Reach) -> None:
    engine = PolicyEngine()
    engine.load(_hierarchy_config())

    result = engine.decide(question(case.pool, audience=case.audience, scopes=()))

    assert (result.allowed, result.policy_ids) == (case.allowed, case.policy_ids)


def _cedar(policy_id: str, text: str) -> dict[str, str]:
    return {"id": policy_id, "cedar": text}


def test_decide_puts_the_risk_score_and_signals_in_the_context() -> None:
    config = _hierarchy_config(
        policies=[
            _cedar(
                "low-risk-only",
                "permit (principal, action, resource) when "
                "{ context.risk_score < 50 "
                '&& !context.risk_signals.contains("burst") };',
            )
        ]
    )
    engine = PolicyEngine()
    engine.load(config)
    ask = question("team-a", audience="api-a", scopes=())

    assert engine.decide(ask, Risk(20, ("new_audience",))).allowed
    assert not engine.decide(ask, Risk(60, ("new_audience",))).allowed
    refused = engine.decide(ask, Risk(40, ("burst",)))
    assert not refused.allowed
    assert refused.risk == Risk(40, ("burst",))


def test_decide_lets_a_policy_demand_a_fresh_subject_token_under_risk() -> None:
    config = _hierarchy_config(
        policies=[
            _cedar("allow", "permit (principal, action, resource);"),
            _cedar(
                "step-up-when-risky",
                "forbid (principal, action, resource) when "
                "{ context.risk_score >= 30 "
                "&& context.subject_token_age_seconds > 60 };",
            ),
        ]
    )
    engine = PolicyEngine()
    engine.load(config)

    def ask(age: int) -> DecisionInput:
        return DecisionInput(
            subject=f"spiffe://{TRUST_DOMAIN}/team-a/job",
            pool_id="team-a",
            provider_id="ci",
            attributes={},
            action="exchange",
            audience="api-a",
            scopes=[],
            context={"subject_token_age_seconds": age},
        )

    risky = Risk(35, ("new_source_network",))
    assert engine.decide(ask(600), risky).policy_ids == ("step-up-when-risky",)
    assert engine.decide(ask(10), risky).allowed
    assert engine.decide(ask(600), Risk()).allowed


def test_decide_evaluates_the_shadow_set_beside_the_active_one() -> None:
    config = _hierarchy_config(
        shadow_policies=[
            _cedar(
                "org-reaches-shared",
                'permit (principal in Pool::"unit-a", action, '
                'resource == Audience::"shared");',
            )
        ]
    )
    engine = PolicyEngine()
    engine.load(config)

    same = engine.decide(question("team-a", audience="shared", scopes=()))
    changed = engine.decide(question("team-b", audience="shared", scopes=()))

    assert same.allowed
    assert same.shadow == Outcome(True, ("org-reaches-shared",))
    assert changed.allowed
    assert changed.shadow == Outcome(False, ())


def test_decide_has_no_shadow_outcome_without_a_shadow_set() -> None:
    engine = PolicyEngine()
    engine.load(_hierarchy_config())

    assert (
        engine.decide(question("team-a", audience="shared", scopes=())).shadow is None
    )


def test_decide_reports_the_quarantine_a_deciding_forbid_asks_for() -> None:
    config = _hierarchy_config(
        policies=[
            _cedar("allow", "permit (principal, action, resource);"),
            _cedar(
                "bursts-are-quarantined",
                '@quarantine("15m")\nforbid (principal, action, resource) when '
                '{ context.risk_signals.contains("burst") };',
            ),
        ]
    )
    engine = PolicyEngine()
    engine.load(config)
    ask = question("team-a", audience="api-a", scopes=())

    assert engine.decide(ask, Risk(40, ("burst",))).quarantine_seconds == 900
    assert engine.decide(ask).quarantine_seconds == 0


def _single_policy_config(policy_id: str, revision: int) -> TrustConfig:
    return _hierarchy_config(
        revision, policies=[_cedar(policy_id, "permit (principal, action, resource);")]
    )


def test_each_decision_sees_one_version_while_versions_are_swapped() -> None:
    versions = {
        revision: _single_policy_config(f"version-{revision}", revision)
        for revision in (1, 2)
    }
    engine = PolicyEngine()
    engine.load(versions[1])
    asked = threading.Event()
    seen: list[tuple[int, tuple[str, ...]]] = []
    swaps = 0

    def swap() -> None:
        nonlocal swaps
        while not asked.is_set() and swaps < 1_000_000:
            swaps += 1
            engine.load(versions[1 + swaps % 2])

    def ask() -> None:
        for _ in range(500):
            result = engine.decide(question("team-a", audience="api-a", scopes=()))
            seen.append((result.config_revision, result.policy_ids))

    swapper = threading.Thread(target=swap)
    askers = [threading.Thread(target=ask) for _ in range(3)]
    swapper.start()
    for thread in askers:
        thread.start()
    for thread in askers:
        thread.join(timeout=60)
    asked.set()
    swapper.join(timeout=60)

    assert len(seen) == 1500
    assert swaps > 10
    assert {revision for revision, _ in seen} == {1, 2}
    assert all(ids == (f"version-{revision}",) for revision, ids in seen)


@pytest.mark.parametrize("now", ["soon", True, None, 1e300, [1]])
def test_decide_reads_a_malformed_context_number_as_zero(
    now: Any, engine: PolicyEngine
) -> None:
    ask = DecisionInput(
        subject=f"spiffe://{TRUST_DOMAIN}/payments-ci/job",
        pool_id="payments-ci",
        provider_id="ci",
        attributes={},
        action="exchange",
        audience="payments-api",
        scopes=[],
        context={"now": now, "subject_token_age_seconds": now},
    )

    assert engine.decide(ask).allowed
