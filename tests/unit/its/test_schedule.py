"""Tests for services.its.schedule: when keys are made, sign, retire and go."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from services.its.schedule import (
    Change,
    RotationSchedule,
    expired_changes,
    revocation_changes,
    rotation_changes,
    scheduled_changes,
    signing_bound,
)
from wif.keyring import KeyRecord, KeyState
from wif.settings import SettingsError

SCHEDULE = RotationSchedule(
    period=86400, publish_ahead=3600, max_token_lifetime=10800, retention=11400
)
T0 = 1_700_000_000


def record(
    kid: str, state: KeyState, created_at: int = T0, **schedule: int
) -> KeyRecord:
    return KeyRecord(
        kid=kid,
        alg="ES256",
        state=state,
        created_at=created_at,
        public_jwk={"kty": "EC", "kid": kid},
        sealed_private={},
        **schedule,
    )


def new_key(state: KeyState, now: int) -> KeyRecord:
    """Makes records the way the rotator does, with a predictable kid."""
    if state == KeyState.ACTIVE:
        return record("new", state, now, activate_at=now, retire_at=now + 86400)
    return record("new", state, now, activate_at=now + 1 + 3600)


def summary(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.event, c.record.kid, c.record.state.value) for c in changes]


ACTIVE = record("a", KeyState.ACTIVE, activate_at=T0, retire_at=T0 + 86400)
PENDING = record("p", KeyState.PENDING, T0 + 82800, activate_at=T0 + 82800 + 3601)


@dataclass(frozen=True)
class Step:
    name: str
    records: tuple[KeyRecord, ...]
    now: int
    expected: tuple[tuple[str, str, str], ...]


STEPS = [
    Step(
        "first start makes an active key at once",
        (),
        T0,
        (("key.created", "new", "active"),),
    ),
    Step("an active key in its period changes nothing", (ACTIVE,), T0 + 3600, ()),
    Step(
        "no pending key is made earlier than publish-ahead before retirement",
        (ACTIVE,),
        T0 + 86400 - 3602,
        (),
    ),
    Step(
        "publish-ahead before retirement a pending key is made",
        (ACTIVE,),
        T0 + 86400 - 3601,
        (("key.created", "new", "pending"),),
    ),
    Step(
        "a pending key published long enough takes over at retirement",
        (ACTIVE, PENDING),
        T0 + 86400 + 1,
        (("key.activated", "p", "active"), ("key.retired", "a", "retiring")),
    ),
    Step(
        "a pending key not yet published long enough waits",
        (dataclasses.replace(ACTIVE, retire_at=T0 + 82801), PENDING),
        T0 + 82900,
        (),
    ),
    Step(
        "with no active key a pending key is promoted at once",
        (PENDING,),
        T0 + 82801,
        (("key.activated", "p", "active"),),
    ),
    Step(
        "an overdue key without a successor gets a pending key, not a gap",
        (ACTIVE,),
        T0 + 90000,
        (("key.created", "new", "pending"),),
    ),
    Step(
        "a retired key past its retention is deleted",
        (
            dataclasses.replace(ACTIVE, retire_at=T0 + 200000),
            record("old", KeyState.RETIRING, delete_at=T0 + 100),
        ),
        T0 + 100,
        (("key.deleted", "old", "retiring"),),
    ),
    Step(
        "a retired key inside its retention stays",
        (
            dataclasses.replace(ACTIVE, retire_at=T0 + 200000),
            record("old", KeyState.RETIRING, delete_at=T0 + 101),
        ),
        T0 + 100,
        (),
    ),
    Step(
        "a second active key is retired, keeping the newest",
        (ACTIVE, record("b", KeyState.ACTIVE, T0 + 5, retire_at=T0 + 86405)),
        T0 + 10,
        (("key.retired", "a", "retiring"),),
    ),
]


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_scheduled_changes(step: Step) -> None:
    changes = scheduled_changes(list(step.records), step.now, SCHEDULE, new_key)

    assert summary(changes) == list(step.expected)


def test_retirement_keeps_the_key_published_for_the_retention() -> None:
    now = T0 + 86400 + 1

    changes = scheduled_changes([ACTIVE, PENDING], now, SCHEDULE, new_key)

    retired = next(c.record for c in changes if c.event == "key.retired")
    activated = next(c.record for c in changes if c.event == "key.activated")
    assert (retired.retired_at, retired.delete_at) == (now, now + 11400)
    assert retired.retire_at == T0 + 86400
    assert activated.retire_at == now + 86400


def test_rotation_makes_a_pending_key_and_brings_retirement_forward() -> None:
    changes = rotation_changes([ACTIVE], T0 + 10, SCHEDULE, new_key)

    assert summary(changes) == [
        ("key.created", "new", "pending"),
        ("key.scheduled", "a", "active"),
    ]
    assert changes[1].record.retire_at == changes[0].record.activate_at


def test_rotation_reuses_a_waiting_pending_key() -> None:
    later = dataclasses.replace(ACTIVE, retire_at=T0 + 200000)

    changes = rotation_changes([later, PENDING], T0 + 82900, SCHEDULE, new_key)

    assert summary(changes) == [("key.scheduled", "a", "active")]
    assert changes[0].record.retire_at == PENDING.activate_at


def test_revoking_the_active_key_promotes_the_pending_key_at_once() -> None:
    changes = revocation_changes([ACTIVE, PENDING], "a", T0 + 50, SCHEDULE, new_key)

    assert summary(changes) == [
        ("key.revoked", "a", "revoked"),
        ("key.activated", "p", "active"),
    ]
    assert changes[0].record.delete_at == T0 + 50 + 11400


def test_revoking_the_only_key_makes_a_new_active_key_at_once() -> None:
    changes = revocation_changes([ACTIVE], "a", T0 + 50, SCHEDULE, new_key)

    assert summary(changes) == [
        ("key.revoked", "a", "revoked"),
        ("key.created", "new", "active"),
    ]


def test_revoking_a_pending_key_leaves_the_active_key_signing() -> None:
    changes = revocation_changes([ACTIVE, PENDING], "p", T0 + 50, SCHEDULE, new_key)

    assert summary(changes) == [("key.revoked", "p", "revoked")]


def test_revoking_a_revoked_key_changes_nothing() -> None:
    revoked = record("r", KeyState.REVOKED)

    assert revocation_changes([ACTIVE, revoked], "r", T0, SCHEDULE, new_key) == []


def test_revoking_an_unknown_key_raises_key_error() -> None:
    with pytest.raises(KeyError):
        revocation_changes([ACTIVE], "nope", T0, SCHEDULE, new_key)


def test_expired_changes_deletes_revoked_keys_past_retention() -> None:
    revoked = record("r", KeyState.REVOKED, delete_at=T0)

    assert summary(expired_changes([ACTIVE, revoked], T0)) == [
        ("key.deleted", "r", "revoked")
    ]


def test_signing_bound_is_retirement_plus_the_longest_lifetime() -> None:
    assert signing_bound(ACTIVE, SCHEDULE) == T0 + 86400 + 10800
    assert signing_bound(record("x", KeyState.ACTIVE), SCHEDULE) == 0


def test_a_token_signed_late_still_expires_before_its_key_is_deleted() -> None:
    # The leader retires the key late; a lagging replica signed meanwhile.
    late = T0 + 86400 + 500
    changes = scheduled_changes([ACTIVE, PENDING], late, SCHEDULE, new_key)
    retired = next(c.record for c in changes if c.event == "key.retired")

    longest_expiry = min(late + 10800, signing_bound(ACTIVE, SCHEDULE))

    assert longest_expiry <= retired.delete_at


def test_check_refuses_a_retention_shorter_than_the_longest_lifetime() -> None:
    schedule = dataclasses.replace(SCHEDULE, retention=3600)

    with pytest.raises(SettingsError) as refused:
        schedule.check(300)

    assert str(refused.value).startswith(
        "setting retired_key_retention (WIF_RETIRED_KEY_RETENTION): 3600s is "
        "shorter than max_token_lifetime (WIF_MAX_TOKEN_LIFETIME) 10800s"
    )


def test_check_refuses_a_publish_ahead_shorter_than_the_jwks_cache() -> None:
    schedule = dataclasses.replace(SCHEDULE, publish_ahead=60)

    with pytest.raises(SettingsError) as refused:
        schedule.check(300)

    assert str(refused.value).startswith(
        "setting key_publish_ahead (WIF_KEY_PUBLISH_AHEAD): 60s is shorter than "
        "jwks_cache_seconds (WIF_JWKS_CACHE_SECONDS) 300s"
    )


def test_check_accepts_the_defaults() -> None:
    SCHEDULE.check(300)
