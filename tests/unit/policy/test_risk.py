"""Tests for services.policy.risk: scores from a principal's own history."""

from __future__ import annotations

import calendar

import pytest

from services.policy.engine import Risk
from services.policy.risk import RiskSettings, RiskTracker, source_network

SUBJECT = "spiffe://acme.example/team/job"
NOON = calendar.timegm((2026, 3, 2, 12, 0, 0, 0, 0, 0))
MIDNIGHT = calendar.timegm((2026, 3, 3, 0, 30, 0, 0, 0, 0))


def trained(settings: RiskSettings | None = None) -> RiskTracker:
    """A tracker whose principal has a baseline: one network, one audience, noon."""
    tracker = RiskTracker(settings or RiskSettings(baseline=3, burst_limit=100))
    for n in range(3):
        tracker.assess(SUBJECT, "exchange", "api", "10.0.0.5", NOON + n * 600)
        tracker.observe_allowed(SUBJECT, "exchange", "api", "10.0.0.5", NOON + n * 600)
    return tracker


def assess(tracker: RiskTracker, audience: str, source: str, now: float) -> Risk:
    return tracker.assess(SUBJECT, "exchange", audience, source, now)


def test_assess_gives_a_new_principal_a_low_score_for_no_history() -> None:
    risk = assess(RiskTracker(), "api", "10.0.0.5", NOON)

    assert risk == Risk(10, ("no_history",))


def test_assess_finds_nothing_unusual_in_a_usual_request() -> None:
    assert assess(trained(), "api", "10.0.0.77", NOON + 3600) == Risk(0, ())


@pytest.mark.parametrize(
    ("audience", "source", "now", "signals", "score"),
    [
        ("api", "192.0.2.1", NOON, ("new_source_network",), 35),
        ("api", "10.0.0.5", MIDNIGHT, ("unusual_hour",), 20),
        ("other", "10.0.0.5", NOON, ("new_audience",), 25),
        (
            "other",
            "2001:db8::1",
            MIDNIGHT,
            ("new_audience", "new_source_network", "unusual_hour"),
            80,
        ),
    ],
)
def test_assess_names_each_unusual_trait(
    audience: str, source: str, now: float, signals: tuple[str, ...], score: int
) -> None:
    assert assess(trained(), audience, source, now) == Risk(score, signals)


def test_assess_sees_a_burst_and_forgets_it_after_the_window() -> None:
    tracker = trained(RiskSettings(baseline=3, burst_limit=5))
    risks = [assess(tracker, "api", "10.0.0.5", NOON + 3600 + n) for n in range(6)]

    assert [r.signals for r in risks[:5]] == [()] * 5
    assert risks[5] == Risk(40, ("burst",))
    assert assess(tracker, "api", "10.0.0.5", NOON + 3600 + 120).signals == ()


def test_assess_keeps_a_refused_network_new() -> None:
    tracker = trained()
    assess(tracker, "api", "192.0.2.1", NOON)

    assert assess(tracker, "api", "192.0.2.1", NOON).signals == ("new_source_network",)


def test_histories_are_per_principal_and_per_action() -> None:
    tracker = trained()

    other = tracker.assess("spiffe://acme.example/team/other", "exchange", "api", "", 0)
    access = tracker.assess(SUBJECT, "access", "api", "10.0.0.5", NOON)

    assert other.signals == ("no_history",)
    assert access.signals == ("no_history",)


def test_the_tracker_keeps_at_most_max_principals() -> None:
    tracker = RiskTracker(RiskSettings(max_principals=3))
    for n in range(10):
        tracker.assess(f"spiffe://acme.example/t/{n}", "exchange", "api", "", 0)

    assert len(tracker) == 3


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("10.1.2.3", "10.1.2.0/24"),
        ("2001:db8:1:2:3::4", "2001:db8:1:2::/64"),
        ("[::1]", "::/64"),
        ("", None),
        ("not-an-address", None),
    ],
)
def test_source_network_groups_addresses(address: str, network: str | None) -> None:
    assert source_network(address) == network
