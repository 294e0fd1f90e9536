"""The etcd transactions the store sends: puts and deletes behind a guard.

Each guarded write compares the whole prefix: every key under it, including
one created since the caller read it, must be no newer than the revision the
caller read, otherwise someone else wrote meanwhile and nothing is applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import aetcd.rpc
import aetcd.utils

from wif.store.base import Snapshot, encode

rpc = aetcd.rpc


def put_ops(items: Mapping[str, bytes]) -> list[Any]:
    """One put operation per item."""
    return [
        rpc.RequestOp(request_put=rpc.PutRequest(key=encode(k), value=v))
        for k, v in items.items()
    ]


def delete_ops(keys: Iterable[str]) -> list[Any]:
    """One delete operation per key."""
    return [
        rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=encode(k)))
        for k in keys
    ]


def unchanged_since(prefix: str, revision: int) -> Any:
    """The guard: no key under ``prefix`` was written after ``revision``."""
    key = encode(prefix)
    return rpc.Compare(
        key=key,
        range_end=aetcd.utils.prefix_range_end(key),
        target=rpc.Compare.MOD,
        result=rpc.Compare.LESS,
        mod_revision=revision + 1,
    )


def update_request(
    prefix: str, revision: int, puts: Mapping[str, bytes], deletes: Iterable[str]
) -> Any:
    """Writes ``puts`` and deletes ``deletes`` if the prefix is unchanged."""
    ops = put_ops(puts) + delete_ops(deletes)
    return rpc.TxnRequest(compare=[unchanged_since(prefix, revision)], success=ops)


def replace_request(prefix: str, current: Snapshot, items: Mapping[str, bytes]) -> Any:
    """Makes ``items`` exactly the keys under ``prefix``, if unchanged since read."""
    stale = [k for k in current.items if k not in items]
    return update_request(prefix, current.revision, items, stale)
