"""The PolicyService gRPC servicer: decode, decide, audit, encode."""

from __future__ import annotations

import grpc
from google.protobuf import json_format

from services.policy.engine import DecisionInput, PolicyEngine
from wif.audit import AuditLog
from wif.errors import InvalidRequest
from wif.grpc_errors import handle_errors
from wif.telemetry import tracer
from wif.v1 import policy_pb2, policy_pb2_grpc

_tracer = tracer(__name__)


def _decision_input(request: policy_pb2.DecideRequest) -> DecisionInput:
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


class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    """Answers Decide with the engine's decision, recorded in the audit log."""

    def __init__(self, engine: PolicyEngine, audit: AuditLog) -> None:
        self._engine = engine
        self._audit = audit

    @handle_errors
    async def Decide(
        self, request: policy_pb2.DecideRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.DecideResponse:
        question = _decision_input(request)
        with _tracer.start_as_current_span("policy.evaluate") as span:
            result = self._engine.decide(question)
            span.set_attribute("wif.decision", "allow" if result.allowed else "deny")
            span.set_attribute("wif.audience", question.audience)
        await self._audit.record(
            "policy.decision",
            "allow" if result.allowed else "deny",
            subject=question.subject,
            action=question.action,
            audience=question.audience,
            policy_ids=list(result.policy_ids),
            errors=list(result.errors),
            config_revision=result.config_revision,
        )
        decision = (
            policy_pb2.DECISION_ALLOW if result.allowed else policy_pb2.DECISION_DENY
        )
        return policy_pb2.DecideResponse(
            decision=decision,
            policy_ids=result.policy_ids,
            errors=result.errors,
            granted_scopes=result.granted_scopes,
            max_lifetime_seconds=result.max_lifetime_seconds,
            config_revision=result.config_revision,
        )
