"""The etcd-backed store every service reads its configuration from.

Services do not poll: :meth:`EtcdStore.follow_prefix` loads a prefix once,
then follows etcd's watch and hands the caller a full, consistent
:class:`Snapshot` after every change. A configuration written with
:meth:`EtcdStore.replace_prefix` is one etcd transaction, so a follower sees
the old set or the new set, never a mix; a set too large for one transaction
is written as a new version by :class:`VersionedPrefix` and put in force by
switching one pointer key. When etcd cannot be reached the
follower keeps quiet about it except for one warning, the caller keeps
serving its last snapshot, and following resumes from the last revision seen
once etcd is back.
"""

from wif.store.base import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
    Snapshot,
    SnapshotHandler,
    StoreConflict,
    StoreRefused,
    StoreUnavailable,
    chunk_items,
    oversized_document,
    parse_endpoint,
)
from wif.store.client import EtcdStore
from wif.store.versioned import AppliedVersion, CurrentVersion, VersionedPrefix

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_MAX_TXN_OPS",
    "AppliedVersion",
    "CurrentVersion",
    "EtcdStore",
    "Snapshot",
    "SnapshotHandler",
    "StoreConflict",
    "StoreRefused",
    "StoreUnavailable",
    "VersionedPrefix",
    "chunk_items",
    "oversized_document",
    "parse_endpoint",
]
