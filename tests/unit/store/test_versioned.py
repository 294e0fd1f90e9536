"""Tests for wif.store.VersionedPrefix against an etcd with its default caps.

etcd refuses a transaction of more than 128 operations or 1.5 MiB by
default, as a production cluster does; these sets are larger than that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping

import pytest

from wif.dev.etcd import EtcdServer, start_etcd
from wif.store import (
    DEFAULT_MAX_TXN_OPS,
    EtcdStore,
    Snapshot,
    StoreConflict,
    StoreRefused,
    VersionedPrefix,
)

WAIT = 10.0


@pytest.fixture(scope="module")
def stock_etcd() -> Iterator[EtcdServer]:
    with start_etcd(max_txn_ops=None) as server:
        yield server


@pytest.fixture
async def stock_store(stock_etcd: EtcdServer) -> AsyncIterator[EtcdStore]:
    async with EtcdStore(stock_etcd.endpoint) as connected:
        yield connected


def many(
    root: str, mark: str, count: int = 5 * DEFAULT_MAX_TXN_OPS
) -> dict[str, bytes]:
    return {f"{root}docs/{i:05d}": f"{mark}-{i}".encode() for i in range(count)}


async def test_apply_writes_more_documents_than_one_transaction_allows(
    stock_store: EtcdStore, prefix: str
) -> None:
    versions = VersionedPrefix(stock_store, prefix)
    items = many(prefix, "first") | {f"{prefix}big": b"x" * 1_000_000}
    items |= {f"{prefix}also-big": b"y" * 1_000_000}

    applied = await versions.apply(items)
    current = await versions.read_current()

    assert current.version == applied.version
    assert current.revision == applied.revision
    assert dict(current.items) == items


async def test_apply_keeps_the_previous_version_and_deletes_older_ones(
    stock_store: EtcdStore, prefix: str
) -> None:
    versions = VersionedPrefix(stock_store, prefix)

    first = await versions.apply(many(prefix, "first", 10))
    second = await versions.apply(many(prefix, "second", 10))
    third = await versions.apply(many(prefix, "third", 10))

    assert await versions.read_version(first.version) == {}
    assert dict(await versions.read_version(second.version)) == many(
        prefix, "second", 10
    )
    assert dict(await versions.read_version(third.version)) == many(prefix, "third", 10)


async def test_a_reader_during_a_chunked_apply_sees_the_old_or_the_new_set(
    stock_store: EtcdStore, prefix: str
) -> None:
    versions = VersionedPrefix(stock_store, prefix)
    old, new = many(prefix, "old"), many(prefix, "new", 7 * DEFAULT_MAX_TXN_OPS)
    await versions.apply(old)
    seen: list[Mapping[str, bytes]] = []
    loaded, loaded_new = asyncio.Event(), asyncio.Event()

    async def on_pointer(snapshot: Snapshot) -> None:
        named = snapshot.items.get(versions.pointer_key)
        if named is not None:
            seen.append(await versions.read_version(named.decode()))
            loaded.set()
            if dict(seen[-1]) == new:
                loaded_new.set()

    async def poll() -> None:
        for _ in range(10_000):
            seen.append((await versions.read_current()).items)
            await asyncio.sleep(0)

    follower = asyncio.create_task(
        stock_store.follow_prefix(versions.pointer_key, on_pointer)
    )
    await asyncio.wait_for(loaded.wait(), WAIT)
    poller = asyncio.create_task(poll())
    try:
        await versions.apply(new)
        await asyncio.wait_for(loaded_new.wait(), WAIT)
    finally:
        for task in (follower, poller):
            task.cancel()
        await asyncio.gather(follower, poller, return_exceptions=True)

    assert len(seen) > 2
    assert all(dict(items) in (old, new) for items in seen)


async def test_of_two_concurrent_applies_one_wins_and_the_other_fails_cleanly(
    stock_store: EtcdStore, prefix: str
) -> None:
    versions = VersionedPrefix(stock_store, prefix)
    sets = [many(prefix, "left"), many(prefix, "right")]

    results = await asyncio.gather(
        *(versions.apply(items) for items in sets), return_exceptions=True
    )

    conflicts = [r for r in results if isinstance(r, StoreConflict)]
    winners = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
    assert len(conflicts) == 1, results
    assert "another apply changed the configuration" in conflicts[0].message
    (winner,) = winners
    assert dict((await versions.read_current()).items) == sets[winner]
    stored = await stock_store.get_prefix(prefix)
    assert len(stored.items) == len(sets[winner]) + 2  # the pointer, its index


async def test_a_document_larger_than_one_request_writes_nothing(
    stock_store: EtcdStore, prefix: str
) -> None:
    versions = VersionedPrefix(stock_store, prefix)
    await versions.apply(many(prefix, "kept", 3))
    before = await stock_store.get_prefix(prefix)

    with pytest.raises(StoreRefused, match=f"the document {prefix}versions/"):
        await versions.apply({f"{prefix}huge": b"x" * (1700 * 1024)})

    after = await stock_store.get_prefix(prefix)
    assert dict(after.items) == dict(before.items)
    assert after.revision == before.revision


async def test_apply_refuses_keys_outside_the_root_or_in_its_bookkeeping(
    stock_store: EtcdStore, prefix: str
) -> None:
    versions = VersionedPrefix(stock_store, prefix)

    for key in ("/elsewhere", f"{prefix}current", f"{prefix}versions/x/y"):
        with pytest.raises(ValueError, match="keys outside the prefix"):
            await versions.apply({key: b"x"})

    assert (await versions.read_current()).version is None


async def test_a_paged_read_returns_the_prefix_at_one_revision(
    stock_store: EtcdStore, prefix: str
) -> None:
    items = many(prefix, "paged", 25)
    await stock_store.put_all(items)
    whole = await stock_store.get_prefix(prefix)

    paged = await stock_store.get_prefix_paged(prefix, page_size=4)

    assert dict(paged.items) == items
    assert paged.revision == whole.revision


async def test_a_paged_read_can_rename_the_prefix_of_every_key(
    stock_store: EtcdStore, prefix: str
) -> None:
    items = many(prefix, "renamed", 9)
    await stock_store.put_all(items)

    paged = await stock_store.get_prefix_paged(prefix, page_size=4, renamed="/x/")

    assert dict(paged.items) == {
        "/x/" + key[len(prefix) :]: value for key, value in items.items()
    }
