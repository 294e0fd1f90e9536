"""The issue's targets beside the figures measured in this run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One target: what it asks, what was measured, and whether it holds."""

    name: str
    wanted: str
    measured: str
    met: bool


def print_targets(targets: list[Target]) -> None:
    """One row per target."""
    print(f"\n{'target':<50}{'wanted':>14}{'measured':>18}  result")
    for t in targets:
        print(
            f"{t.name:<50}{t.wanted:>14}{t.measured:>18}  "
            + ("met" if t.met else "MISSED")
        )
