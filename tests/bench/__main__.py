"""``make bench``: every benchmark, one table each, then the targets.

In-process figures come first (token work, policy and STS scale), then the
real mesh is started once for the RPC and propagation measurements.
"""

from __future__ import annotations

from typing import Any

from tests.bench import policy, propagation, rpc, scale, tokens
from tests.bench.harness import bench_mesh
from tests.bench.summary import Target, print_targets


def targets(
    token_ratios: dict[str, float],
    sts_scale: dict[int, dict[str, float]],
    calls: dict[str, dict[str, Any]],
    spread: dict[str, float],
) -> list[Target]:
    """The issue's targets against this run's figures."""
    echo = calls["echo (ceiling)"]["rate"]
    small, large = sorted(sts_scale)
    auth = "authenticate subject us"
    growth = sts_scale[large][auth] / sts_scale[small][auth]
    paced = calls["ExchangeToken @80%"]["p99_ms"]
    rows = [
        Target(
            f"{name} / echo",
            ">= 0.85",
            f"{calls[name]['rate'] / echo:.2f}",
            calls[name]["rate"] / echo >= 0.85,
        )
        for name in ("ValidateToken hit", "ValidateToken miss")
    ]
    exchange = calls["ExchangeToken"]["rate"] / echo
    rows += [
        Target("ExchangeToken / echo", ">= 0.33", f"{exchange:.2f}", exchange >= 1 / 3),
        Target(
            "ExchangeToken p99 at 80% load", "< 25 ms", f"{paced:.1f} ms", paced < 25
        ),
    ]
    for name in ("validate", "STS validator, cache off"):
        ratio = token_ratios[name]
        rows.append(
            Target(
                f"in-process {name} / raw verify",
                "<= 1.3",
                f"{ratio:.2f}",
                ratio <= 1.3,
            )
        )
    rows.append(
        Target(
            f"authenticate cost {large:,} / {small:,}",
            "~1.0 (flat)",
            f"{growth:.2f}",
            growth < 1.2,
        )
    )
    stalls = ("longest event loop stall ms", "reload 1 changed: stall ms")
    stalls += ("reload all changed: stall ms",)
    stall = max(sts_scale[large][name] for name in stalls)
    rows.append(
        Target(
            f"follower event loop stall, load and reloads at {large:,}",
            "< 100 ms",
            f"{stall:.1f} ms",
            stall < 100,
        )
    )
    for kind, ms in spread.items():
        rows.append(
            Target(
                f"{kind} propagation (median, slower)",
                "< 100 ms",
                f"{ms:.1f} ms",
                ms < 100,
            )
        )
    return rows


def main() -> None:
    token_ratios = tokens.main()
    policy.main()
    sts_scale = scale.main()
    with bench_mesh() as mesh:
        calls = rpc.main(mesh)
        spread = propagation.main(mesh)
    print_targets(targets(token_ratios, sts_scale, calls, spread))


if __name__ == "__main__":
    main()
