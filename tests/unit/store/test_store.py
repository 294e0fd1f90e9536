"""The etcd-backed store against a real etcd server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aetcd
import pytest

from wif.dev.etcd import EtcdServer, free_port, start_etcd
from wif.store import (
    EtcdStore,
    Snapshot,
    SnapshotHandler,
    StoreUnavailable,
    parse_endpoint,
)

WAIT = 5.0


class Recorder:
    """Collects the snapshots a follower delivers and waits for one."""

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self._changed = asyncio.Event()

    def __call__(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)
        self._changed.set()

    async def wait_for(
        self, predicate: Callable[[Snapshot], bool], within: float = WAIT
    ) -> Snapshot:
        async with asyncio.timeout(within):
            while not (self.snapshots and predicate(self.snapshots[-1])):
                self._changed.clear()
                await self._changed.wait()
        return self.snapshots[-1]


@contextlib.asynccontextmanager
async def following(
    store: EtcdStore, prefix: str, handler: SnapshotHandler, **retry: float
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(store.follow_prefix(prefix, handler, **retry))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


def items_of(snapshot: Snapshot) -> dict[str, bytes]:
    return dict(snapshot.items)


async def test_get_returns_what_put_wrote(store: EtcdStore, prefix: str) -> None:
    await store.put(f"{prefix}key", b"value")

    assert await store.get(f"{prefix}key") == b"value"


async def test_get_returns_none_for_a_missing_key(
    store: EtcdStore, prefix: str
) -> None:
    assert await store.get(f"{prefix}missing") is None


async def test_delete_removes_the_key_and_reports_whether_it_existed(
    store: EtcdStore, prefix: str
) -> None:
    await store.put(f"{prefix}key", b"value")

    assert await store.delete(f"{prefix}key") is True
    assert await store.get(f"{prefix}key") is None
    assert await store.delete(f"{prefix}key") is False


async def test_get_prefix_returns_its_keys_at_the_last_revision(
    store: EtcdStore, prefix: str
) -> None:
    await store.put(f"{prefix}a", b"1")
    revision = await store.put(f"{prefix}b", b"2")
    await store.put(f"{prefix.rstrip('/')}-sibling", b"outside")

    snapshot = await store.get_prefix(prefix)

    assert items_of(snapshot) == {f"{prefix}a": b"1", f"{prefix}b": b"2"}
    assert snapshot.revision == revision + 1


async def test_replace_prefix_puts_the_items_and_deletes_the_rest(
    store: EtcdStore, prefix: str
) -> None:
    await store.put(f"{prefix}old", b"gone")
    await store.put(f"{prefix}kept", b"before")

    revision = await store.replace_prefix(
        prefix, {f"{prefix}kept": b"after", f"{prefix}new": b"added"}
    )

    snapshot = await store.get_prefix(prefix)
    assert items_of(snapshot) == {f"{prefix}kept": b"after", f"{prefix}new": b"added"}
    assert snapshot.revision == revision


async def test_replace_prefix_rejects_keys_outside_the_prefix(
    store: EtcdStore, prefix: str
) -> None:
    with pytest.raises(ValueError, match="keys outside the prefix"):
        await store.replace_prefix(prefix, {"/elsewhere": b"x"})

    assert items_of(await store.get_prefix(prefix)) == {}


async def test_follower_sees_whole_configurations_only(
    store: EtcdStore, prefix: str
) -> None:
    first = {f"{prefix}a{i}": b"first" for i in range(6)}
    second = {f"{prefix}b{i}": b"second" for i in range(4)} | {f"{prefix}a0": b"2"}
    recorder = Recorder()

    async with following(store, prefix, recorder):
        await recorder.wait_for(lambda snapshot: True)
        for round_ in range(20):
            last = await store.replace_prefix(prefix, [first, second][round_ % 2])
        await recorder.wait_for(lambda snapshot: snapshot.revision == last)

    allowed = [{}, first, second]
    assert all(items_of(snapshot) in allowed for snapshot in recorder.snapshots)
    assert items_of(recorder.snapshots[-1]) == second


async def test_put_if_absent_creates_the_key_only_once(
    store: EtcdStore, prefix: str
) -> None:
    assert await store.put_if_absent(f"{prefix}key", b"first") is True
    assert await store.put_if_absent(f"{prefix}key", b"second") is False

    assert await store.get(f"{prefix}key") == b"first"


async def test_lease_expiry_removes_the_key(store: EtcdStore, prefix: str) -> None:
    lease = await store.grant_lease(1)
    await store.put(f"{prefix}leased", b"value", lease=lease)
    assert await store.get(f"{prefix}leased") == b"value"

    # etcd may round a short TTL up to its minimum, set by its raft timers.
    async with asyncio.timeout(4.0):
        while True:
            if await store.get(f"{prefix}leased") is None:
                break
            await asyncio.sleep(0.1)


async def test_follow_prefix_delivers_the_initial_and_changed_snapshots(
    store: EtcdStore, prefix: str
) -> None:
    await store.put(f"{prefix}a", b"1")
    recorder = Recorder()

    async with following(store, prefix, recorder):
        initial = await recorder.wait_for(lambda snapshot: True)
        put_revision = await store.put(f"{prefix}b", b"2")
        changed = await recorder.wait_for(lambda s: s.revision == put_revision)
        await store.delete(f"{prefix}a")
        deleted = await recorder.wait_for(lambda s: f"{prefix}a" not in s.items)

    assert items_of(initial) == {f"{prefix}a": b"1"}
    assert items_of(changed) == {f"{prefix}a": b"1", f"{prefix}b": b"2"}
    assert items_of(deleted) == {f"{prefix}b": b"2"}
    assert store.last_revision >= deleted.revision


async def test_follow_prefix_goes_on_when_the_handler_fails(
    store: EtcdStore, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()

    async def failing_once(snapshot: Snapshot) -> None:
        recorder(snapshot)
        if len(recorder.snapshots) == 1:
            raise RuntimeError("handler broke")

    async with following(store, prefix, failing_once):
        await recorder.wait_for(lambda snapshot: True)
        await store.put(f"{prefix}a", b"1")
        await recorder.wait_for(lambda s: f"{prefix}a" in s.items)

    assert "the handler of" in caplog.text
    assert "handler broke" in caplog.text


async def test_follow_prefix_reloads_when_its_revision_was_compacted(
    store: EtcdStore,
    etcd_server: EtcdServer,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wif.store")
    await store.put(f"{prefix}a", b"1")
    recorder = Recorder()
    release = asyncio.Event()

    async def held_at_first(snapshot: Snapshot) -> None:
        recorder(snapshot)
        await release.wait()

    async with following(store, prefix, held_at_first):
        await recorder.wait_for(lambda snapshot: True)
        await store.put(f"{prefix}a", b"2")
        revision = await store.put(f"{prefix}b", b"3")
        await compact(etcd_server, revision)
        release.set()
        reloaded = await recorder.wait_for(lambda s: s.revision == revision)

    assert items_of(reloaded) == {f"{prefix}a": b"2", f"{prefix}b": b"3"}
    assert "compacted" in caplog.text


async def compact(server: EtcdServer, revision: int) -> None:
    async with aetcd.Client(host="127.0.0.1", port=server.client_port) as client:
        await client.compact(revision, physical=True)


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_follow_prefix_survives_etcd_going_away_and_coming_back(
    outage: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = await asyncio.to_thread(start_etcd)
    store = EtcdStore(server.endpoint, timeout=2.0)
    recorder = Recorder()
    retry = {"retry_initial": 0.05, "retry_max": 0.5}
    try:
        await store.put(f"{prefix}a", b"before")
        async with following(store, prefix, recorder, **retry):
            await recorder.wait_for(lambda snapshot: True)
            assert store.healthy

            await asyncio.to_thread(getattr(server, outage))
            await eventually(lambda: not store.healthy)
            await asyncio.to_thread(server.restart)
            await eventually(lambda: store.healthy)

            revision = await store.put(f"{prefix}a", b"after")
            after = await recorder.wait_for(lambda s: s.revision == revision)
    finally:
        await store.close()
        await asyncio.to_thread(server.close)

    assert items_of(after) == {f"{prefix}a": b"after"}
    lost = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lost) == 1
    assert "lost etcd" in lost[0].getMessage()


async def test_calls_raise_store_unavailable_when_etcd_is_down() -> None:
    async with EtcdStore(f"127.0.0.1:{free_port()}", timeout=1.0) as store:
        with pytest.raises(StoreUnavailable):
            await store.get("/wif/anything")


@dataclass(frozen=True)
class EndpointCase:
    endpoint: str
    host: str
    port: int


@pytest.mark.parametrize(
    "case",
    [
        EndpointCase("127.0.0.1:2379", "127.0.0.1", 2379),
        EndpointCase("http://127.0.0.1:2379", "127.0.0.1", 2379),
        EndpointCase("localhost:12379", "localhost", 12379),
        EndpointCase("[::1]:2379", "[::1]", 2379),
    ],
)
def test_parse_endpoint_accepts(case: EndpointCase) -> None:
    assert parse_endpoint(case.endpoint) == (case.host, case.port)


@pytest.mark.parametrize(
    "endpoint",
    [
        "127.0.0.1",
        "https://127.0.0.1:2379",
        "127.0.0.1:2379/path",
        "user@127.0.0.1:2379",
        "127.0.0.1:notaport",
        ":2379",
    ],
)
def test_parse_endpoint_rejects(endpoint: str) -> None:
    with pytest.raises(ValueError, match="is not host:port"):
        parse_endpoint(endpoint)
