"""OAuth 2.0 Token Exchange (RFC 8693) on the gRPC and HTTP surfaces alike.

:meth:`TokenExchanger.exchange` runs the flow of DESIGN.md: check the
request, authenticate the subject (and actor) token, check delegation,
resolve the targets and scopes, ask the Policy service for each target,
consume a one-time token, then ask the ITS to issue. Nothing is issued
unless every step passes, and every outcome is audited.
:meth:`TokenExchanger.explain` runs the same steps without issuing or
consuming anything and reports each one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import struct_pb2

from services.sts.checks import CheckLog, CheckResult, safe_metadata
from services.sts.delegation import actor_claim, check_delegation
from services.sts.peers import Peer
from services.sts.replay import ReplayGuard
from services.sts.request import (
    ACCEPTED_TOKEN_TYPES,
    GRANT_TYPE,
    ISSUABLE_TOKEN_TYPES,
    ExchangeRequest,
    ExchangeResult,
    check_granted,
    check_request,
    check_scopes,
    issued_token_type,
    resolve_targets,
    token_type_for,
)
from services.sts.subject import (
    TYPE_ACCESS_TOKEN,
    TYPE_ID_TOKEN,
    TYPE_JWT,
    Authenticator,
    Principal,
)
from wif.audit import AuditLog
from wif.errors import AccessDenied, InternalError, WifError
from wif.telemetry import tracer
from wif.trust.config import TrustConfig
from wif.trust.follower import TrustFollower
from wif.trust.model import Audience
from wif.v1 import its_pb2, its_pb2_grpc, policy_pb2, policy_pb2_grpc

__all__ = [
    "ACCEPTED_TOKEN_TYPES",
    "GRANT_TYPE",
    "ISSUABLE_TOKEN_TYPES",
    "TYPE_ACCESS_TOKEN",
    "TYPE_ID_TOKEN",
    "TYPE_JWT",
    "ExchangeRequest",
    "ExchangeResult",
    "Explanation",
    "TokenExchanger",
    "actor_claim",
    "check_request",
    "check_scopes",
    "resolve_targets",
]

log = logging.getLogger(__name__)
_tracer = tracer(__name__)


@dataclass
class _Grant:
    lifetime: int
    scopes: set[str] = field(default_factory=set)
    policy_ids: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    """Everything decided before issuing: who, for what, and with what."""

    subject: Principal
    actor: Principal | None
    chain: list[str]
    targets: list[Audience]
    scopes: tuple[str, ...]
    grant: _Grant


@dataclass(frozen=True)
class Explanation:
    """What an exchange would do, check by check."""

    checks: list[CheckResult]
    refusal: WifError | None
    subject: str = ""
    audiences: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()


def _denial(target: Audience, answer: policy_pb2.DecideResponse) -> AccessDenied:
    """The refusal for a denied target; a quarantine is the caller's own to know."""
    metadata = {"audience": target.id, "policyIds": ",".join(answer.policy_ids)}
    quarantine = next((e for e in answer.errors if e.startswith("quarantined")), None)
    if quarantine is not None:
        return AccessDenied(
            f"this workload is {quarantine}",
            reason="PRINCIPAL_QUARANTINED",
            metadata=metadata,
        )
    return AccessDenied(
        f"the policy does not allow an exchange for {target.id!r}", metadata=metadata
    )


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


class TokenExchanger:
    """Runs token exchanges against the Policy service and the ITS."""

    def __init__(
        self,
        trust: TrustFollower,
        authenticator: Authenticator,
        policy: policy_pb2_grpc.PolicyServiceStub,
        its: its_pb2_grpc.IdentityTokenServiceStub,
        audit: AuditLog,
        replay: ReplayGuard,
        *,
        policy_peer: Peer | None = None,
        its_peer: Peer | None = None,
    ) -> None:
        self._trust = trust
        self._authenticator = authenticator
        self._policy = policy
        self._its = its
        self._audit = audit
        self._replay = replay
        self.policy_peer = policy_peer or Peer("policy service")
        self.its_peer = its_peer or Peer("identity token service")

    async def exchange(self, request: ExchangeRequest) -> ExchangeResult:
        """Exchanges the subject token; raises a ``WifError`` on any refusal.

        Every outcome is audited, an internal fault included, which reaches
        the caller as ``InternalError`` with no detail.
        """
        checks = CheckLog()
        try:
            plan = await self._plan(request, checks, dry_run=False)
            result = await self._issue(plan, request)
        except WifError as error:
            refusal = error
        except Exception:
            log.exception("the exchange failed")
            refusal = InternalError("internal error", reason="INTERNAL")
        else:
            await self._audit_success(result, plan)
            return result
        refusal.metadata = safe_metadata(refusal.metadata)
        await self._audit.record(
            "token.exchange",
            "refused",
            reason=refusal.reason,
            check=_failed_check(checks),
            subject=checks.subject,
            audiences=list(request.audience),
            resources=list(request.resource),
        )
        raise refusal

    async def explain(self, request: ExchangeRequest) -> Explanation:
        """Runs every check of :meth:`exchange` without issuing or consuming.

        Internal faults still raise ``InternalError``.
        """
        checks = CheckLog()
        try:
            plan = await self._plan(request, checks, dry_run=True)
        except WifError as error:
            error.metadata = safe_metadata(error.metadata)
            explanation = Explanation(checks.complete(), error)
        except Exception as exc:
            log.exception("the explanation failed")
            raise InternalError("internal error", reason="INTERNAL") from exc
        else:
            explanation = Explanation(
                checks.complete(),
                None,
                subject=plan.subject.subject,
                audiences=tuple(t.id for t in plan.targets),
                scopes=plan.scopes,
            )
        refusal = explanation.refusal
        await self._audit.record(
            "token.explain",
            "would_issue" if refusal is None else "would_refuse",
            reason=refusal.reason if refusal else None,
            check=_failed_check(checks),
        )
        return explanation

    async def _plan(
        self, request: ExchangeRequest, checks: CheckLog, *, dry_run: bool
    ) -> _Plan:
        with checks.step("request"):
            check_request(request)
            config = self._trust.require()

        subject = await self._authenticator.authenticate(
            request.subject_token, request.subject_token_type, config, checks
        )
        checks.subject = subject.subject
        actor = None
        if request.actor_token:
            actor = await self._authenticator.authenticate(
                request.actor_token,
                request.actor_token_type,
                config,
                checks.child("actor"),
                actor=True,
            )

        with checks.step("delegation"):
            chain = check_delegation(subject, actor)

        with checks.step("target"):
            targets = resolve_targets(request, config)

        trim = request.allow_scope_trimming
        with checks.step("scope"):
            scopes = check_scopes(request.scope, targets, trim=trim)

        with checks.step("policy"):
            grant = await self._decide(subject, chain, targets, scopes, request)

        with checks.step("downscope"):
            scopes = check_granted(scopes, grant.scopes, trim=trim)

        await self._check_replay(subject, config, checks, dry_run=dry_run)
        return _Plan(subject, actor, chain, targets, scopes, grant)

    async def _check_replay(
        self,
        subject: Principal,
        config: TrustConfig,
        checks: CheckLog,
        *,
        dry_run: bool,
    ) -> None:
        provider = config.providers.get(subject.provider_id)
        if provider is None or not provider.one_time_use:
            checks.skip("replay", "the provider allows reuse of its tokens")
            return
        with checks.step("replay"):
            if dry_run:
                await self._replay.check_unused(provider, subject)
            else:
                await self._replay.consume(provider, subject)

    async def _audit_success(self, result: ExchangeResult, plan: _Plan) -> None:
        await self._audit.record(
            "token.exchange",
            "ok",
            token_id=result.token_id,
            subject=plan.subject.subject,
            subject_token_id=plan.subject.token_id,
            actor_chain=plan.chain,
            audiences=[t.id for t in plan.targets],
            scopes=list(result.scope),
            policy_ids=plan.grant.policy_ids,
        )

    async def _decide(
        self,
        subject: Principal,
        chain: list[str],
        targets: Sequence[Audience],
        scopes: Sequence[str],
        request: ExchangeRequest,
    ) -> _Grant:
        context = {
            "source_address": request.source_address,
            "now": int(time.time()),
            "actor_chain": chain,
            "subject_token_age_seconds": int(
                time.time() - float(subject.claims.get("iat", 0))
            ),
        }
        principal = policy_pb2.Principal(
            subject=subject.subject,
            pool_id=subject.pool_id,
            provider_id=subject.provider_id,
            attributes=_struct(dict(subject.attributes)),
        )
        with _tracer.start_as_current_span("sts.decision") as span:
            questions = [
                policy_pb2.DecideRequest(
                    principal=principal,
                    action="exchange",
                    audience=target.id,
                    scopes=list(scopes),
                    context=_struct(context),
                )
                for target in targets
            ]
            if len(questions) == 1:  # the usual case: no task to gather
                answers = [await self._ask(questions[0])]
            else:
                answers = list(await asyncio.gather(*map(self._ask, questions)))
            grant = _Grant(lifetime=min(a.max_lifetime_seconds for a in answers))
            for target, answer in zip(targets, answers, strict=True):
                grant.policy_ids.extend(answer.policy_ids)
                if answer.decision != policy_pb2.DECISION_ALLOW:
                    span.set_attribute("wif.decision", "deny")
                    raise _denial(target, answer)
                grant.scopes.update(answer.granted_scopes)
            span.set_attribute("wif.decision", "allow")
        return grant

    async def _ask(self, question: policy_pb2.DecideRequest) -> Any:
        return await self.policy_peer.call(
            lambda call: self._policy.Decide(
                question,
                timeout=call.timeout,
                wait_for_ready=call.wait_for_ready,
                metadata=call.metadata,
            )
        )

    async def _issue(self, plan: _Plan, request: ExchangeRequest) -> ExchangeResult:
        subject = plan.subject
        provider = self._trust.require().providers.get(subject.provider_id)
        bound = subject.mesh_issued or (
            provider is not None and provider.bound_to_subject_expiry
        )
        not_after = int(subject.claims["exp"]) if bound else 0
        act = actor_claim(plan.actor, subject)
        issue = its_pb2.IssueTokenRequest(
            subject=subject.subject,
            audiences=[t.id for t in plan.targets],
            scopes=list(plan.scopes),
            lifetime_seconds=plan.grant.lifetime,
            not_after=not_after,
            claims=_struct(dict(subject.attributes)),
            act=_struct(act) if act else None,
        )
        issued = await self.its_peer.call(
            lambda call: self._its.IssueToken(
                issue,
                timeout=call.timeout,
                wait_for_ready=call.wait_for_ready,
                metadata=call.metadata,
            )
        )
        issued_type = issued_token_type(request.requested_token_type)
        return ExchangeResult(
            access_token=issued.token,
            issued_token_type=issued_type,
            expires_in=max(0, issued.expires_at - int(time.time())),
            scope=plan.scopes,
            token_id=issued.token_id,
            token_type=token_type_for(issued_type),
        )


def _failed_check(checks: CheckLog) -> str | None:
    failed = [r.name for r in checks.results if r.outcome.value == "failed"]
    return failed[0] if failed else None
