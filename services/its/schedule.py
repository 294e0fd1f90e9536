"""The key schedule: when keys are made, start signing, retire and go.

Every function here is pure: it reads the key records and the time and
returns the changes to make, so the rotation leader, an operator's rotate or
revoke, and the tests all follow one set of rules:

- a new key is PENDING (published, not signing) for ``publish_ahead``
  seconds, at least the relying parties' JWKS cache time, before it signs;
- the ACTIVE key signs until its ``retire_at``, then becomes RETIRING and
  stays published for ``retention`` seconds, at least the longest token
  lifetime, so every token it signed expires before it leaves the JWKS;
- a REVOKED key leaves the JWKS at once, and if it was signing, a pending
  key is promoted at once or a new active key is made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from wif.keyring import KeyRecord, KeyState
from wif.settings import SettingsError

#: Makes a new key record in the given state at the given time.
NewKey = Callable[[KeyState, int], KeyRecord]

#: Times are whole seconds rounded down, so a pending key's ``activate_at``
#: is this much later than ``publish_ahead`` alone would make it, and it is
#: made this much earlier, to take over on time.
ROUNDING_SECONDS = 1


@dataclass(frozen=True)
class RotationSchedule:
    """How long keys sign and stay published, in whole seconds."""

    period: int
    publish_ahead: int
    max_token_lifetime: int
    retention: int

    def check(self, jwks_cache_seconds: float) -> None:
        """Refuses a schedule under which a valid token could stop verifying.

        Raises:
            SettingsError: the retention is shorter than the longest token
                lifetime, or the publish-ahead time shorter than the JWKS
                cache time; the message names both settings.
        """
        if self.retention < self.max_token_lifetime:
            raise SettingsError(
                "setting retired_key_retention (WIF_RETIRED_KEY_RETENTION): "
                f"{self.retention}s is shorter than max_token_lifetime "
                f"(WIF_MAX_TOKEN_LIFETIME) {self.max_token_lifetime}s; a retired "
                "key would leave the JWKS while tokens it signed are still valid"
            )
        if self.publish_ahead < jwks_cache_seconds:
            raise SettingsError(
                "setting key_publish_ahead (WIF_KEY_PUBLISH_AHEAD): "
                f"{self.publish_ahead}s is shorter than jwks_cache_seconds "
                f"(WIF_JWKS_CACHE_SECONDS) {jwks_cache_seconds:g}s; relying "
                "parties could see a token before they see its key"
            )


@dataclass(frozen=True)
class Change:
    """One change to the key set, and the audit event that reports it."""

    event: str
    record: KeyRecord
    deleted: bool = False


def signing_bound(record: KeyRecord, schedule: RotationSchedule) -> int:
    """The latest expiry a token signed by ``record`` may have (0: no bound).

    The key is deleted no earlier than its retirement plus the retention,
    which is at least the longest lifetime; tokens bounded by this expire
    before their key leaves the JWKS, even when the key signs past its
    ``retire_at`` because no leader retired it on time.
    """
    if not record.retire_at:
        return 0
    return record.retire_at + schedule.max_token_lifetime


def _due(record: KeyRecord, schedule: RotationSchedule) -> int:
    return record.retire_at or record.created_at + schedule.period


def _newest(records: Iterable[KeyRecord], state: KeyState) -> KeyRecord | None:
    found = [r for r in records if r.state == state]
    return max(found, key=lambda r: (r.created_at, r.kid), default=None)


def _oldest(records: Iterable[KeyRecord], state: KeyState) -> KeyRecord | None:
    found = [r for r in records if r.state == state]
    return min(found, key=lambda r: (r.created_at, r.kid), default=None)


def _activate(record: KeyRecord, now: int, schedule: RotationSchedule) -> Change:
    active = dataclasses.replace(
        record, state=KeyState.ACTIVE, retire_at=now + schedule.period
    )
    return Change("key.activated", active)


def _retire(record: KeyRecord, now: int, schedule: RotationSchedule) -> Change:
    retiring = dataclasses.replace(
        record,
        state=KeyState.RETIRING,
        retire_at=min(_due(record, schedule), now),
        retired_at=now,
        delete_at=now + schedule.retention,
    )
    return Change("key.retired", retiring)


def expired_changes(records: Iterable[KeyRecord], now: int) -> list[Change]:
    """Deletes retired and revoked keys whose retention is over."""
    gone = (KeyState.RETIRING, KeyState.REVOKED)
    return [
        Change("key.deleted", r, deleted=True)
        for r in records
        if r.state in gone and r.delete_at and r.delete_at <= now
    ]


def _without_active(
    records: list[KeyRecord], now: int, schedule: RotationSchedule, new_key: NewKey
) -> list[Change]:
    # Nothing signs: promote a pending key at once, ready or not, since no
    # signer at all is worse than a key some caches have not seen yet.
    pending = _newest(records, KeyState.PENDING)
    if pending is not None:
        return [_activate(pending, now, schedule)]
    return [Change("key.created", new_key(KeyState.ACTIVE, now))]


def scheduled_changes(
    records: list[KeyRecord], now: int, schedule: RotationSchedule, new_key: NewKey
) -> list[Change]:
    """What the rotation leader does at ``now``: create, promote, retire, delete."""
    changes = expired_changes(records, now)
    active = _newest(records, KeyState.ACTIVE)
    if active is None:
        return changes + _without_active(records, now, schedule, new_key)

    changes += [
        _retire(r, now, schedule)
        for r in records
        if r.state == KeyState.ACTIVE and r.kid != active.kid
    ]
    if not active.retire_at:
        active = dataclasses.replace(active, retire_at=_due(active, schedule))
        changes.append(Change("key.scheduled", active))

    pending = _oldest(records, KeyState.PENDING)
    if pending is None:
        lead = schedule.publish_ahead + ROUNDING_SECONDS
        if now >= active.retire_at - lead:
            changes.append(Change("key.created", new_key(KeyState.PENDING, now)))
    elif pending.activate_at <= now and active.retire_at <= now:
        changes += [_activate(pending, now, schedule), _retire(active, now, schedule)]
    return changes


def rotation_changes(
    records: list[KeyRecord], now: int, schedule: RotationSchedule, new_key: NewKey
) -> list[Change]:
    """An operator's rotation: the next key signs as soon as it is safe.

    A pending key is made unless one exists, and the active key's retirement
    is brought forward to the moment that key has been published for
    ``publish_ahead``; the leader then promotes it on schedule.
    """
    active = _newest(records, KeyState.ACTIVE)
    if active is None:
        return _without_active(records, now, schedule, new_key)

    changes = []
    pending = _oldest(records, KeyState.PENDING)
    if pending is None:
        pending = new_key(KeyState.PENDING, now)
        changes.append(Change("key.created", pending))
    retire_at = max(now, pending.activate_at)
    if not active.retire_at or retire_at < active.retire_at:
        active = dataclasses.replace(active, retire_at=retire_at)
        changes.append(Change("key.scheduled", active))
    return changes


def revocation_changes(
    records: list[KeyRecord],
    kid: str,
    now: int,
    schedule: RotationSchedule,
    new_key: NewKey,
) -> list[Change]:
    """An emergency revocation of ``kid``: out of the JWKS now, a new signer now.

    Returns no change when the key is already revoked.

    Raises:
        KeyError: no record has that kid.
    """
    found = {r.kid: r for r in records}
    record = found[kid]
    if record.state == KeyState.REVOKED:
        return []

    revoked = dataclasses.replace(
        record,
        state=KeyState.REVOKED,
        retired_at=record.retired_at or now,
        delete_at=now + schedule.retention,
    )
    changes = [Change("key.revoked", revoked)]
    if record.state == KeyState.ACTIVE:
        others = [r for r in records if r.kid != kid]
        if _newest(others, KeyState.ACTIVE) is None:
            changes += _without_active(others, now, schedule, new_key)
    return changes
