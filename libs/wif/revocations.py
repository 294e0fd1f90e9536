"""Revoked mesh tokens and subjects, kept in etcd so that every replica sees them.

A revocation is one key under :data:`REVOCATIONS_PREFIX`; its presence is
the revocation, and the key is bound to an etcd lease so that etcd removes
it once nothing it covers can still be valid:

- ``jti/<jti>`` revokes one token; the lease ends when the token expires
  (plus the mesh's clock skew).
- ``sub/<base64url of the subject>`` revokes every token of a subject, and
  while it stands the STS issues none for that subject either; the lease
  lasts the longest lifetime a mesh token can have, so every token issued
  before the revocation has expired when it ends.

The value is a small JSON record for operators; readers look at keys only.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass

from wif.store import EtcdStore, Snapshot
from wif.tokens import base64url
from wif.trust.model import MAX_LIFETIME_SECONDS

log = logging.getLogger(__name__)

#: The etcd prefix of revocation records (also followed by the Policy service).
REVOCATIONS_PREFIX = "/wif/revocations/"
JTI_PREFIX = REVOCATIONS_PREFIX + "jti/"
SUBJECT_PREFIX = REVOCATIONS_PREFIX + "sub/"

#: Seconds a revocation outlives what it covers, for clocks that differ.
REVOCATION_MARGIN_SECONDS = 60
#: The longest token id accepted, in characters.
MAX_TOKEN_ID_LENGTH = 256


def token_key(token_id: str) -> str:
    """The etcd key revoking the token ``token_id``."""
    if not token_id or len(token_id) > MAX_TOKEN_ID_LENGTH or "/" in token_id:
        raise ValueError("a token id is 1 to 256 characters without '/'")
    return JTI_PREFIX + token_id


def subject_key(subject: str) -> str:
    """The etcd key revoking every token of ``subject`` (key-safe base64url)."""
    if not subject:
        raise ValueError("a subject is not empty")
    return SUBJECT_PREFIX + base64url.encode(subject.encode("utf-8"))


def _record(**fields: object) -> bytes:
    return json.dumps({**fields, "revoked_at": int(time.time())}).encode()


async def revoke_token(
    store: EtcdStore, token_id: str, expires_at: float | None = None
) -> None:
    """Revokes one token on every replica until it expires.

    Without ``expires_at`` the revocation lasts the longest lifetime a mesh
    token can have. Raises ``ValueError`` for a bad id and
    ``StoreUnavailable`` when etcd cannot be reached.
    """
    key = token_key(token_id)
    if expires_at is None:
        remaining = float(MAX_LIFETIME_SECONDS)
    else:
        remaining = max(0.0, expires_at - time.time())
    lease = await store.grant_lease(math.ceil(remaining) + REVOCATION_MARGIN_SECONDS)
    await store.put(key, _record(jti=token_id), lease=lease)


async def revoke_subject(store: EtcdStore, subject: str) -> None:
    """Revokes every token of ``subject`` for the longest token lifetime."""
    key = subject_key(subject)
    lease = await store.grant_lease(MAX_LIFETIME_SECONDS + REVOCATION_MARGIN_SECONDS)
    await store.put(key, _record(subject=subject), lease=lease)


@dataclass(frozen=True)
class _Revoked:
    token_ids: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()


class RevocationList:
    """The revocations in force, as the etcd watch last delivered them.

    ``generation`` counts the snapshots received, so a cache can tell that
    what it holds may be stale.
    """

    def __init__(self, store: EtcdStore) -> None:
        self._store = store
        self._revoked = _Revoked()
        self.generation = 0

    async def follow(self) -> None:
        """Follows the revocation records until cancelled."""
        await self._store.follow_prefix(REVOCATIONS_PREFIX, self.apply)

    def apply(self, snapshot: Snapshot) -> None:
        """Replaces what is known with ``snapshot``."""
        token_ids: set[str] = set()
        subjects: set[str] = set()
        for key in snapshot.items:
            if key.startswith(JTI_PREFIX):
                token_ids.add(key[len(JTI_PREFIX) :])
            elif key.startswith(SUBJECT_PREFIX):
                try:
                    encoded = key[len(SUBJECT_PREFIX) :]
                    subjects.add(base64url.decode(encoded).decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    log.error("ignoring a malformed subject revocation at %s", key)
        self._revoked = _Revoked(frozenset(token_ids), frozenset(subjects))
        self.generation += 1

    def add_token(self, token_id: str) -> None:
        """Records a revocation made here before the watch brings it back."""
        revoked = self._revoked
        self._revoked = _Revoked(revoked.token_ids | {token_id}, revoked.subjects)
        self.generation += 1

    def add_subject(self, subject: str) -> None:
        """Records a subject revocation made here before the watch brings it."""
        revoked = self._revoked
        self._revoked = _Revoked(revoked.token_ids, revoked.subjects | {subject})
        self.generation += 1

    def token_revoked(self, token_id: str) -> bool:
        """Tells whether the token ``token_id`` is revoked."""
        return bool(token_id) and token_id in self._revoked.token_ids

    def subject_revoked(self, subject: str) -> bool:
        """Tells whether every token of ``subject`` is revoked."""
        return subject in self._revoked.subjects

    def revoked(self, token_id: str, subject: str) -> bool:
        """Tells whether the token or its whole subject is revoked."""
        return self.token_revoked(token_id) or self.subject_revoked(subject)
