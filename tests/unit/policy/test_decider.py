"""Tests for services.policy.decider, the shadow log and the usage report."""

from __future__ import annotations

from typing import Any

import pytest

from services.policy.decider import Decider
from services.policy.engine import DecisionInput, PolicyEngine
from services.policy.restrictions import Quarantines
from services.policy.usage import Permission, build_access_report
from wif.quarantine import Quarantine
from wif.store import EtcdStore, Snapshot
from wif.trust.config import TrustConfig, build_config

DOMAIN = "acme.example"
NOW = 1_800_000_000.0


def config(revision: int = 1, **sections: Any) -> TrustConfig:
    raw: dict[str, Any] = {
        "mesh": {"trust_domain": DOMAIN, "issuer": "https://wif.test"},
        "pools": [{"id": "org"}, {"id": "team-a", "parent": "org"}, {"id": "team-b"}],
        "audiences": [
            {"id": "api", "scopes": ["read", "write"]},
            {"id": "admin", "scopes": []},
        ],
        "workloads": [{"path": "registered", "pool": "team-a"}],
        "policies": [
            {
                "id": "org-reads-api",
                "cedar": 'permit (principal in Pool::"org", '
                'action == Action::"exchange", resource == Audience::"api") '
                'when { !context.scopes.contains("write") };',
            },
            {
                "id": "team-b-admin",
                "cedar": 'permit (principal in Pool::"team-b", action,'
                ' resource == Audience::"admin");',
            },
        ],
        **sections,
    }
    return build_config(raw, revision)


def ask(
    pool: str, name: str = "job", audience: str = "api", scopes: tuple[str, ...] = ()
) -> DecisionInput:
    return DecisionInput(
        subject=f"spiffe://{DOMAIN}/{pool}/{name}",
        pool_id=pool,
        provider_id="ci",
        attributes={},
        action="exchange",
        audience=audience,
        scopes=list(scopes),
        context={"source_address": "10.0.0.1", "now": int(NOW)},
    )


def quarantines_with(*records: Quarantine) -> Quarantines:
    quarantines = Quarantines(EtcdStore("127.0.0.1:1"))
    items = {f"/wif/quarantine/{n}": r.to_json() for n, r in enumerate(records)}
    quarantines._on_snapshot(Snapshot(1, items))
    return quarantines


@pytest.fixture
def decider() -> Decider:
    decider = Decider(PolicyEngine(), clock=lambda: NOW)
    decider.load(config())
    return decider


def test_decide_denies_a_quarantined_principal_before_any_policy() -> None:
    subject = ask("team-a").subject
    quarantines = quarantines_with(Quarantine(subject, NOW + 600, "incident 7"))
    decider = Decider(PolicyEngine(), quarantines, clock=lambda: NOW)
    decider.load(config())

    result = decider.decide(ask("team-a"))

    assert not result.allowed
    assert result.policy_ids == ()
    assert result.errors == ("quarantined until 2027-01-15T08:10:00Z: incident 7",)
    assert decider.decide(ask("team-a", name="other")).allowed


def test_decide_ignores_a_quarantine_that_has_ended() -> None:
    subject = ask("team-a").subject
    quarantines = quarantines_with(Quarantine(subject, NOW - 1))
    decider = Decider(PolicyEngine(), quarantines, clock=lambda: NOW)
    decider.load(config())

    assert decider.decide(ask("team-a")).allowed


def test_decide_scores_risk_from_the_principals_own_history(decider: Decider) -> None:
    first = decider.decide(ask("team-a"))
    for _ in range(5):
        decider.decide(ask("team-a"))
    usual = decider.decide(ask("team-a"))
    unusual = decider.decide(ask("team-a", audience="admin"))

    assert first.risk.signals == ("no_history",)
    assert usual.risk.signals == ()
    assert unusual.risk.signals == ("new_audience",)


def test_decide_all_answers_against_one_version(decider: Decider) -> None:
    results = decider.decide_all([ask("team-a"), ask("team-b", audience="admin")])

    assert [r.allowed for r in results] == [True, True]
    assert {r.config_revision for r in results} == {1}


def test_shadow_report_lists_exactly_the_decisions_that_differ() -> None:
    shadow = [
        {
            "id": "org-reads-api",
            "cedar": 'permit (principal in Pool::"team-a", '
            'action == Action::"exchange", resource == Audience::"api");',
        }
    ]
    decider = Decider(PolicyEngine(), clock=lambda: NOW)
    decider.load(config(shadow_policies=shadow))
    questions = [
        ask("team-a"),  # allowed by both
        ask("org"),  # allowed now, denied by the shadow set
        ask("team-a", scopes=("write",)),  # denied now, allowed by the shadow set
        ask("team-b"),  # denied by both
        ask("team-b", audience="admin"),  # allowed now, denied by the shadow set
    ]

    for question in questions:
        decider.decide(question)
    report = decider.shadow.report()

    assert report.evaluated == 5
    assert report.shadow_policy_ids == ("org-reads-api",)
    assert [
        (d.subject, d.audience, d.scopes, d.active_allowed, d.shadow_allowed)
        for d in report.differences
    ] == [
        (ask("org").subject, "api", (), True, False),
        (ask("team-a").subject, "api", ("write",), False, True),
        (ask("team-b").subject, "admin", (), True, False),
    ]
    assert report.differences[1].shadow_policy_ids == ("org-reads-api",)
    assert report.differing == 3
    assert report.dropped == 0


def test_shadow_report_starts_afresh_when_the_shadow_set_changes() -> None:
    decider = Decider(PolicyEngine(), clock=lambda: NOW)
    first = [{"id": "none", "cedar": "forbid (principal, action, resource);"}]
    decider.load(config(shadow_policies=first))
    decider.decide(ask("team-a"))
    decider.load(config(revision=2, shadow_policies=first))
    kept = decider.shadow.report()
    decider.load(config(revision=3))
    gone = decider.shadow.report()

    assert kept.differing == 1
    assert gone.fingerprint == ""
    assert gone.differing == 0


def test_access_report_shows_reach_and_grants_wider_than_their_use(
    decider: Decider,
) -> None:
    decider.decide(ask("team-a", scopes=("read",)))
    version = decider.engine.version

    report = build_access_report(decider.engine, version, decider.usage.snapshot())

    reach = {p.subject: p.permissions for p in report.principals}
    assert reach[ask("team-a").subject] == (
        Permission("exchange", "api"),
        Permission("exchange", "api", "read"),
    )
    assert (
        reach[ask("team-a", name="registered").subject] == reach[ask("team-a").subject]
    )
    grants = {g.policy_id: g for g in report.grants}
    assert grants["org-reads-api"].decisions == 1
    assert grants["org-reads-api"].unused == ()
    assert grants["org-reads-api"].principals_granted == 2
    assert grants["org-reads-api"].principals_used == 1
    assert grants["team-b-admin"].decisions == 0
    assert grants["team-b-admin"].granted == ()


def test_access_report_lists_what_a_grant_allows_beyond_its_use(
    decider: Decider,
) -> None:
    decider.decide(ask("team-b", audience="admin"))

    report = build_access_report(
        decider.engine, decider.engine.version, decider.usage.snapshot()
    )

    grant = {g.policy_id: g for g in report.grants}["team-b-admin"]
    assert grant.used == (Permission("exchange", "admin"),)
    assert grant.unused == (
        Permission("access", "admin"),
        Permission("validate", "admin"),
    )


def test_access_report_evaluates_at_most_max_principals(decider: Decider) -> None:
    for n in range(5):
        decider.decide(ask("team-a", name=f"job-{n}"))

    report = build_access_report(
        decider.engine, decider.engine.version, decider.usage.snapshot(), 3
    )

    assert len(report.principals) == 3
    assert report.principals_truncated
    assert report.principals[0].subject == ask("team-a", name="job-4").subject


def test_prepare_changes_nothing_in_force_until_its_step_runs() -> None:
    decider = Decider(PolicyEngine(), clock=lambda: NOW)
    first = [{"id": "none", "cedar": "forbid (principal, action, resource);"}]
    decider.load(config(shadow_policies=first))
    shadow_before = decider.shadow

    install = decider.prepare(config(revision=2))
    during = decider.decide(ask("team-a"))
    install()
    after = decider.decide(ask("team-a"))

    assert during.config_revision == 1
    assert shadow_before.report().differing == 1
    assert after.config_revision == 2
    assert decider.shadow is not shadow_before
    assert decider.shadow.report().fingerprint == ""
