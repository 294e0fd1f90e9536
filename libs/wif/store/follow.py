"""Following a prefix: one snapshot now, then one after every change.

A :class:`Follower` owns its etcd client and survives outages: it backs off,
reconnects and resumes from the last revision seen, reloading the whole
prefix when that revision has been compacted away.
"""

from __future__ import annotations

import asyncio
import inspect
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import aetcd.rpc
import aetcd.utils
import grpc

from wif.store.base import (
    ETCD_ERRORS,
    REQUIRE_LEADER,
    Snapshot,
    SnapshotHandler,
    close_quietly,
    decode,
    describe,
    encode,
    logger,
    read_prefix,
)

if TYPE_CHECKING:
    from wif.store.client import EtcdStore


class Follower:
    """The state of one ``follow_prefix`` loop; it owns its etcd client."""

    def __init__(
        self,
        store: EtcdStore,
        prefix: str,
        on_snapshot: SnapshotHandler,
        retry_initial: float,
        retry_max: float,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.on_snapshot = on_snapshot
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.delay = retry_initial
        self.items: dict[str, bytes] | None = None  # None: load the prefix
        self.revision = 0
        self.lost = False

    async def run(self) -> None:
        try:
            while True:
                await self._follow_once()
        finally:
            if self.lost:
                self.store._followers_in_outage -= 1

    async def _follow_once(self) -> None:
        # A new client per attempt: a channel that lived through an outage
        # can sit in gRPC's reconnect backoff long after etcd is back.
        client = self.store._new_client()
        try:
            await client.connect()
            if self.items is None:
                await self._load(client)
            await self._watch(client)
        except ETCD_ERRORS as error:
            self._mark_lost(error)
            await asyncio.sleep(self.delay)
            self.delay = min(self.delay * 2, self.retry_max)
        finally:
            await close_quietly(client)

    async def _load(self, client: Any) -> None:
        snapshot = await read_prefix(client, self.prefix)
        self.items = dict(snapshot.items)
        self._advance(snapshot.revision)
        await self._deliver()

    async def _watch(self, client: Any) -> None:
        """Apply watch responses until the stream fails or history is compacted."""
        call = aetcd.rpc.WatchStub(client.channel).Watch(metadata=REQUIRE_LEADER)
        try:
            await call.write(self._create_request())
            first = await asyncio.wait_for(call.read(), self.store.timeout)
            await self._handle(first)
            while self.items is not None:
                await self._handle(await call.read())
        finally:
            call.cancel()

    def _create_request(self) -> Any:
        prefix = encode(self.prefix)
        create = aetcd.rpc.WatchCreateRequest(
            key=prefix,
            range_end=aetcd.utils.prefix_range_end(prefix),
            start_revision=self.revision + 1,
            progress_notify=True,
        )
        return aetcd.rpc.WatchRequest(create_request=create)

    async def _handle(self, response: Any) -> None:
        if response is grpc.aio.EOF:
            raise WatchLost("etcd ended the watch stream")

        if response.compact_revision:
            logger.info(
                "etcd compacted %r past revision %d; reloading the prefix",
                self.prefix,
                self.revision,
            )
            self.items = None
            return

        if response.canceled:
            raise WatchLost(f"etcd cancelled the watch: {response.cancel_reason}")

        if response.created:
            self._mark_recovered()
        if response.events:
            self._apply(response.events)
            await self._deliver()
        elif not response.created:
            # A progress notification: nothing changed up to this revision.
            self._advance(int(response.header.revision))

    def _apply(self, events: Any) -> None:
        assert self.items is not None
        for event in events:
            key = decode(event.kv.key)
            if event.type == aetcd.rpc.Event.DELETE:
                self.items.pop(key, None)
            else:
                self.items[key] = bytes(event.kv.value)
        self._advance(max(int(event.kv.mod_revision) for event in events))

    def _advance(self, revision: int) -> None:
        self.revision = max(self.revision, revision)
        self.store._last_revision = max(self.store._last_revision, self.revision)

    async def _deliver(self) -> None:
        assert self.items is not None
        snapshot = Snapshot(self.revision, MappingProxyType(dict(self.items)))
        try:
            result = self.on_snapshot(snapshot)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception(
                "the handler of %r failed on revision %d", self.prefix, self.revision
            )

    def _mark_lost(self, error: BaseException) -> None:
        if self.lost:
            logger.debug(
                "etcd still unreachable for %r: %s", self.prefix, describe(error)
            )
            return

        self.lost = True
        self.store._followers_in_outage += 1
        logger.warning(
            "lost etcd at %s while following %r; keeping revision %d until it "
            "returns: %s",
            self.store.endpoint,
            self.prefix,
            self.revision,
            describe(error),
        )

    def _mark_recovered(self) -> None:
        self.delay = self.retry_initial
        if not self.lost:
            return

        self.lost = False
        self.store._followers_in_outage -= 1
        logger.info(
            "etcd at %s is back; following %r from revision %d",
            self.store.endpoint,
            self.prefix,
            self.revision,
        )


class WatchLost(ConnectionError):
    """The watch stream ended or etcd cancelled it; follow again."""
