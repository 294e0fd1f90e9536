"""A load client in a process of its own: ``python -m tests.bench.loadgen``.

It reads one JSON job from stdin, runs it against a loopback address and
prints one JSON result line. A job names the call (``echo``,
``validate_hit``, ``validate_miss``, ``decide``, ``exchange``) and either a
concurrency (closed loop: that many calls always in flight) or a rate (open
loop: calls start on a fixed schedule, latency counted from the scheduled
start so that a stall is not hidden). Every run is bounded by a call count
and a duration, whichever comes first.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2

from wif.v1 import (
    its_pb2,
    its_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
    sts_pb2,
    sts_pb2_grpc,
)

TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
AUDIENCE = "payments-api"
#: The longest any single call may take before it counts as an error.
CALL_TIMEOUT_SECONDS = 10.0
#: Calls in flight at most in an open-loop run; later ones are counted as shed.
MAX_IN_FLIGHT = 512

Call = Callable[[], Awaitable[Any]]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the sorted values lie."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


def summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    """Throughput, latency percentiles in milliseconds, and this client's CPU use."""
    ordered = sorted(latencies)
    return {
        "client_cpu": time.process_time(),
        "calls": len(ordered),
        "errors": errors,
        "seconds": elapsed,
        "rate": len(ordered) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(ordered, 0.50) * 1e3,
        "p90_ms": percentile(ordered, 0.90) * 1e3,
        "p99_ms": percentile(ordered, 0.99) * 1e3,
        "max_ms": ordered[-1] * 1e3 if ordered else float("nan"),
    }


async def closed_loop(
    call: Call, concurrency: int, seconds: float, max_calls: int
) -> dict[str, Any]:
    """``concurrency`` workers, each calling again as soon as a call ends."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline and len(latencies) + errors < max_calls:
            begin = time.perf_counter()
            try:
                await call()
            except (grpc.aio.AioRpcError, IndexError):
                errors += 1
                continue
            latencies.append(time.perf_counter() - begin)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary(latencies, errors, time.perf_counter() - started)


async def open_loop(call: Call, rate: float, seconds: float) -> dict[str, Any]:
    """Calls started ``rate`` times a second; latency from the scheduled start."""
    latencies: list[float] = []
    errors = shed = 0
    in_flight: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    total = int(rate * seconds)

    async def one(scheduled: float) -> None:
        nonlocal errors
        try:
            await call()
        except grpc.aio.AioRpcError:
            errors += 1
            return
        latencies.append(time.perf_counter() - scheduled)

    for n in range(total):
        scheduled = started + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= MAX_IN_FLIGHT:
            shed += 1
            continue
        task = asyncio.create_task(one(scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight, timeout=CALL_TIMEOUT_SECONDS)
    result = summary(latencies, errors + shed, time.perf_counter() - started)
    result["offered_rate"] = rate
    return result


async def mint_tokens(its_address: str, count: int) -> list[str]:
    """``count`` distinct mesh tokens from the ITS, 32 requests at a time."""
    request = its_pb2.IssueTokenRequest(
        subject="spiffe://acme.example/payments-ci/bench",
        audiences=[AUDIENCE],
        scopes=["payments.read"],
        lifetime_seconds=3600,
    )
    tokens: list[str] = []
    async with grpc.aio.insecure_channel(its_address) as channel:
        stub = its_pb2_grpc.IdentityTokenServiceStub(channel)

        async def worker() -> None:
            while len(tokens) < count:
                reply = await stub.IssueToken(request, timeout=CALL_TIMEOUT_SECONDS)
                tokens.append(reply.token)

        await asyncio.gather(*(worker() for _ in range(32)))
    return tokens[:count]


def decide_request() -> policy_pb2.DecideRequest:
    """The decision an exchange of the dev CI job asks for."""
    attributes = struct_pb2.Struct()
    attributes.update({"workload_type": "ci-job", "environment_tier": "production"})
    context = struct_pb2.Struct()
    context.update({"source_address": "127.0.0.1"})
    return policy_pb2.DecideRequest(
        principal=policy_pb2.Principal(
            subject="spiffe://acme.example/payments-ci/acme-corp/payments",
            pool_id="payments-ci",
            provider_id="ci",
            attributes=attributes,
        ),
        action="exchange",
        audience=AUDIENCE,
        scopes=["payments.read"],
        context=context,
    )


async def build_call(job: dict[str, Any], channel: grpc.aio.Channel) -> Call:
    """The call a job names, with whatever it needs prepared beforehand."""
    kind = job["kind"]
    timeout = CALL_TIMEOUT_SECONDS
    if kind == "decide":
        policy = policy_pb2_grpc.PolicyServiceStub(channel)
        decide = decide_request()
        return lambda: policy.Decide(decide, timeout=timeout)
    sts = sts_pb2_grpc.SecurityTokenServiceStub(channel)
    if kind == "exchange":
        exchange = sts_pb2.ExchangeTokenRequest(
            subject_token=job["subject_token"],
            subject_token_type=TYPE_JWT,
            audience=[AUDIENCE],
            scope=["payments.read"],
        )
        return lambda: sts.ExchangeToken(exchange, timeout=timeout)
    if kind == "validate_miss":
        fresh = await mint_tokens(job["its"], job["max_calls"])
        requests = iter(
            [sts_pb2.ValidateTokenRequest(token=t, audience=AUDIENCE) for t in fresh]
        )
        # IndexError-free: StopIteration ends the worker through the call.
        return lambda: sts.ValidateToken(next_or_raise(requests), timeout=timeout)
    validate = sts_pb2.ValidateTokenRequest(token=job["token"], audience=AUDIENCE)
    return lambda: sts.ValidateToken(validate, timeout=timeout)


def next_or_raise(requests: Any) -> Any:
    """The next prepared request; IndexError when none is left."""
    try:
        return next(requests)
    except StopIteration:
        raise IndexError("no fresh token left") from None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(job: dict[str, Any]) -> dict[str, Any]:
    """Warms up for ``warmup`` seconds, then measures.

    ``client_cpu`` becomes the share of one core this process used while
    measuring: near 1.0 means the client, not the server, set the pace.
    With ``server_pids`` (name to pid), ``server_cpu_us`` holds the CPU
    microseconds each of those processes spent per call while measuring.
    """
    servers: dict[str, int] = job.get("server_pids", {})
    async with grpc.aio.insecure_channel(job["target"]) as channel:
        call = await build_call(job, channel)
        if job.get("warmup", 0) > 0:
            await closed_loop(call, job.get("concurrency", 4), job["warmup"], 10**6)
        cpu_before = time.process_time()
        servers_before = {name: cpu_seconds(pid) for name, pid in servers.items()}
        if "rate" in job:
            result = await open_loop(call, job["rate"], job["seconds"])
        else:
            result = await closed_loop(
                call, job["concurrency"], job["seconds"], job["max_calls"]
            )
    calls = max(1, result["calls"] + result["errors"])
    result["server_cpu_us"] = {
        name: (cpu_seconds(pid) - servers_before[name]) / calls * 1e6
        for name, pid in servers.items()
    }
    result["client_cpu"] = (result["client_cpu"] - cpu_before) / result["seconds"]
    return result


def main() -> None:
    job = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(run(job))))


if __name__ == "__main__":
    main()
