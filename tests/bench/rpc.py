"""RPCs of the running mesh against the echo ceiling, at the same concurrency.

Each measurement is one client process (``tests.bench.loadgen``) keeping
:data:`CONCURRENCY` calls in flight on one channel for a few seconds, so
that the client and the service under test each have one of the machine's
cores. Every service, the echo server included, exports spans to the OTLP
sink. Prints one table: throughput as a fraction of the echo's, p50 and
p99 latency and their multiples of the echo's, the CPU time the servers
spent per call (user and system, summed over the STS, Policy, ITS and echo
processes, read from ``/proc``), then the exchange's p99 at 80% of its
measured maximum rate (open loop). CPU per call does not depend on what
else the machine is doing, so it is the figure to compare across runs.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from tests.bench.harness import BenchMesh
from tests.support.mesh import exchange, job_token

CONCURRENCY = 16
SECONDS = 3.0
WARMUP_SECONDS = 0.5
MAX_CALLS = 30_000
#: Fresh tokens minted for the cache-miss run; it ends when they run out.
MISS_TOKENS = 5_000
PACED_SHARE = 0.8


#: The processes that serve each kind of call (the cache-miss run's own
#: minting of fresh tokens at the ITS is not the validation's cost).
SERVERS = {
    "echo": ("echo",),
    "validate_hit": ("sts",),
    "validate_miss": ("sts",),
    "decide": ("policy",),
    "exchange": ("sts", "policy", "its"),
}


def load_measuring_servers(job: dict[str, Any], pids: dict[str, int]) -> dict[str, Any]:
    """:func:`load`, with the CPU the job's servers spent while it measured."""
    servers = {name: pid for name, pid in pids.items() if name in SERVERS[job["kind"]]}
    return load({**job, "server_pids": servers})


def load(job: dict[str, Any]) -> dict[str, Any]:
    """Runs one load job in its own process and returns its result."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.loadgen"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load job {job['kind']} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def jobs(mesh: BenchMesh, subject_token: str, mesh_token: str) -> dict[str, Any]:
    """The closed-loop jobs, by the name the table shows."""
    sts = mesh.endpoints["sts"]["grpc"]
    common = {"concurrency": CONCURRENCY, "seconds": SECONDS, "max_calls": MAX_CALLS}
    warm = {**common, "warmup": WARMUP_SECONDS}
    return {
        "echo (ceiling)": {
            **warm,
            "kind": "echo",
            "target": mesh.echo,
            "token": mesh_token,
        },
        "ValidateToken hit": {
            **warm,
            "kind": "validate_hit",
            "target": sts,
            "token": mesh_token,
        },
        "ValidateToken miss": {
            **common,
            "kind": "validate_miss",
            "target": sts,
            "its": mesh.endpoints["its"]["grpc"],
            "max_calls": MISS_TOKENS,
        },
        "Decide": {
            **warm,
            "kind": "decide",
            "target": mesh.endpoints["policy"]["grpc"],
        },
        "ExchangeToken": {
            **warm,
            "kind": "exchange",
            "target": sts,
            "subject_token": subject_token,
        },
    }


def measure(mesh: BenchMesh) -> dict[str, dict[str, Any]]:
    """Every closed-loop result, then the paced exchange, by name."""
    subject_token = job_token(mesh.endpoints, "github-payments-deploy")
    issued = asyncio.run(
        exchange(mesh.endpoints, subject_token, scopes=("payments.read",))
    )
    pids = mesh.server_pids()
    results = {
        name: load_measuring_servers(job, pids)
        for name, job in jobs(mesh, subject_token, issued.access_token).items()
    }
    rate = PACED_SHARE * results["ExchangeToken"]["rate"]
    results["ExchangeToken @80%"] = load_measuring_servers(
        {
            "kind": "exchange",
            "target": mesh.endpoints["sts"]["grpc"],
            "subject_token": subject_token,
            "rate": rate,
            "seconds": SECONDS,
        },
        pids,
    )
    return results


def print_table(results: dict[str, dict[str, Any]]) -> None:
    """One row per RPC; ratios against the echo row of the same run."""
    echo = results["echo (ceiling)"]
    print(
        f"\nRPC, one client process, {CONCURRENCY} in flight, tracing on"
        f"\n{'rpc':<22}{'calls/s':>9}{'x echo':>8}{'p50 ms':>8}{'x echo':>8}"
        f"{'p99 ms':>8}{'x echo':>8}{'errors':>7}{'client cpu':>11}"
        f"{'server cpu us':>14}{'x echo':>8}"
    )
    echo_cpu = _server_cpu(echo)
    for name, r in results.items():
        cpu = _server_cpu(r)
        print(
            f"{name:<22}{r['rate']:>9.0f}{r['rate'] / echo['rate']:>8.2f}"
            f"{r['p50_ms']:>8.2f}{r['p50_ms'] / echo['p50_ms']:>8.2f}"
            f"{r['p99_ms']:>8.2f}{r['p99_ms'] / echo['p99_ms']:>8.2f}"
            f"{r['errors']:>7}{r['client_cpu']:>11.2f}"
            f"{cpu:>14.0f}{cpu / echo_cpu:>8.2f}"
        )
    paced = results["ExchangeToken @80%"]
    print(
        f"ExchangeToken @80%: offered {paced['offered_rate']:.0f}/s, "
        "open loop, latency from each call's scheduled start; "
        f"p90 {paced['p90_ms']:.1f} ms, max {paced['max_ms']:.1f} ms"
    )
    exchange = results["ExchangeToken"]["server_cpu_us"]
    print(
        "ExchangeToken server cpu us per call by process: "
        + ", ".join(f"{name} {us:.0f}" for name, us in sorted(exchange.items()))
    )


def _server_cpu(result: dict[str, Any]) -> float:
    """Server CPU per call over the processes that did the work."""
    return sum(result.get("server_cpu_us", {}).values()) or float("nan")


def main(mesh: BenchMesh) -> dict[str, dict[str, Any]]:
    """Measures, prints the table and returns the figures for the summary."""
    results = measure(mesh)
    print_table(results)
    return results
