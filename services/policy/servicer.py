"""The PolicyService gRPC servicer: decode, decide, audit, encode."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf import json_format

from services.policy.decider import Decider
from services.policy.engine import DecisionInput, DecisionResult
from services.policy.shadow import ShadowReport
from services.policy.usage import AccessReport, Permission, build_access_report
from wif.audit import AuditLog
from wif.errors import InvalidRequest
from wif.grpc_errors import handle_errors
from wif.metrics import DECISIONS
from wif.telemetry import tracer
from wif.trust.cedar import ACTIONS
from wif.v1 import policy_pb2, policy_pb2_grpc

_tracer = tracer(__name__)

#: The most questions one DecideBatch call may ask.
MAX_BATCH = 100

#: Principals the access report evaluates unless the caller asks for fewer.
ACCESS_REPORT_PRINCIPALS = 200


def decision_input(request: policy_pb2.DecideRequest) -> DecisionInput:
    """The engine's question from a request; raises ``InvalidRequest``."""
    principal = request.principal
    if not principal.subject or not principal.pool_id or not request.audience:
        raise InvalidRequest(
            "principal.subject, principal.pool_id and audience are required",
            reason="MISSING_FIELD",
        )
    return DecisionInput(
        subject=principal.subject,
        pool_id=principal.pool_id,
        provider_id=principal.provider_id,
        attributes=json_format.MessageToDict(principal.attributes),
        action=request.action or "exchange",
        audience=request.audience,
        scopes=list(request.scopes),
        context=json_format.MessageToDict(request.context),
    )


def _decision(allowed: bool) -> policy_pb2.Decision.ValueType:
    return policy_pb2.DECISION_ALLOW if allowed else policy_pb2.DECISION_DENY


def decide_response(result: DecisionResult) -> policy_pb2.DecideResponse:
    """The wire form of a decision."""
    return policy_pb2.DecideResponse(
        decision=_decision(result.allowed),
        policy_ids=result.policy_ids,
        errors=result.errors,
        granted_scopes=result.granted_scopes,
        max_lifetime_seconds=result.max_lifetime_seconds,
        config_revision=result.config_revision,
        risk_score=result.risk.score,
        risk_signals=result.risk.signals,
    )


async def audit_decision(
    audit: AuditLog, question: DecisionInput, result: DecisionResult
) -> None:
    """One audit record and one metric count per decision."""
    outcome = "allow" if result.allowed else "deny"
    # The label takes the schema's actions only: a caller's made-up action
    # (refused as unknown) must not mint a new metric series.
    action = question.action if question.action in ACTIONS else "unknown"
    DECISIONS.add(1, {"action": action, "decision": outcome})
    await audit.record(
        "policy.decision",
        outcome,
        subject=question.subject,
        action=question.action,
        audience=question.audience,
        scopes=list(question.scopes),
        policy_ids=list(result.policy_ids),
        errors=list(result.errors),
        config_revision=result.config_revision,
        risk_score=result.risk.score,
        risk_signals=list(result.risk.signals),
    )


def _permissions(items: tuple[Permission, ...]) -> list[policy_pb2.Permission]:
    return [
        policy_pb2.Permission(action=p.action, audience=p.audience, scope=p.scope)
        for p in items
    ]


def shadow_response(report: ShadowReport) -> policy_pb2.GetShadowReportResponse:
    """The wire form of the shadow report."""
    return policy_pb2.GetShadowReportResponse(
        shadow_configured=bool(report.fingerprint),
        shadow_policy_ids=report.shadow_policy_ids,
        since=int(report.since),
        evaluated=report.evaluated,
        differing=report.differing,
        dropped=report.dropped,
        differences=[
            policy_pb2.ShadowDifference(
                time=int(d.time),
                subject=d.subject,
                action=d.action,
                audience=d.audience,
                scopes=d.scopes,
                config_revision=d.config_revision,
                active_decision=_decision(d.active_allowed),
                active_policy_ids=d.active_policy_ids,
                shadow_decision=_decision(d.shadow_allowed),
                shadow_policy_ids=d.shadow_policy_ids,
            )
            for d in report.differences
        ],
    )


def access_response(report: AccessReport) -> policy_pb2.GetAccessReportResponse:
    """The wire form of the least-privilege report."""
    return policy_pb2.GetAccessReportResponse(
        config_revision=report.config_revision,
        since=int(report.since),
        principals=[
            policy_pb2.PrincipalReach(
                subject=p.subject,
                pool_id=p.pool_id,
                registered=p.registered,
                permissions=_permissions(p.permissions),
            )
            for p in report.principals
        ],
        grants=[
            policy_pb2.GrantUse(
                policy_id=g.policy_id,
                decisions=g.decisions,
                last_used=int(g.last_used),
                granted=_permissions(g.granted),
                used=_permissions(g.used),
                unused=_permissions(g.unused),
                principals_granted=g.principals_granted,
                principals_used=g.principals_used,
            )
            for g in report.grants
        ],
        principals_truncated=report.principals_truncated,
    )


class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    """Answers decisions and reports; every decision goes to the audit log."""

    def __init__(self, decider: Decider, audit: AuditLog) -> None:
        self._decider = decider
        self._audit = audit

    @handle_errors
    async def Decide(
        self, request: policy_pb2.DecideRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.DecideResponse:
        question = decision_input(request)
        with _tracer.start_as_current_span("policy.evaluate") as span:
            result = self._decider.decide(question)
            span.set_attribute("wif.decision", "allow" if result.allowed else "deny")
            span.set_attribute("wif.audience", question.audience)
        await audit_decision(self._audit, question, result)
        await self._decider.enforce(question, result)
        return decide_response(result)

    @handle_errors
    async def DecideBatch(
        self,
        request: policy_pb2.DecideBatchRequest,
        context: grpc.aio.ServicerContext,
    ) -> policy_pb2.DecideBatchResponse:
        if len(request.requests) > MAX_BATCH:
            raise InvalidRequest(
                f"at most {MAX_BATCH} requests in a batch", reason="BATCH_TOO_LARGE"
            )
        questions = [decision_input(r) for r in request.requests]
        with _tracer.start_as_current_span("policy.evaluate") as span:
            results = self._decider.decide_all(questions)
            span.set_attribute("wif.batch_size", len(questions))
        for question, result in zip(questions, results, strict=True):
            await audit_decision(self._audit, question, result)
            await self._decider.enforce(question, result)
        revision = self._decider.engine.revision
        return policy_pb2.DecideBatchResponse(
            responses=[decide_response(r) for r in results],
            config_revision=results[0].config_revision if results else revision,
        )

    @handle_errors
    async def GetShadowReport(
        self,
        request: policy_pb2.GetShadowReportRequest,
        context: grpc.aio.ServicerContext,
    ) -> policy_pb2.GetShadowReportResponse:
        return shadow_response(self._decider.shadow.report())

    @handle_errors
    async def GetAccessReport(
        self,
        request: policy_pb2.GetAccessReportRequest,
        context: grpc.aio.ServicerContext,
    ) -> policy_pb2.GetAccessReportResponse:
        limit = request.max_principals or ACCESS_REPORT_PRINCIPALS
        if not 0 < limit <= 10 * ACCESS_REPORT_PRINCIPALS:
            raise InvalidRequest(
                f"max_principals must be 1 to {10 * ACCESS_REPORT_PRINCIPALS}",
                reason="INVALID_LIMIT",
            )
        engine = self._decider.engine
        usage = self._decider.usage.snapshot()
        report = await asyncio.to_thread(
            build_access_report, engine, engine.version, usage, limit
        )
        return access_response(report)
