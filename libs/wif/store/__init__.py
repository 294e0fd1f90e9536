"""The etcd-backed store every service reads its configuration from.

Services do not poll: :meth:`EtcdStore.follow_prefix` loads a prefix once,
then follows etcd's watch and hands the caller a full, consistent
:class:`Snapshot` after every change. A configuration written with
:meth:`EtcdStore.replace_prefix` is one etcd transaction, so a follower sees
the old set or the new set, never a mix. When etcd cannot be reached the
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
    parse_endpoint,
    transaction_problem,
)
from wif.store.client import EtcdStore

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_MAX_TXN_OPS",
    "EtcdStore",
    "Snapshot",
    "SnapshotHandler",
    "StoreConflict",
    "StoreRefused",
    "StoreUnavailable",
    "parse_endpoint",
    "transaction_problem",
]
