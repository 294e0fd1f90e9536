"""Signing key records as kept in etcd, and the public key set they publish.

The ITS writes one record per key under :data:`KEYS_PREFIX`; the STS and
relying services read only their public parts. A record's private part is
sealed (see :mod:`wif.envelope`) and never leaves the ITS in the clear.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from wif.store import EtcdStore, Snapshot
from wif.tokens import KeySet

log = logging.getLogger(__name__)

#: The etcd prefix under which signing key records live.
KEYS_PREFIX = "/wif/keys/"

#: The algorithms the ITS signs with.
SIGNING_ALGORITHMS = ("ES256", "RS256")


class KeyState(StrEnum):
    """Where a key is in its life."""

    PENDING = "pending"
    ACTIVE = "active"
    RETIRING = "retiring"
    REVOKED = "revoked"


#: States whose keys are published and whose tokens verify.
PUBLISHED_STATES = (KeyState.PENDING, KeyState.ACTIVE, KeyState.RETIRING)


@dataclass(frozen=True)
class KeyRecord:
    """One signing key: public JWK, state, schedule and where its private part is.

    The private part is either sealed under the KEK (``sealed_private``) or
    held by a PKCS#11 token, named by ``hsm_key_id`` (its CKA_ID in hex), in
    which case ``sealed_private`` is empty. Times are Unix seconds; 0 means
    not set. ``retire_at`` is when an active key is due to stop signing: no
    token it signs may outlive ``retire_at`` plus the longest token lifetime,
    which is what keeps every such token verifiable until ``delete_at``.
    """

    kid: str
    alg: str
    state: KeyState
    created_at: int
    public_jwk: Mapping[str, Any]
    sealed_private: Mapping[str, str] = field(repr=False)
    activate_at: int = 0
    retire_at: int = 0
    retired_at: int = 0
    delete_at: int = 0
    hsm_key_id: str = ""

    def to_json(self) -> bytes:
        """The record as stored in etcd."""
        return json.dumps(
            {
                "kid": self.kid,
                "alg": self.alg,
                "state": self.state.value,
                "created_at": self.created_at,
                "public_jwk": dict(self.public_jwk),
                "sealed_private": dict(self.sealed_private),
                **{name: getattr(self, name) for name in _SCHEDULE},
                "hsm_key_id": self.hsm_key_id,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> KeyRecord:
        """Parses a stored record; raises ``ValueError`` if it is malformed.

        Records written before keys had a schedule lack its members; they
        read as 0 (not set).
        """
        doc = json.loads(data)
        try:
            return cls(
                kid=str(doc["kid"]),
                alg=str(doc["alg"]),
                state=KeyState(doc["state"]),
                created_at=int(doc["created_at"]),
                public_jwk=dict(doc["public_jwk"]),
                sealed_private=dict(doc["sealed_private"]),
                **{name: int(doc.get(name, 0)) for name in _SCHEDULE},
                hsm_key_id=str(doc.get("hsm_key_id", "")),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed key record: {exc}") from exc


#: The schedule members of a record, all Unix seconds.
_SCHEDULE = ("activate_at", "retire_at", "retired_at", "delete_at")


def key_path(kid: str) -> str:
    """The etcd key of a record."""
    return f"{KEYS_PREFIX}{kid}"


def parse_records(items: Mapping[str, bytes]) -> list[KeyRecord]:
    """Parses every record under KEYS_PREFIX, skipping (and logging) bad ones."""
    records = []
    for key, value in items.items():
        try:
            records.append(KeyRecord.from_json(value))
        except ValueError:
            log.error("ignoring a malformed key record at %s", key)
    return records


def published_jwks(records: Iterable[KeyRecord]) -> dict[str, Any]:
    """The JWK Set of every published key: public members only."""
    keys = [dict(r.public_jwk) for r in records if r.state in PUBLISHED_STATES]
    return {"keys": sorted(keys, key=lambda k: k["kid"])}


def verification_keys(records: Iterable[KeyRecord]) -> KeySet:
    """The key set that verifies tokens the mesh issued."""
    keyset, errors = KeySet.from_jwks(published_jwks(records), SIGNING_ALGORITHMS)
    for error in errors:
        log.error("ignoring a published key: %s", error)
    return keyset


class KeyringFollower:
    """Follows the key records in etcd and keeps the verification key set."""

    def __init__(self, store: EtcdStore) -> None:
        self._store = store
        self.records: dict[str, KeyRecord] = {}
        self.keyset = KeySet.from_jwks({"keys": []}, SIGNING_ALGORITHMS)[0]
        self.revision = 0
        self._changed = asyncio.Condition()

    async def follow(self) -> None:
        """Follows the records until cancelled."""
        await self._store.follow_prefix(KEYS_PREFIX, self._on_snapshot)

    async def _on_snapshot(self, snapshot: Snapshot) -> None:
        records = parse_records(snapshot.items)
        self.records = {r.kid: r for r in records}
        self.keyset = verification_keys(records)
        self.revision = snapshot.revision
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Waits until ``predicate`` holds after some snapshot; raises TimeoutError."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)
