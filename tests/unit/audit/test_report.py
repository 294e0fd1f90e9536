"""wif.audit.report summarises activity, refusals and anomalies."""

from __future__ import annotations

from typing import Any

from wif.audit.report import REFUSAL_ANOMALY_MIN, as_text, summarise


def _exchange(subject: str, outcome: str, **fields: Any) -> dict[str, Any]:
    return {
        "time": 1000.0,
        "event": "token.exchange",
        "outcome": outcome,
        "subject": subject,
        **fields,
    }


def test_report_counts_tokens_per_workload_and_audience() -> None:
    records = [
        _exchange("spiffe://a/x", "ok", audiences=["payments-api"]),
        _exchange("spiffe://a/x", "ok", audiences=["payments-api"]),
        _exchange("spiffe://a/y", "ok", audiences=["search-api"]),
    ]

    summary = summarise(records)

    assert summary["issued"] == [
        {"workload": "spiffe://a/x", "audience": "payments-api", "tokens": 2},
        {"workload": "spiffe://a/y", "audience": "search-api", "tokens": 1},
    ]


def test_report_counts_refusals_by_reason_and_flags_mostly_refused_workloads() -> None:
    records = [
        _exchange("spiffe://a/z", "refused", reason="POLICY_DENIED")
        for _ in range(REFUSAL_ANOMALY_MIN)
    ]
    records.append(_exchange(None, "refused", reason="TOKEN_EXPIRED"))  # type: ignore[arg-type]

    summary = summarise(records)

    assert summary["refusals_by_reason"] == {"POLICY_DENIED": 5, "TOKEN_EXPIRED": 1}
    assert summary["anomalies"] == [
        {
            "workload": "spiffe://a/z",
            "kind": "mostly_refused",
            "refusals": 5,
            "served": 0,
        }
    ]
    assert "POLICY_DENIED: 5" in as_text(summary)


def test_report_flags_a_burst_of_exchanges_in_one_minute() -> None:
    records = [_exchange("spiffe://a/b", "ok", audiences=["x"]) for _ in range(121)]

    kinds = [a["kind"] for a in summarise(records)["anomalies"]]

    assert kinds == ["burst"]
