"""Policy decisions with 100 and 100,000 registered workloads.

Prints, for each size, the time to validate the configuration and to load
it into the engine, and the cost of one decision: the raw Cedar call on
prepared entities (the ceiling), the engine (which adds the principal to
the entities), the engine with a shadow set beside it, and the whole
decision path with risk scoring and usage accounting.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import cedarpy

from services.policy.decider import Decider
from services.policy.engine import DecisionInput, PolicyEngine, request_context
from services.policy.risk import Risk
from wif.trust.config import build_config, from_etcd_items, to_etcd_items

SIZES = (100, 100_000)
UNITS = 10
ROUNDS = 2000
DOMAIN = "acme.example"


def per_op(func: Callable[[], object], rounds: int = ROUNDS) -> float:
    """Seconds per call, best of three runs."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            func()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


def timed(func: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = func()
    return result, time.perf_counter() - start


def raw_config(workloads: int, shadow: bool = False) -> dict[str, Any]:
    """An organisation of UNITS units, a team per hundred workloads."""
    teams = max(1, workloads // 100)
    pools = [{"id": "org"}] + [
        {"id": f"unit-{u}", "parent": "org"} for u in range(UNITS)
    ]
    pools += [{"id": f"team-{t}", "parent": f"unit-{t % UNITS}"} for t in range(teams)]
    audiences = [{"id": "shared", "scopes": ["read"]}] + [
        {"id": f"api-{u}", "parent": "shared", "scopes": ["read", "write"]}
        for u in range(UNITS)
    ]
    tiers = ("production", "staging")
    docs = [
        {
            "path": f"svc/{n}",
            "pool": f"team-{n % teams}",
            "attributes": {"workload_type": "pod", "environment_tier": tiers[n % 2]},
        }
        for n in range(workloads)
    ]
    policies = [
        {
            "id": f"unit-{u}-reaches-its-api",
            "cedar": f'permit (principal in Pool::"unit-{u}", action, '
            f'resource == Audience::"api-{u}");',
        }
        for u in range(UNITS)
    ]
    policies.append(
        {
            "id": "writes-from-production-only",
            "cedar": "forbid (principal, action, resource) when "
            '{ context.scopes.contains("write") && !(principal has environment_tier '
            '&& principal.environment_tier == "production") };',
        }
    )
    raw: dict[str, Any] = {
        "mesh": {"trust_domain": DOMAIN, "issuer": "https://wif.acme.example"},
        "pools": pools,
        "audiences": audiences,
        "workloads": docs,
        "policies": policies,
    }
    if shadow:
        raw["shadow_policies"] = policies[:-1]
    return raw


def questions(raw: dict[str, Any], count: int) -> list[DecisionInput]:
    rng = random.Random(7)
    chosen = rng.sample(raw["workloads"], min(count, len(raw["workloads"])))
    asked = []
    for n, doc in enumerate(chosen):
        team = int(doc["pool"].removeprefix("team-"))
        asked.append(
            DecisionInput(
                subject=f"spiffe://{DOMAIN}/{doc['pool']}/{doc['path']}",
                pool_id=doc["pool"],
                provider_id="k8s",
                attributes={"namespace": "payments"},
                action="exchange",
                audience=f"api-{(team + n % 2) % UNITS}",
                scopes=["read", "write"][: 1 + n % 2],
                context={"source_address": f"10.0.{n % 250}.7", "now": 1_800_000_000},
            )
        )
    return asked


def cycle(items: list[Any]) -> Callable[[], Any]:
    position = 0

    def next_item() -> Any:
        nonlocal position
        position = (position + 1) % len(items)
        return items[position]

    return next_item


def measure(workloads: int) -> list[tuple[str, float]]:
    raw = raw_config(workloads)
    config, validate_s = timed(lambda: build_config(raw))
    items = to_etcd_items(config)
    _, reload_s = timed(lambda: from_etcd_items(items, 1))
    engine = PolicyEngine()
    _, load_s = timed(lambda: engine.load(config))

    asked = questions(raw, 1000)
    version = engine.version
    assert version is not None
    prepared = []
    for q in asked[:200]:
        principal = {
            "uid": {"type": "Workload", "id": q.subject},
            "attrs": {"pool": q.pool_id, "provider": q.provider_id},
            "parents": [{"type": "Pool", "id": q.pool_id}],
            "tags": {},
        }
        base = version.base_entities(q.pool_id, q.audience)
        entities = base.with_added_json_str(json.dumps([principal]))
        request = {
            "principal": principal["uid"],
            "action": {"type": "Action", "id": q.action},
            "resource": {"type": "Audience", "id": q.audience},
            "context": request_context(q, Risk()),
        }
        prepared.append((request, entities))
    next_prepared = cycle(prepared)
    policy_set = config.compiled.policy_set

    def raw_cedar() -> None:
        request, entities = next_prepared()
        cedarpy.is_authorized(request, policy_set, entities)

    next_question = cycle(asked)
    shadow_engine = PolicyEngine()
    shadow_engine.load(build_config(raw_config(workloads, shadow=True)))
    decider = Decider(PolicyEngine(), clock=lambda: 1_800_000_000.0)
    decider.load(config)
    return [
        ("validate configuration ms", validate_s * 1e3),
        ("rebuild from etcd items ms", reload_s * 1e3),
        ("engine load ms", load_s * 1e3),
        ("raw cedar decision us", per_op(raw_cedar) * 1e6),
        ("engine decision us", per_op(lambda: engine.decide(next_question())) * 1e6),
        (
            "engine + shadow decision us",
            per_op(lambda: shadow_engine.decide(next_question())) * 1e6,
        ),
        ("full decision us", per_op(lambda: decider.decide(next_question())) * 1e6),
    ]


def main() -> None:
    results = {size: dict(measure(size)) for size in SIZES}
    names = list(results[SIZES[0]])
    header = "".join(f"{f'{s:,} workloads':>18}" for s in SIZES)
    print(f"\n{'policy':<30}{header}")
    for name in names:
        print(f"{name:<30}" + "".join(f"{results[s][name]:>18.1f}" for s in SIZES))
    for size in SIZES:
        ratio = (
            results[size]["full decision us"] / results[size]["raw cedar decision us"]
        )
        print(f"full decision / raw cedar at {size:,} workloads: {ratio:.2f}")


if __name__ == "__main__":
    main()
