"""Who may call which RPC: caller authorization by mesh identity.

With mTLS on, a caller's identity is the SPIFFE ID in the URI SAN of the
certificate it presented. :data:`METHOD_ROLES` says which roles may call
each RPC; :class:`Callers` says which SPIFFE IDs hold each role (from
settings, by default ``spiffe://<trust domain>/wif/<role>``);
:class:`CallerAuthorizer` is the server interceptor that refuses everyone
else with PERMISSION_DENIED, reason CALLER_NOT_ALLOWED, and an ``rpc.refused``
audit record. An RPC that no rule names is refused: a new RPC is closed until
someone decides who may call it.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from wif import spiffe
from wif.errors import CallerNotAllowed
from wif.grpc_errors import abort_with_error

log = logging.getLogger(__name__)

#: The audit event of a refused call.
REFUSED_EVENT = "rpc.refused"


class Role(enum.Enum):
    """A kind of caller; :class:`Callers` maps each to SPIFFE IDs."""

    ANYONE = "anyone"
    STS = "sts"
    ENFORCER = "enforcer"
    OPERATOR = "operator"


_ANYONE = frozenset({Role.ANYONE})

#: Full method name (or ``/<service>/*``) to the roles that may call it.
METHOD_ROLES: Mapping[str, frozenset[Role]] = {
    "/wif.v1.IdentityTokenService/IssueToken": frozenset({Role.STS}),
    "/wif.v1.IdentityTokenService/GetJwks": _ANYONE,
    "/wif.v1.KeyAdminService/*": frozenset({Role.OPERATOR}),
    "/wif.v1.PolicyService/Decide": frozenset({Role.STS, Role.ENFORCER}),
    "/wif.v1.PolicyService/DecideBatch": frozenset({Role.STS, Role.ENFORCER}),
    "/wif.v1.PolicyService/GetShadowReport": frozenset({Role.OPERATOR}),
    "/wif.v1.PolicyService/GetAccessReport": frozenset({Role.OPERATOR}),
    "/envoy.service.auth.v3.Authorization/Check": frozenset({Role.ENFORCER}),
    # Workloads and relying services call the STS with tokens, not mesh
    # certificates, and the STS asks for none: gRPC cannot ask for a client
    # certificate without requiring one, so an STS RPC for operators only
    # would be refused to everyone.
    "/wif.v1.SecurityTokenService/ExchangeToken": _ANYONE,
    "/wif.v1.SecurityTokenService/ValidateToken": _ANYONE,
    "/wif.v1.SecurityTokenService/ValidateTokens": _ANYONE,
    "/wif.v1.SecurityTokenService/ExplainExchange": _ANYONE,
    "/grpc.health.v1.Health/*": _ANYONE,
    "/grpc.reflection.v1alpha.ServerReflection/*": _ANYONE,
    "/grpc.reflection.v1.ServerReflection/*": _ANYONE,
}


def roles_for(method: str) -> frozenset[Role]:
    """The roles that may call ``method``; none when no rule names it."""
    if method in METHOD_ROLES:
        return METHOD_ROLES[method]
    service = method.rpartition("/")[0]
    return METHOD_ROLES.get(f"{service}/*", frozenset())


class CallerSettings(Protocol):
    """The settings that name the callers of each role."""

    @property
    def sts_ids(self) -> tuple[str, ...]: ...
    @property
    def enforcer_ids(self) -> tuple[str, ...]: ...
    @property
    def operator_ids(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Callers:
    """The SPIFFE IDs that hold each role."""

    ids: Mapping[Role, frozenset[str]]

    @classmethod
    def from_settings(cls, settings: CallerSettings, trust_domain: str) -> Callers:
        """IDs from the settings; a role left unset gets its default ID."""

        def ids(given: tuple[str, ...], role: Role) -> frozenset[str]:
            return frozenset(
                given or (spiffe.make_id(trust_domain, f"wif/{role.value}"),)
            )

        return cls(
            {
                Role.STS: ids(settings.sts_ids, Role.STS),
                Role.ENFORCER: ids(settings.enforcer_ids, Role.ENFORCER),
                Role.OPERATOR: ids(settings.operator_ids, Role.OPERATOR),
            }
        )

    def allows(self, method: str, caller: str | None) -> bool:
        """Whether ``caller`` (a SPIFFE ID, or None without one) may call ``method``."""
        roles = roles_for(method)
        if Role.ANYONE in roles:
            return True
        return caller is not None and any(
            caller in self.ids.get(role, ()) for role in roles
        )


def caller_id(context: grpc.aio.ServicerContext) -> str | None:
    """The SPIFFE ID of the peer's certificate, or None without one.

    gRPC sets ``peer_spiffe_id`` only for a verified certificate whose one
    URI SAN is a ``spiffe://`` URI, as the X.509-SVID format requires.
    """
    values = context.auth_context().get("peer_spiffe_id") or []
    return values[0].decode("utf-8", "replace") if len(values) == 1 else None


class RefusalAudit(Protocol):
    """Where refused calls are recorded (an :class:`wif.audit.AuditLog`)."""

    async def record(self, event: str, outcome: str, **fields: Any) -> None: ...


Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]


class CallerAuthorizer(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses a call whose caller may not use the RPC, before the servicer runs.

    A gRPC server interceptor sees the method name but not the peer, so the
    check wraps the handler and runs with the call's context.
    """

    def __init__(self, callers: Callers, audit: RefusalAudit | None) -> None:
        self._callers = callers
        self._audit = audit

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or Role.ANYONE in roles_for(method):
            return handler
        return _guarded(handler, lambda context: self._check(method, context))

    async def _check(self, method: str, context: grpc.aio.ServicerContext) -> None:
        caller = caller_id(context)
        if self._callers.allows(method, caller):
            return
        error = CallerNotAllowed(
            f"the caller may not call {method}",
            metadata={"method": method, "caller": caller or ""},
        )
        if self._audit is not None:
            await self._audit.record(
                REFUSED_EVENT,
                "denied",
                method=method,
                caller=caller,
                peer=context.peer(),
                reason=error.reason,
            )
        await abort_with_error(context, method.rpartition("/")[2], error)


def _guarded(
    handler: Any, check: Callable[[grpc.aio.ServicerContext], Awaitable[None]]
) -> Any:
    """``handler`` with ``check`` run before its behaviour, whatever its kind."""

    def call(behaviour: Behaviour) -> Behaviour:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            return await behaviour(request, context)

        return guarded

    def stream(behaviour: Behaviour) -> Behaviour:
        async def guarded(
            request: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            await check(context)
            result = behaviour(request, context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            else:
                await result

        return guarded

    wrappers = {
        "unary_unary": call,
        "stream_unary": call,
        "unary_stream": stream,
        "stream_stream": stream,
    }
    replaced = {
        kind: wrap(getattr(handler, kind))
        for kind, wrap in wrappers.items()
        if getattr(handler, kind) is not None
    }
    return handler._replace(**replaced)
