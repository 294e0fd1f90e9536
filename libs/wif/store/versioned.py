"""A set of keys too large for one transaction, replaced whole all the same.

Under a root such as ``/wif/trust/`` each applied set is written as a new
version, ``<root>versions/<id>/<name>``, in as many transactions as the
store's limits need. Only then does one small transaction point
``<root>current`` at ``<id>``, provided nobody moved the pointer since this
apply read it. Readers load the version the pointer names, so they see the
old set or the new one, never part of either. Each apply also records its
id under ``<root>index/`` before writing, so versions abandoned half-way are
found and deleted later.

A version id starts with the etcd revision at which its apply read the
pointer. Any apply that started before the version now previous to the
current one read the pointer before that version's switch, so its own switch
must fail: versions older than the previous one can be deleted without
harming an apply that may still win.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from wif.store.base import (
    Snapshot,
    StoreConflict,
    StoreRefused,
    StoreUnavailable,
    chunk_items,
)
from wif.store.client import EtcdStore

logger = logging.getLogger(__name__)

# Chunks of one version written at the same time: enough to hide a round
# trip, few enough not to crowd out the services' own calls to etcd.
_PARALLEL_WRITES = 4


@dataclass(frozen=True)
class AppliedVersion:
    """A version put in force: its id and the revision of the switch."""

    version: str
    revision: int


@dataclass(frozen=True)
class CurrentVersion:
    """The version in force (None if none), the revision at which the
    pointer last moved (0 if never) and the version's items by name under
    the root."""

    version: str | None
    revision: int
    items: Mapping[str, bytes]

    def snapshot(self) -> Snapshot:
        """The items as a snapshot at the pointer's revision."""
        return Snapshot(self.revision, self.items)


class VersionedPrefix:
    """Versions of a set of keys under ``root``, one of them in force.

    Keys given to :meth:`apply` and returned by the reads are the logical
    ones, ``<root><name>``; where they are stored is this class's business.
    """

    def __init__(self, store: EtcdStore, root: str) -> None:
        if not root.endswith("/"):
            raise ValueError(f"the root {root!r} must end with '/'")
        self.store = store
        self.root = root
        self.pointer_key = root + "current"
        self._versions = root + "versions/"
        self._index = root + "index/"

    def version_prefix(self, version: str) -> str:
        """Where the keys of ``version`` are stored."""
        return f"{self._versions}{version}/"

    async def apply(self, items: Mapping[str, bytes]) -> AppliedVersion:
        """Write ``items`` as a new version and put it in force.

        Raises:
            ValueError: a key lies outside the root or in its own bookkeeping.
            StoreConflict: another apply moved the pointer meanwhile; this
                version was discarded and the other one stays in force.
            StoreRefused: etcd refused a write, e.g. a document too large.
            StoreUnavailable: etcd could not be reached; the pointer is
                unchanged, and the partial version is deleted by a later apply.
        """
        self._check_names(items)
        pointer = await self.store.get_versioned(self.pointer_key)
        version = f"{pointer.read_revision:016d}-{secrets.token_hex(4)}"
        try:
            chunks = chunk_items(
                self._relocate(items, version),
                max_ops=self.store.max_txn_ops,
                max_bytes=self.store.max_request_bytes,
            )
        except ValueError as error:
            raise StoreRefused(f"etcd would refuse this set: {error}") from error

        await self.store.put(self._index + version, b"")
        await self._write(chunks, version)
        revision = await self.store.put_if_mod_revision(
            self.pointer_key, version.encode(), pointer.mod_revision
        )
        if revision is None:
            await self._discard(version)
            raise StoreConflict(
                "another apply changed the configuration while this one was "
                "written; read it again and retry"
            )

        previous = None if pointer.value is None else pointer.value.decode()
        await self._delete_older_than(previous)
        return AppliedVersion(version, revision)

    async def read_current(self) -> CurrentVersion:
        """The version in force and its items; empty when none was applied.

        Retries a few times when the version read was deleted by newer
        applies between reading the pointer and reading the version.
        """
        for _ in range(3):
            pointer = await self.store.get_versioned(self.pointer_key)
            if pointer.value is None:
                return CurrentVersion(None, 0, MappingProxyType({}))
            version = pointer.value.decode()
            items = await self.read_version(version)
            if items:
                return CurrentVersion(version, pointer.mod_revision, items)
        raise StoreConflict("the configuration kept changing while it was read")

    async def read_version(self, version: str) -> Mapping[str, bytes]:
        """The items of ``version`` by logical key; empty if it was deleted."""
        prefix = self.version_prefix(version)
        snapshot = await self.store.get_prefix_paged(prefix, renamed=self.root)
        return snapshot.items

    def _check_names(self, items: Mapping[str, bytes]) -> None:
        reserved = (self.pointer_key, self._versions, self._index)
        outside = sorted(
            key
            for key in items
            if not key.startswith(self.root) or key.startswith(reserved)
        )
        if outside:
            raise ValueError(f"keys outside the prefix {self.root!r}: {outside}")

    def _relocate(self, items: Mapping[str, bytes], version: str) -> dict[str, bytes]:
        prefix = self.version_prefix(version)
        return {prefix + key[len(self.root) :]: value for key, value in items.items()}

    async def _write(self, chunks: list[dict[str, bytes]], version: str) -> None:
        for start in range(0, len(chunks), _PARALLEL_WRITES):
            window = chunks[start : start + _PARALLEL_WRITES]
            results = await asyncio.gather(
                *(self.store.put_all(chunk) for chunk in window),
                return_exceptions=True,
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if not failed:
                continue
            if isinstance(failed[0], StoreRefused):
                await self._discard(version)
            raise failed[0]

    async def _discard(self, version: str) -> None:
        await self.store.delete_prefixes(
            [self.version_prefix(version), self._index + version]
        )

    async def _delete_older_than(self, previous: str | None) -> None:
        """Delete the versions older than ``previous``, which stays for
        readers still loading it; a failure only leaves them for later."""
        if previous is None:
            return
        try:
            index = await self.store.get_prefix(self._index)
            old = sorted(
                name
                for name in (key[len(self._index) :] for key in index.items)
                if name < previous
            )
            batch_size = max(1, self.store.max_txn_ops // 2)
            for start in range(0, len(old), batch_size):
                batch = old[start : start + batch_size]
                await self.store.delete_prefixes(
                    [self.version_prefix(name) for name in batch]
                    + [self._index + name for name in batch]
                )
        except (StoreUnavailable, StoreRefused) as error:
            logger.warning("old versions under %r stay for now: %s", self.root, error)
