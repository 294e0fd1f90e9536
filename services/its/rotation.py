"""Key rotation across ITS replicas: one leader, compare-and-swap commits.

Every ITS replica runs a :class:`KeyRotator`. The replicas campaign for one
etcd key bound to a lease; the one that holds it follows the schedule of
:mod:`services.its.schedule` and keeps its lease alive, the others only
follow the key records through the watch and campaign again whenever the
leader's lease lapses (a crashed leader is replaced within one lease time).

Every change to the key set, by the leader or by an operator's rotate or
revoke on any replica, is read, decided and committed in one etcd
transaction that applies only if no key record changed since the read, so
two writers can never both act on the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

from services.its.custody import KeyCustody
from services.its.schedule import (
    ROUNDING_SECONDS,
    Change,
    RotationSchedule,
    revocation_changes,
    rotation_changes,
    scheduled_changes,
)
from wif.audit import AuditLog
from wif.errors import WifError
from wif.keyring import KEYS_PREFIX, KeyRecord, KeyState, key_path, parse_records
from wif.store import EtcdStore, StoreConflict

log = logging.getLogger(__name__)

#: The etcd key the rotation leader holds, bound to its lease.
LEADER_KEY = "/wif/its/rotation-leader"

_COMMIT_ATTEMPTS = 5

#: Decides the changes from the current records and the time.
Decision = Callable[[list[KeyRecord], int], list[Change]]


class KeyRotator:
    """Changes the key set: on schedule as leader, or when an operator asks."""

    def __init__(
        self,
        store: EtcdStore,
        custody: KeyCustody,
        schedule: RotationSchedule,
        audit: AuditLog,
        *,
        algorithm: str,
        check_interval: float,
        lease_seconds: float,
    ) -> None:
        self._store = store
        self._custody = custody
        self._schedule = schedule
        self._audit = audit
        self._algorithm = algorithm
        self._lease_ttl = max(2, round(lease_seconds))
        # Refresh well inside the lease so one slow round trip does not lose it.
        self._interval = min(check_interval, self._lease_ttl / 3)
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.is_leader = False

    async def run(self) -> None:
        """Campaigns for leadership and leads while elected, until cancelled."""
        while True:
            try:
                await self._campaign()
            except WifError as error:
                log.warning("key rotation paused: %s", error.message)
            except Exception:
                # A failing HSM or KEK must not end rotation for good.
                log.exception("key rotation failed; trying again")
            await asyncio.sleep(self._interval)

    async def tick(self) -> list[Change]:
        """One pass of the schedule: create, promote, retire, delete."""
        return await self._commit(
            lambda records, now: scheduled_changes(
                records, now, self._schedule, self._new_record
            )
        )

    async def rotate(self) -> list[Change]:
        """An operator's rotation (see ``rotation_changes``)."""
        return await self._commit(
            lambda records, now: rotation_changes(
                records, now, self._schedule, self._new_record
            )
        )

    async def revoke(self, kid: str) -> list[Change]:
        """An emergency revocation; raises KeyError for an unknown kid."""
        return await self._commit(
            lambda records, now: revocation_changes(
                records, kid, now, self._schedule, self._new_record
            )
        )

    async def current_records(self) -> list[KeyRecord]:
        """Every key record as etcd holds it now, newest first."""
        snapshot = await self._store.get_prefix(KEYS_PREFIX)
        records = parse_records(snapshot.items)
        return sorted(records, key=lambda r: (r.created_at, r.kid), reverse=True)

    def _new_record(self, state: KeyState, now: int) -> KeyRecord:
        record = self._custody.create(self._algorithm).record(state, now, now)
        if state == KeyState.ACTIVE:
            return dataclasses.replace(record, retire_at=now + self._schedule.period)
        # ``now`` is rounded down: the key is published for the whole time.
        return dataclasses.replace(
            record, activate_at=now + ROUNDING_SECONDS + self._schedule.publish_ahead
        )

    async def _commit(self, decide: Decision) -> list[Change]:
        for _ in range(_COMMIT_ATTEMPTS):
            snapshot = await self._store.get_prefix(KEYS_PREFIX)
            changes = decide(parse_records(snapshot.items), int(time.time()))
            if not changes:
                return []
            if await self._write(snapshot.revision, changes):
                await self._report(changes)
                return changes
            self._discard_new_keys(changes)
        raise StoreConflict("the key records kept changing; try again")

    async def _write(self, revision: int, changes: list[Change]) -> bool:
        puts = {
            key_path(c.record.kid): c.record.to_json() for c in changes if not c.deleted
        }
        deletes = [key_path(c.record.kid) for c in changes if c.deleted]
        return await self._store.update_prefix_if_unchanged(
            KEYS_PREFIX, revision, puts, deletes
        )

    def _discard_new_keys(self, changes: list[Change]) -> None:
        # A key made for a commit that lost the race must not linger in an HSM.
        for change in changes:
            if change.event == "key.created":
                self._custody.destroy(change.record)

    async def _report(self, changes: list[Change]) -> None:
        for change in changes:
            if change.deleted:
                self._custody.destroy(change.record)
            record = change.record
            log.info("%s", change.event, extra={"fields": {"key_id": record.kid}})
            await self._audit.record(
                change.event,
                "ok",
                key_id=record.kid,
                alg=record.alg,
                state=record.state.value,
                activate_at=record.activate_at,
                retire_at=record.retire_at,
                delete_at=record.delete_at,
                replica=self.replica_id,
            )

    async def _campaign(self) -> None:
        if await self._store.get(LEADER_KEY) is not None:
            return
        lease = await self._store.grant_lease(self._lease_ttl)
        try:
            if await self._store.put_if_absent(
                LEADER_KEY, self.replica_id.encode(), lease=lease
            ):
                await self._lead(lease)
        finally:
            self.is_leader = False
            with contextlib.suppress(WifError, asyncio.TimeoutError):
                await asyncio.wait_for(self._store.revoke_lease(lease), 2.0)

    async def _lead(self, lease: int) -> None:
        self.is_leader = True
        log.info("leading key rotation", extra={"fields": {"replica": self.replica_id}})
        while await self._store.refresh_lease(lease):
            try:
                await self.tick()
            except StoreConflict as error:
                log.warning("key schedule pass skipped: %s", error.message)
            await asyncio.sleep(self._interval)
        log.warning("lost the key rotation lease; campaigning again")
