"""Tests for the audit record and metric count of each decision."""

from __future__ import annotations

import json
from pathlib import Path

from services.policy.engine import DecisionInput, DecisionResult
from services.policy.servicer import audit_decision
from wif.audit import AuditLog
from wif.metrics import DECISIONS


def _question(action: str) -> DecisionInput:
    return DecisionInput(
        subject="spiffe://acme.example/payments-ci/acme-corp/payments",
        pool_id="payments-ci",
        provider_id="ci",
        attributes={},
        action=action,
        audience="payments-api",
        scopes=(),
        context={},
    )


async def test_a_made_up_action_is_counted_as_unknown_but_audited_as_asked(
    tmp_path: Path,
) -> None:
    audit = AuditLog("policy", str(tmp_path / "audit.jsonl"))
    refused = DecisionResult(False, (), ("unknown action 'x-1234'",))
    before = DECISIONS.snapshot()

    await audit_decision(audit, _question("x-1234"), refused)
    await audit_decision(audit, _question("exchange"), refused)

    after = DECISIONS.snapshot()
    grown = {key for key in after if after[key] != before.get(key, 0)}
    assert grown == {("unknown", "deny"), ("exchange", "deny")}
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").open()]
    assert [r["action"] for r in records] == ["x-1234", "exchange"]
