"""The STS side of scale: 100 and 100,000 workloads and providers together.

For each size the configuration holds that many workloads (as in
:mod:`tests.bench.policy`) and that many providers, each with its own
issuer, inline key, CEL condition and CEL mapping. Prints the time to
validate the configuration, to rebuild it from its etcd items (what every
service does on each change), the growth of resident memory while it is built
and held, and the cost of authenticating one subject token in process:
provider lookup by issuer, key, signature, claims, condition and mapping.
Then, through an etcd with its default limits (128 operations and 1.5 MiB per
transaction), the time to apply the configuration as a new version, the time
until a follower has it in force, and the longest the follower's event loop
went without running a 5 ms ticker meanwhile; then the same for two reloads
over it, one changing a single document, one rewriting every document.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import time
from typing import Any, cast

from services.sts.foreign_keys import ForeignKeys
from services.sts.subject import Authenticator
from tests.bench.policy import SIZES, raw_config, timed
from wif.dev.etcd import start_etcd
from wif.store import EtcdStore
from wif.tokens import SigningKey
from wif.trust.config import TrustConfig, build_config, from_etcd_items, to_etcd_items
from wif.trust.follower import TrustFollower
from wif.trust.stored import apply_items

TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
AUDIENCE = "https://wif.acme.example"
#: Distinct providers whose tokens are presented in the per-request loop.
SAMPLED_PROVIDERS = 200
ROUNDS = 2000
#: Seconds a follower may take to load the largest configuration.
LOAD_TIMEOUT = 600.0


def issuer_of(n: int) -> str:
    """The issuer of provider ``n``."""
    return f"https://idp-{n}.ci.example"


def with_providers(raw: dict[str, Any], count: int, jwk: dict[str, Any]) -> None:
    """Adds ``count`` providers, one per issuer, spread over the teams."""
    teams = [p["id"] for p in raw["pools"] if p["id"].startswith("team-")]
    raw["providers"] = [
        {
            "id": f"idp-{n}",
            "pool": teams[n % len(teams)],
            "issuer": issuer_of(n),
            "jwks": {"keys": [jwk]},
            "audiences": [AUDIENCE],
            "algorithms": ["ES256"],
            "condition": "assertion.repository_owner == 'acme-corp'",
            "mapping": {
                "subject": "assertion.sub",
                "attributes": {"workload_type": "'ci-job'"},
            },
        }
        for n in range(count)
    ]


def resident_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed_reload(items: dict[str, bytes]) -> tuple[TrustConfig, float, int]:
    """The configuration rebuilt from etcd items, the seconds it took, and
    the growth of resident memory while it was built and held."""
    gc.collect()
    before = resident_bytes()
    config, seconds = timed(lambda: from_etcd_items(items, 1))
    gc.collect()
    return config, seconds, resident_bytes() - before


def subject_tokens(key: SigningKey, count: int, sampled: int) -> list[str]:
    """Tokens of ``sampled`` providers picked at random among ``count``."""
    now = int(time.time())
    picked = random.Random(11).sample(range(count), min(sampled, count))
    return [
        key.sign(
            {
                "iss": issuer_of(n),
                "sub": f"job-{n}",
                "aud": AUDIENCE,
                "iat": now,
                "nbf": now,
                "exp": now + 600,
                "jti": f"bench-{n}",
                "repository_owner": "acme-corp",
            }
        )
        for n in picked
    ]


class NothingRevoked:
    """The mesh's own keys and revocations: none, for foreign tokens only."""

    def keyset_get(self, kid: str) -> None:
        return None

    def check_not_revoked(self, token_id: str, subject: str) -> None:
        return None


async def authenticate_cost(config: TrustConfig, tokens: list[str]) -> float:
    """Seconds per authentication, best of three runs, keys already loaded."""
    # Inline keys only: the session is never used.
    authenticator = Authenticator(ForeignKeys(cast(Any, None)), NothingRevoked())
    for token in tokens:
        await authenticator.authenticate(token, TYPE_JWT, config)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for n in range(ROUNDS):
            await authenticator.authenticate(tokens[n % len(tokens)], TYPE_JWT, config)
        best = min(best, (time.perf_counter() - start) / ROUNDS)
    return best


class Ticker:
    """A task that ticks every 5 ms and keeps the longest gap between ticks."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        last = time.perf_counter()
        for _ in range(10_000_000):
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    async def stop(self) -> float:
        """Stops ticking; returns the longest gap in milliseconds."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.longest * 1e3


def one_document_changed(items: dict[str, bytes]) -> dict[str, bytes]:
    """``items`` with the attributes of one workload changed."""
    key = next(k for k in items if "/workloads/" in k)
    doc = json.loads(items[key])
    doc["attributes"] = {**doc.get("attributes", {}), "environment_tier": "dev"}
    return {**items, key: json.dumps(doc, sort_keys=True).encode()}


def every_document_rewritten(items: dict[str, bytes]) -> dict[str, bytes]:
    """``items`` with the same content, every document written differently."""
    compact = (",", ":")
    return {
        k: json.dumps(json.loads(v), separators=compact).encode()
        for k, v in items.items()
    }


async def reload(
    writer: EtcdStore, follower: TrustFollower, items: dict[str, bytes]
) -> tuple[float, float]:
    """Apply ``items`` over the configuration in force: the milliseconds
    from the apply until the follower has them in force, and the follower's
    longest stall meanwhile."""
    # Only the revision: holding the configuration itself would keep the
    # follower from letting go of it while the ticker runs.
    previous = follower.require().revision
    await apply_items(writer, items)
    applied = time.perf_counter()
    ticker = Ticker()
    async with asyncio.timeout(LOAD_TIMEOUT):
        while True:
            if follower.require().revision != previous:
                break
            await asyncio.sleep(0.005)
    loaded = time.perf_counter()
    return (loaded - applied) * 1e3, await ticker.stop()


async def through_etcd(endpoint: str, items: dict[str, bytes]) -> dict[str, float]:
    """Apply ``items`` through etcd and time a follower loading them, then
    reloading them with one document changed and with every one rewritten."""
    async with EtcdStore(endpoint) as writer, EtcdStore(endpoint) as reader:
        follower = TrustFollower(reader)
        following = asyncio.create_task(follower.run())
        started = time.perf_counter()
        await apply_items(writer, items)
        applied = time.perf_counter()
        ticker = Ticker()
        await follower.wait_until_loaded(LOAD_TIMEOUT)
        loaded = time.perf_counter()
        stall = await ticker.stop()
        one = await reload(writer, follower, one_document_changed(items))
        every = await reload(writer, follower, every_document_rewritten(items))
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
    return {
        "apply through etcd ms": (applied - started) * 1e3,
        "follower in force after apply ms": (loaded - applied) * 1e3,
        "longest event loop stall ms": stall,
        "reload 1 changed: in force ms": one[0],
        "reload 1 changed: stall ms": one[1],
        "reload all changed: in force ms": every[0],
        "reload all changed: stall ms": every[1],
    }


def measure(size: int, key: SigningKey) -> dict[str, float]:
    """Every figure of one size."""
    raw = raw_config(size)
    with_providers(raw, size, key.public_jwk())
    config, validate_s = timed(lambda: build_config(raw))
    items = to_etcd_items(config)
    del config
    config, reload_s, held = timed_reload(items)
    tokens = subject_tokens(key, size, SAMPLED_PROVIDERS)
    per_request = asyncio.run(authenticate_cost(config, tokens))
    del config
    with start_etcd(max_txn_ops=None) as etcd:
        etcd_figures = asyncio.run(through_etcd(etcd.endpoint, items))
    return {
        "validate configuration ms": validate_s * 1e3,
        "rebuild from etcd items ms": reload_s * 1e3,
        "etcd items MB": sum(len(v) for v in items.values()) / 1e6,
        "resident growth on reload MB": held / 1e6,
        "authenticate subject us": per_request * 1e6,
        **etcd_figures,
    }


def main() -> dict[int, dict[str, float]]:
    """Prints the table and returns the figures by size."""
    key = SigningKey.generate("ES256")
    results = {size: measure(size, key) for size in SIZES}
    header = "".join(f"{f'{s:,} each':>16}" for s in SIZES)
    print(f"\nSTS scale (workloads and providers){'':<0}\n{'':<30}{header}")
    for name in results[SIZES[0]]:
        print(f"{name:<30}" + "".join(f"{results[s][name]:>16.1f}" for s in SIZES))
    return results


if __name__ == "__main__":
    main()
