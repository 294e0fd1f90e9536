"""Summaries of the audit trail for a period: who got what, and what was refused."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

#: A workload refused at least this often, and more often than served, is flagged.
REFUSAL_ANOMALY_MIN = 5
#: A workload with more exchanges than this within one minute is flagged.
BURST_PER_MINUTE = 120


def read_records(
    paths: Iterable[Path], since: float, until: float
) -> Iterator[dict[str, Any]]:
    """Every complete record in ``paths`` whose time lies in ``[since, until)``."""
    for path in paths:
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and since <= record.get("time", 0) < until:
                yield record


def summarise(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Activity per workload and audience, refusals by reason, and anomalies."""
    issued: Counter[tuple[str, str]] = Counter()
    refused_by_reason: Counter[str] = Counter()
    refused_by_subject: Counter[str] = Counter()
    served_by_subject: Counter[str] = Counter()
    per_minute: defaultdict[tuple[str, int], int] = defaultdict(int)
    events: Counter[str] = Counter()
    for record in records:
        events[f"{record.get('event')}:{record.get('outcome')}"] += 1
        if record.get("event") != "token.exchange":
            continue
        subject = str(record.get("subject") or "unknown")
        if record.get("outcome") == "ok":
            served_by_subject[subject] += 1
            per_minute[(subject, int(record["time"] // 60))] += 1
            for audience in record.get("audiences") or []:
                issued[(subject, str(audience))] += 1
        else:
            refused_by_reason[str(record.get("reason"))] += 1
            refused_by_subject[subject] += 1
    return {
        "events": dict(sorted(events.items())),
        "issued": [
            {"workload": s, "audience": a, "tokens": n}
            for (s, a), n in sorted(issued.items())
        ],
        "refusals_by_reason": dict(refused_by_reason.most_common()),
        "anomalies": _anomalies(refused_by_subject, served_by_subject, per_minute),
    }


def _anomalies(
    refused: Counter[str],
    served: Counter[str],
    per_minute: dict[tuple[str, int], int],
) -> list[dict[str, Any]]:
    found = [
        {"workload": s, "kind": "mostly_refused", "refusals": n, "served": served[s]}
        for s, n in refused.items()
        if n >= REFUSAL_ANOMALY_MIN and n > served[s]
    ]
    found += [
        {"workload": s, "kind": "burst", "minute": minute * 60, "exchanges": n}
        for (s, minute), n in per_minute.items()
        if n > BURST_PER_MINUTE
    ]
    return found


def as_text(summary: dict[str, Any]) -> str:
    """The summary for a person to read."""
    lines = ["Tokens issued (workload -> audience: count):"]
    lines += [
        f"  {i['workload']} -> {i['audience']}: {i['tokens']}"
        for i in summary["issued"]
    ]
    lines.append("Refusals by reason:")
    lines += [f"  {r}: {n}" for r, n in summary["refusals_by_reason"].items()]
    lines.append("Anomalies:")
    lines += [f"  {a['kind']}: {a['workload']}" for a in summary["anomalies"]] or [
        "  none"
    ]
    return "\n".join(lines)
