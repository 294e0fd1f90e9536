"""OAuth 2.0 Token Exchange (RFC 8693) on the gRPC and HTTP surfaces alike.

:meth:`TokenExchanger.exchange` runs the flow of DESIGN.md: check the
request, authenticate the subject (and actor) token, resolve the targets,
ask the Policy service for each, then ask the ITS to issue. Nothing is
issued unless every step passes, and every outcome is audited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import struct_pb2

from services.sts.foreign_keys import ForeignKeys
from services.sts.subject import Principal, authenticate
from wif.audit import AuditLog
from wif.errors import (
    AccessDenied,
    InternalError,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    UnsupportedTokenType,
    WifError,
)
from wif.grpc_errors import error_from_rpc
from wif.telemetry import tracer
from wif.trust.config import TrustConfig
from wif.trust.follower import TrustFollower
from wif.trust.model import Audience
from wif.v1 import its_pb2, its_pb2_grpc, policy_pb2, policy_pb2_grpc

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"

#: Token types a subject or actor token may have: all of them are JWTs here.
ACCEPTED_TOKEN_TYPES = (TYPE_JWT, TYPE_ID_TOKEN, TYPE_ACCESS_TOKEN)
#: Token types the STS can issue; the issued token is always a JWT.
ISSUABLE_TOKEN_TYPES = (TYPE_JWT, TYPE_ACCESS_TOKEN)

MAX_TARGETS = 8
MAX_SCOPES = 32
CALL_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class ExchangeRequest:
    """The RFC 8693 section 2.1 parameters, whichever surface they came from."""

    subject_token: str
    subject_token_type: str
    actor_token: str = ""
    actor_token_type: str = ""
    audience: Sequence[str] = ()
    resource: Sequence[str] = ()
    scope: Sequence[str] = ()
    requested_token_type: str = ""
    source_address: str = ""


@dataclass(frozen=True)
class ExchangeResult:
    """The RFC 8693 section 2.2.1 response."""

    access_token: str
    issued_token_type: str
    expires_in: int
    scope: tuple[str, ...]
    token_id: str
    token_type: str = "Bearer"


@dataclass
class _Grant:
    lifetime: int
    scopes: set[str] = field(default_factory=set)
    policy_ids: list[str] = field(default_factory=list)


def check_request(request: ExchangeRequest) -> None:
    """RFC 8693 section 2.1: required parameters and their combinations."""
    if not request.subject_token:
        raise InvalidRequest(
            "subject_token is required", reason="MISSING_SUBJECT_TOKEN"
        )
    if not request.subject_token_type:
        raise InvalidRequest(
            "subject_token_type is required", reason="MISSING_TOKEN_TYPE"
        )
    if request.subject_token_type not in ACCEPTED_TOKEN_TYPES:
        raise UnsupportedTokenType("subject_token_type is not supported")
    if bool(request.actor_token) != bool(request.actor_token_type):
        raise InvalidRequest(
            "actor_token and actor_token_type go together", reason="ACTOR_TOKEN_TYPE"
        )
    if request.actor_token and request.actor_token_type not in ACCEPTED_TOKEN_TYPES:
        raise UnsupportedTokenType("actor_token_type is not supported")
    if request.requested_token_type not in ("", *ISSUABLE_TOKEN_TYPES):
        raise InvalidRequest(
            "requested_token_type is not one this server issues",
            reason="UNSUPPORTED_REQUESTED_TYPE",
        )
    if len(request.audience) + len(request.resource) > MAX_TARGETS:
        raise InvalidRequest(
            f"at most {MAX_TARGETS} targets", reason="TOO_MANY_TARGETS"
        )
    if len(request.scope) > MAX_SCOPES:
        raise InvalidRequest(f"at most {MAX_SCOPES} scopes", reason="TOO_MANY_SCOPES")


def resolve_targets(request: ExchangeRequest, config: TrustConfig) -> list[Audience]:
    """The audiences named by ``audience`` and ``resource`` (RFC 8693, RFC 8707)."""
    targets: dict[str, Audience] = {}
    for name in request.audience:
        audience = config.audiences.get(name)
        if audience is None:
            raise InvalidTarget(
                "an audience is not known",
                reason="UNKNOWN_AUDIENCE",
                metadata={"audience": name[:200]},
            )
        targets[audience.id] = audience
    for uri in request.resource:
        audience = config.audience_for_resource(uri)
        if audience is None:
            raise InvalidTarget(
                "a resource is not known",
                reason="UNKNOWN_RESOURCE",
                metadata={"resource": uri[:200]},
            )
        targets[audience.id] = audience
    if not targets:
        raise InvalidRequest(
            "name the target with audience or resource", reason="MISSING_TARGET"
        )
    return list(targets.values())


def check_scopes(scopes: Sequence[str], targets: Sequence[Audience]) -> None:
    """Every scope asked for must be offered by a target; none is trimmed."""
    offered = {s for audience in targets for s in audience.scopes}
    unknown = sorted(set(scopes) - offered)
    if unknown:
        raise InvalidScope(
            "a scope is not offered by the target",
            reason="SCOPE_NOT_OFFERED",
            metadata={"scope": unknown[0][:200]},
        )


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def actor_claim(actor: Principal | None, subject: Principal) -> dict[str, Any] | None:
    """RFC 8693 section 4.1: the ``act`` claim naming the authenticated actor.

    A foreign subject token's own ``act`` claim is not carried over: its
    members are another issuer's names, which this mesh cannot vouch for.
    TODO(#4): nest the chain of a mesh-issued subject token and honour may_act.
    """
    if actor is None:
        return None
    return {"sub": actor.subject}


class TokenExchanger:
    """Runs token exchanges against the Policy service and the ITS."""

    def __init__(
        self,
        trust: TrustFollower,
        keys: ForeignKeys,
        policy: policy_pb2_grpc.PolicyServiceStub,
        its: its_pb2_grpc.IdentityTokenServiceStub,
        audit: AuditLog,
    ) -> None:
        self._trust = trust
        self._keys = keys
        self._policy = policy
        self._its = its
        self._audit = audit

    async def exchange(self, request: ExchangeRequest) -> ExchangeResult:
        """Exchanges the subject token; raises a ``WifError`` on any refusal.

        Every outcome is audited, an internal fault included, which reaches
        the caller as ``InternalError`` with no detail.
        """
        subject: Principal | None = None
        refusal: WifError
        try:
            check_request(request)
            config = self._trust.require()
            subject = await authenticate(request.subject_token, config, self._keys)
            actor = None
            if request.actor_token:
                actor = await authenticate(request.actor_token, config, self._keys)
            targets = resolve_targets(request, config)
            check_scopes(request.scope, targets)
            grant = await self._decide(subject, actor, targets, request)
            result = await self._issue(subject, actor, targets, grant, request)
        except WifError as error:
            refusal = error
        except Exception:
            log.exception("the exchange failed")
            refusal = InternalError("internal error", reason="INTERNAL")
        else:
            await self._audit_success(result, subject, targets, grant)
            return result
        await self._audit.record(
            "token.exchange",
            "refused",
            reason=refusal.reason,
            subject=subject.subject if subject else None,
            audiences=list(request.audience),
            resources=list(request.resource),
        )
        raise refusal

    async def _audit_success(
        self,
        result: ExchangeResult,
        subject: Principal,
        targets: Sequence[Audience],
        grant: _Grant,
    ) -> None:
        await self._audit.record(
            "token.exchange",
            "ok",
            token_id=result.token_id,
            subject=subject.subject,
            subject_token_id=subject.token_id,
            audiences=[t.id for t in targets],
            scopes=list(result.scope),
            policy_ids=grant.policy_ids,
        )

    async def _decide(
        self,
        subject: Principal,
        actor: Principal | None,
        targets: Sequence[Audience],
        request: ExchangeRequest,
    ) -> _Grant:
        context = {
            "source_address": request.source_address,
            "now": int(time.time()),
            "actor_chain": [actor.subject] if actor else [],
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
            calls = [
                self._policy.Decide(
                    policy_pb2.DecideRequest(
                        principal=principal,
                        action="exchange",
                        audience=target.id,
                        scopes=list(request.scope),
                        context=_struct(context),
                    ),
                    timeout=CALL_TIMEOUT_SECONDS,
                )
                for target in targets
            ]
            try:
                answers = await asyncio.gather(*calls)
            except grpc.aio.AioRpcError as exc:
                raise error_from_rpc(exc, "policy service") from exc
            grant = _Grant(lifetime=min(a.max_lifetime_seconds for a in answers))
            for target, answer in zip(targets, answers, strict=True):
                grant.policy_ids.extend(answer.policy_ids)
                if answer.decision != policy_pb2.DECISION_ALLOW:
                    span.set_attribute("wif.decision", "deny")
                    raise AccessDenied(
                        f"the policy does not allow an exchange for {target.id!r}",
                        metadata={
                            "audience": target.id,
                            "policyIds": ",".join(answer.policy_ids),
                        },
                    )
                grant.scopes.update(answer.granted_scopes)
            span.set_attribute("wif.decision", "allow")
        return grant

    async def _issue(
        self,
        subject: Principal,
        actor: Principal | None,
        targets: Sequence[Audience],
        grant: _Grant,
        request: ExchangeRequest,
    ) -> ExchangeResult:
        provider = self._trust.require().providers[subject.provider_id]
        not_after = (
            int(subject.claims["exp"]) if provider.bound_to_subject_expiry else 0
        )
        scopes = [s for s in request.scope if s in grant.scopes]
        act = actor_claim(actor, subject)
        issue = its_pb2.IssueTokenRequest(
            subject=subject.subject,
            audiences=[t.id for t in targets],
            scopes=scopes,
            lifetime_seconds=grant.lifetime,
            not_after=not_after,
            claims=_struct(dict(subject.attributes)),
            act=_struct(act) if act else None,
        )
        try:
            issued = await self._its.IssueToken(issue, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, "identity token service") from exc
        return ExchangeResult(
            access_token=issued.token,
            issued_token_type=request.requested_token_type or TYPE_JWT,
            expires_in=max(0, issued.expires_at - int(time.time())),
            scope=tuple(scopes),
            token_id=issued.token_id,
        )
