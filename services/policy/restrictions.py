"""Quarantines and revocations, followed from etcd by every replica.

:class:`Quarantines` follows :data:`wif.quarantine.QUARANTINE_PREFIX`; a
quarantined principal is denied everything until its record's end.
:class:`Revocations` follows ``/wif/revocations/``, where the STS records
revoked token ids (``jti/<jti>``) and subjects (``sub/<subject>``, the
subject base64url-encoded); the presence of a key is the revocation. Both
count their changes in ``generation`` so that a cache of decisions can tell
that what it holds may be stale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from urllib.parse import unquote

from wif import quarantine
from wif.quarantine import QUARANTINE_PREFIX, Quarantine
from wif.store import EtcdStore, Snapshot
from wif.tokens import base64url

log = logging.getLogger(__name__)

#: The etcd prefix of revocation records, written by the STS.
REVOCATIONS_PREFIX = "/wif/revocations/"
_JTI = REVOCATIONS_PREFIX + "jti/"
_SUBJECT = REVOCATIONS_PREFIX + "sub/"


class Quarantines:
    """The quarantines in force, as the watch last delivered them."""

    def __init__(self, store: EtcdStore) -> None:
        self._store = store
        self._by_subject: dict[str, Quarantine] = {}
        self.generation = 0

    async def follow(self) -> None:
        """Follows the quarantine records until cancelled."""
        await self._store.follow_prefix(QUARANTINE_PREFIX, self._on_snapshot)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        found = {}
        for key, value in snapshot.items.items():
            try:
                record = Quarantine.from_json(value)
            except ValueError:
                log.error("ignoring a malformed quarantine record at %s", key)
                continue
            found[record.subject] = record
        self._by_subject = found
        self.generation += 1

    def active(self, subject: str, now: float | None = None) -> Quarantine | None:
        """The quarantine ``subject`` is under, if one is in force."""
        record = self._by_subject.get(subject)
        moment = time.time() if now is None else now
        if record is None or record.until <= moment:
            return None
        return record

    async def impose(self, subject: str, seconds: int, reason: str) -> Quarantine:
        """Quarantines ``subject`` everywhere, and here at once."""
        record = await quarantine.impose(
            self._store, subject, seconds, reason=reason, imposed_by="policy"
        )
        self._by_subject[subject] = record
        self.generation += 1
        return record


def _subject_forms(suffix: str) -> Iterable[str]:
    yield suffix
    yield unquote(suffix)
    try:
        yield base64url.decode(suffix).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return


class Revocations:
    """Revoked token ids and subjects, as the watch last delivered them."""

    def __init__(self, store: EtcdStore) -> None:
        self._store = store
        self._token_ids: frozenset[str] = frozenset()
        self._subjects: frozenset[str] = frozenset()
        self.generation = 0

    async def follow(self) -> None:
        """Follows the revocation records until cancelled."""
        await self._store.follow_prefix(REVOCATIONS_PREFIX, self._on_snapshot)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        token_ids: set[str] = set()
        subjects: set[str] = set()
        for key in snapshot.items:
            if key.startswith(_JTI):
                suffix = key[len(_JTI) :]
                token_ids.update((suffix, unquote(suffix)))
            elif key.startswith(_SUBJECT):
                subjects.update(_subject_forms(key[len(_SUBJECT) :]))
        self._token_ids = frozenset(token_ids)
        self._subjects = frozenset(subjects)
        self.generation += 1

    def revoked(self, token_id: str, subject: str) -> bool:
        """Tells whether the token or its whole subject is revoked."""
        return token_id in self._token_ids or subject in self._subjects
