"""Tests for wif.trust.follower.TrustFollower against an etcd with its default
caps of 128 operations and 1.5 MiB per transaction, as in production."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.bench.policy import raw_config
from tests.bench.scale import with_providers
from wif.dev.etcd import EtcdServer, start_etcd
from wif.errors import ConfigError
from wif.store import DEFAULT_MAX_TXN_OPS, EtcdStore
from wif.tokens import SigningKey
from wif.trust.config import (
    TRUST_PREFIX,
    TrustConfig,
    build_config,
    from_etcd_items,
    to_etcd_items,
)
from wif.trust.follower import Install, Prepare, TrustFollower
from wif.trust.stored import apply_items

WAIT = 30.0


@pytest.fixture(scope="module")
def stock_etcd() -> Iterator[EtcdServer]:
    with start_etcd(max_txn_ops=None) as server:
        yield server


@contextlib.asynccontextmanager
async def following(
    endpoint: str, seen: list[TrustConfig], prepare: Prepare | None = None
) -> AsyncIterator[TrustFollower]:
    async with EtcdStore(endpoint) as store:
        follower = TrustFollower(store, prepare=prepare or seen.append)
        task = asyncio.create_task(follower.run())
        try:
            yield follower
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def wait_for(follower: TrustFollower, config: TrustConfig) -> None:
    await wait_for_items(follower, to_etcd_items(config))


async def wait_for_items(follower: TrustFollower, items: dict[str, bytes]) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            current = follower.current
            if current is not None and to_etcd_items(current) == items:
                return
            await asyncio.sleep(0.02)


async def refusal(follower: TrustFollower) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            if follower.last_error is not None:
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


class Heartbeat:
    """Ticks every 5 ms on the event loop and keeps the longest gap."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        last = time.perf_counter()
        for _ in range(1_000_000):
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_prepare_runs_off_the_event_loop_and_its_install_on_it(
    stock_etcd: EtcdServer, dev_config: TrustConfig
) -> None:
    busy_seconds = 1.0
    threads: dict[str, int] = {}
    current_at_install: list[TrustConfig | None] = []

    def prepare(config: TrustConfig) -> Install:
        threads["prepare"] = threading.get_ident()
        until = time.perf_counter() + busy_seconds
        while time.perf_counter() < until:  # CPU-bound, as building entities is
            pass

        def install() -> None:
            threads["install"] = threading.get_ident()
            current_at_install.append(follower.current)

        return install

    async with EtcdStore(stock_etcd.endpoint) as store:
        await apply_items(store, to_etcd_items(dev_config))
        async with following(stock_etcd.endpoint, [], prepare) as follower:
            heartbeat = Heartbeat()
            await follower.wait_until_loaded(WAIT)
            await heartbeat.stop()

    assert threads["prepare"] != threading.get_ident()
    assert threads["install"] == threading.get_ident()
    assert current_at_install == [None]
    assert heartbeat.longest < busy_seconds / 2, heartbeat.longest


async def test_a_version_prepare_refuses_is_kept_out_like_an_invalid_one(
    stock_etcd: EtcdServer, dev_config: TrustConfig, dev_raw: dict[str, Any]
) -> None:
    refused = with_audiences(dev_raw, 1)
    installed: list[int] = []

    def prepare(config: TrustConfig) -> Install:
        if "bulk-0000" in config.audiences:
            raise ConfigError("entities: refused by the service")
        return lambda: installed.append(len(config.audiences))

    async with EtcdStore(stock_etcd.endpoint) as store:
        await apply_items(store, to_etcd_items(dev_config))
        async with following(stock_etcd.endpoint, [], prepare) as follower:
            await wait_for(follower, dev_config)
            await apply_items(store, to_etcd_items(refused))
            await refusal(follower)

    assert follower.last_error == "entities: refused by the service"
    assert follower.current is not None
    assert to_etcd_items(follower.current) == to_etcd_items(dev_config)
    assert installed == [len(dev_config.audiences)]


async def test_a_version_whose_build_breaks_is_kept_out_and_said_to_be_internal(
    stock_etcd: EtcdServer, dev_config: TrustConfig, dev_raw: dict[str, Any]
) -> None:
    broken = with_audiences(dev_raw, 1)

    def prepare(config: TrustConfig) -> Install | None:
        if "bulk-0000" in config.audiences:
            raise RuntimeError("a fault of the service's own")
        return None

    async with EtcdStore(stock_etcd.endpoint) as store:
        await apply_items(store, to_etcd_items(dev_config))
        async with following(stock_etcd.endpoint, [], prepare) as follower:
            await wait_for(follower, dev_config)
            applied = await apply_items(store, to_etcd_items(broken))
            await refusal(follower)

    assert follower.last_error == f"building revision {applied.revision} failed"
    assert follower.current is not None
    assert to_etcd_items(follower.current) == to_etcd_items(dev_config)


def edited(items: dict[str, bytes], key: str, **changes: Any) -> dict[str, bytes]:
    doc = json.loads(items[TRUST_PREFIX + key])
    doc.update(changes)
    return {**items, TRUST_PREFIX + key: json.dumps(doc, sort_keys=True).encode()}


async def test_a_follower_parses_again_only_what_each_reload_changed(
    stock_etcd: EtcdServer, dev_config: TrustConfig
) -> None:
    first = to_etcd_items(dev_config)
    second = edited(first, "providers/ci", max_token_age_seconds=600)
    third = edited(second, "pools/acme", description="changed")
    loaded: list[TrustConfig] = []

    async with EtcdStore(stock_etcd.endpoint) as store:
        await apply_items(store, first)
        async with following(stock_etcd.endpoint, loaded) as follower:
            await wait_for_items(follower, first)
            for items in (second, third):
                await apply_items(store, items)
                await wait_for_items(follower, items)

    assert [to_etcd_items(c) for c in loaded] == [first, second, third]
    assert loaded[1].pools["acme"] is loaded[0].pools["acme"]
    assert loaded[1].providers["ci"] is not loaded[0].providers["ci"]
    assert loaded[2].providers["ci"] is loaded[1].providers["ci"]
    assert loaded[2].pools["acme"].description == "changed"
