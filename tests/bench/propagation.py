"""Time from a change in etcd to its effect on every STS replica.

Two STS processes follow the same etcd. Each trial starts a clock, writes
the change, then polls both replicas (bounded: every :data:`POLL_SECONDS`
for at most :data:`LIMIT_SECONDS`) until each shows the effect:

- revocation: a token both replicas have validated (and cached) is revoked
  through :func:`wif.revocations.revoke_token`; the effect is
  ``TOKEN_REVOKED`` from ``ValidateToken``;
- configuration: :func:`wif.dev.mesh.apply_config` adds an audience and a
  policy permitting it; the effect is ``ExplainExchange`` answering that an
  exchange for it would be issued (the STS and the Policy service both had
  to load the new version).

Prints the median and worst of :data:`TRIALS` trials, per replica.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from tests.bench.harness import BenchMesh
from tests.support.mesh import exchange, job_token
from wif.dev.mesh import apply_config
from wif.revocations import revoke_token
from wif.store import EtcdStore
from wif.v1 import sts_pb2, sts_pb2_grpc

TRIALS = 5
POLL_SECONDS = 0.002
LIMIT_SECONDS = 5.0
TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"

Probe = Callable[[sts_pb2_grpc.SecurityTokenServiceStub], Awaitable[bool]]


async def until(stub: sts_pb2_grpc.SecurityTokenServiceStub, probe: Probe) -> float:
    """Seconds until ``probe`` holds on one replica; inf past the limit."""
    started = time.perf_counter()
    while time.perf_counter() - started < LIMIT_SECONDS:
        if await probe(stub):
            return time.perf_counter() - started
        await asyncio.sleep(POLL_SECONDS)
    return float("inf")


async def timed_change(
    stubs: list[sts_pb2_grpc.SecurityTokenServiceStub],
    change: Awaitable[Any],
    probe: Probe,
) -> list[float]:
    """Per replica, seconds from the start of ``change`` to its effect."""
    started = time.perf_counter()
    await change
    written = time.perf_counter() - started
    waits = await asyncio.gather(*(until(stub, probe) for stub in stubs))
    return [written + wait for wait in waits]


def revoked_probe(token: str) -> Probe:
    request = sts_pb2.ValidateTokenRequest(token=token)

    async def probe(stub: sts_pb2_grpc.SecurityTokenServiceStub) -> bool:
        try:
            await stub.ValidateToken(request, timeout=2)
        except grpc.aio.AioRpcError:
            return True
        return False

    return probe


def allowed_probe(subject_token: str, audience: str) -> Probe:
    request = sts_pb2.ExplainExchangeRequest(
        exchange=sts_pb2.ExchangeTokenRequest(
            subject_token=subject_token,
            subject_token_type=TYPE_JWT,
            audience=[audience],
        )
    )

    async def probe(stub: sts_pb2_grpc.SecurityTokenServiceStub) -> bool:
        answer = await stub.ExplainExchange(request, timeout=2)
        return bool(answer.would_issue)

    return probe


def config_with_audience(base: str, audience: str) -> str:
    """The trust file with one more audience and a policy that permits it."""
    text = base.replace(
        "\naudiences:\n",
        f"\naudiences:\n  - id: {audience}\n    scopes: []\n",
    )
    return text + (
        f"  - id: reach-{audience}\n"
        "    cedar: |\n"
        '      permit (principal in Pool::"payments", action == Action::"exchange",\n'
        f'              resource == Audience::"{audience}");\n'
    )


async def measure(mesh: BenchMesh, subject_token: str) -> dict[str, list[list[float]]]:
    """Per kind of change, one list of per-replica times per trial."""
    endpoints = mesh.endpoints
    addresses = [endpoints["sts"]["grpc"], mesh.sts2]
    channels = [grpc.aio.insecure_channel(a) for a in addresses]
    stubs = [sts_pb2_grpc.SecurityTokenServiceStub(c) for c in channels]
    base = Path(endpoints["trust_config"]).read_text()
    environ = dict(endpoints["config_variables"])
    results: dict[str, list[list[float]]] = {"revocation": [], "configuration": []}
    async with EtcdStore(endpoints["etcd"]) as store:
        for trial in range(TRIALS):
            issued = await exchange(endpoints, subject_token)
            probe = revoked_probe(issued.access_token)
            for stub in stubs:  # both replicas now hold it in their cache
                assert not await probe(stub)
            expires_at = time.time() + issued.expires_in
            revoke = revoke_token(store, issued.token_id, expires_at)
            results["revocation"].append(await timed_change(stubs, revoke, probe))

            audience = f"bench-api-{trial}"
            path = mesh.state / f"trust-{audience}.yaml"
            path.write_text(config_with_audience(base, audience))
            apply = apply_config(endpoints["etcd"], path, environ)
            allowed = allowed_probe(subject_token, audience)
            results["configuration"].append(await timed_change(stubs, apply, allowed))
    for channel in channels:
        await channel.close()
    return results


def main(mesh: BenchMesh) -> dict[str, float]:
    """Prints the table; returns the median of the slower replica, per kind."""
    subject_token = job_token(mesh.endpoints, "github-payments-deploy")
    results = asyncio.run(measure(mesh, subject_token))
    print(
        f"\nPropagation to 2 STS replicas, {TRIALS} trials, polled every "
        f"{POLL_SECONDS * 1e3:.0f} ms\n{'change':<16}{'replica':>9}"
        f"{'median ms':>11}{'worst ms':>10}"
    )
    slowest: dict[str, float] = {}
    for kind, trials in results.items():
        for replica in range(2):
            times = [t[replica] * 1e3 for t in trials]
            print(
                f"{kind:<16}{replica + 1:>9}{statistics.median(times):>11.1f}"
                f"{max(times):>10.1f}"
            )
        slowest[kind] = statistics.median(max(t) * 1e3 for t in trials)
    return slowest
