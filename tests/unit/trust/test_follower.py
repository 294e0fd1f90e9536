"""Tests for wif.trust.follower.TrustFollower against an etcd with its default
caps of 128 operations and 1.5 MiB per transaction, as in production."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.bench.policy import raw_config
from tests.bench.scale import with_providers
from wif.dev.etcd import EtcdServer, start_etcd
from wif.store import DEFAULT_MAX_TXN_OPS, EtcdStore
from wif.tokens import SigningKey
from wif.trust.config import TrustConfig, build_config, from_etcd_items, to_etcd_items
from wif.trust.follower import TrustFollower
from wif.trust.stored import apply_items

WAIT = 30.0


@pytest.fixture(scope="module")
def stock_etcd() -> Iterator[EtcdServer]:
    with start_etcd(max_txn_ops=None) as server:
        yield server


@contextlib.asynccontextmanager
async def following(
    endpoint: str, seen: list[TrustConfig]
) -> AsyncIterator[TrustFollower]:
    async with EtcdStore(endpoint) as store:
        follower = TrustFollower(store, on_change=seen.append)
        task = asyncio.create_task(follower.run())
        try:
            yield follower
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def wait_for(follower: TrustFollower, config: TrustConfig) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            current = follower.current
            if current is not None and to_etcd_items(current) == to_etcd_items(config):
                return
            await asyncio.sleep(0.02)


def with_audiences(raw: dict[str, Any], count: int) -> TrustConfig:
    raw["audiences"] += [
        {"id": f"bulk-{i:04d}", "parent": "internal", "scopes": []}
        for i in range(count)
    ]
    return build_config(raw)


async def test_followers_see_a_configuration_larger_than_one_transaction_whole(
    stock_etcd: EtcdServer, dev_config: TrustConfig, dev_raw: dict[str, Any]
) -> None:
    large = with_audiences(dev_raw, 5 * DEFAULT_MAX_TXN_OPS)
    seen: list[list[TrustConfig]] = [[], [], []]
    async with EtcdStore(stock_etcd.endpoint) as store:
        await apply_items(store, to_etcd_items(dev_config))
        async with (
            following(stock_etcd.endpoint, seen[0]) as first,
            following(stock_etcd.endpoint, seen[1]) as second,
        ):
            for follower in (first, second):
                await wait_for(follower, dev_config)
            await apply_items(store, to_etcd_items(large))
            async with following(stock_etcd.endpoint, seen[2]) as late:
                for follower in (first, second, late):
                    await wait_for(follower, large)

    wholes = (to_etcd_items(dev_config), to_etcd_items(large))
    assert all(to_etcd_items(c) in wholes for configs in seen for c in configs)
    assert [len(configs) for configs in seen] == [2, 2, 1]


async def test_a_follower_keeps_the_event_loop_free_while_it_loads(
    stock_etcd: EtcdServer,
) -> None:
    raw = raw_config(6000)
    with_providers(raw, 6000, SigningKey.generate("ES256").public_jwk())
    config = build_config(raw)
    items = to_etcd_items(config)
    started = time.perf_counter()
    from_etcd_items(items, 1)
    reload_seconds = time.perf_counter() - started
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        for _ in range(100_000):
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with EtcdStore(stock_etcd.endpoint) as store:
        await apply_items(store, items)
        async with following(stock_etcd.endpoint, []) as follower:
            ticker = asyncio.create_task(tick())
            loaded = await follower.wait_until_loaded(WAIT)
            ticker.cancel()

    assert to_etcd_items(loaded) == items

    assert reload_seconds > 0.2
    assert max(gaps) < reload_seconds / 2, (max(gaps), reload_seconds)
