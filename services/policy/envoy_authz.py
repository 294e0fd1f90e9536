"""Envoy external authorization (``envoy.service.auth.v3.Authorization``).

An Envoy or Istio sidecar sends each HTTP request's attributes to
``Check``. The route's audience comes from the per-route context extension
``wif_audience`` when the route sets one, otherwise from the audience whose
resource URI has the request's host. The bearer token must be a valid mesh
token for that audience, neither it nor its subject revoked; the decision is
the Cedar action ``access`` by the token's subject on that audience, with
the method and path in the context. The answer is OK, with the subject for
the upstream, or a denial with an ``x-wif-reason`` header.

Answers are reused per token (by hash), audience, method and path for at
most ``ttl`` seconds and never past the token's expiry; any change to the
configuration, the mesh's keys, the quarantines or the revocations makes
every reused answer stale.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from services.policy.decider import Decider
from services.policy.engine import DecisionInput, DecisionResult
from services.policy.restrictions import Quarantines, Revocations
from services.policy.servicer import audit_decision
from wif import spiffe
from wif.audit import AuditLog
from wif.errors import InvalidToken
from wif.grpc_errors import handle_errors
from wif.keyring import KeyringFollower
from wif.mesh_tokens import MeshToken, verify_mesh_token
from wif.telemetry import tracer
from wif.trust.config import TrustConfig
from wif.trust.model import RESERVED_CLAIMS

_tracer = tracer(__name__)

#: The gRPC service this module implements.
SERVICE_NAME = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name

#: The per-route context extension that names the route's audience.
AUDIENCE_EXTENSION = "wif_audience"
#: The header that explains a denial to the client.
REASON_HEADER = "x-wif-reason"
#: Headers set on an allowed request for the upstream.
SUBJECT_HEADER = "x-wif-subject"
POLICY_IDS_HEADER = "x-wif-policy-ids"

_MAX_HEADER_TEXT = 200
_UNSAFE = re.compile(r"[^\x20-\x7e]")

#: A cache key: token hash, audience, method, path.
CacheKey = tuple[str, str, str, str]
#: What must be unchanged for a cached answer to stand.
Generation = tuple[int, ...]


@dataclass(frozen=True)
class _Entry:
    expires_at: float
    generation: Generation
    response: external_auth_pb2.CheckResponse


class DecisionCache:
    """Answers per token and route; bounded in time, size and generation."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._generation: Generation = ()

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self, key: CacheKey, generation: Generation, now: float
    ) -> external_auth_pb2.CheckResponse | None:
        """The answer kept for ``key`` if it is fresh and of ``generation``."""
        if generation != self._generation:
            self._entries.clear()
            self._generation = generation
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now or entry.generation != generation:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.response

    def put(
        self,
        key: CacheKey,
        generation: Generation,
        response: external_auth_pb2.CheckResponse,
        expires_at: float,
    ) -> None:
        """Keeps an answer until ``expires_at``, if caching is on."""
        if self.ttl <= 0 or generation != self._generation:
            return
        self._entries[key] = _Entry(expires_at, generation, response)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


def header_text(text: str) -> str:
    """``text`` made safe and short enough for an HTTP header value."""
    return _UNSAFE.sub("?", text)[:_MAX_HEADER_TEXT]


def request_headers(http: Any) -> dict[str, str]:
    """The request's headers, lower-cased, from either of Envoy's forms."""
    headers = {k.lower(): v for k, v in http.headers.items()}
    for header in http.header_map.headers:
        value = header.value or header.raw_value.decode("utf-8", "replace")
        headers.setdefault(header.key.lower(), value)
    return headers


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 section 2.1)."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def route_audience(
    config: TrustConfig, extensions: Mapping[str, str], host: str
) -> str | None:
    """The audience a request is for: the route's extension, else its host."""
    named = extensions.get(AUDIENCE_EXTENSION)
    if named:
        return named
    hostname = urlsplit(f"//{host}").hostname if host else None
    if not hostname:
        return None
    for audience in config.audiences.values():
        for resource in audience.resources:
            if urlsplit(resource).hostname == hostname:
                return audience.id
    return None


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=header_text(value)),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def allowed(
    subject: str, policy_ids: tuple[str, ...]
) -> external_auth_pb2.CheckResponse:
    """An OK answer that tells the upstream who is calling."""
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=external_auth_pb2.OkHttpResponse(
            headers=[
                _header(SUBJECT_HEADER, subject),
                _header(POLICY_IDS_HEADER, ",".join(policy_ids)),
            ]
        ),
    )


def denied(
    code: int, http_status: int, reason: str, message: str
) -> external_auth_pb2.CheckResponse:
    """A denial whose ``x-wif-reason`` header names the check that failed."""
    text = f"{reason}: {message}"
    headers = [_header(REASON_HEADER, text)]
    if http_status == http_status_pb2.Unauthorized:
        headers.append(_header("www-authenticate", 'Bearer error="invalid_token"'))
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code, message=header_text(text)),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http_status),
            headers=headers,
            body=header_text(text) + "\n",
        ),
    )


def unauthenticated(reason: str, message: str) -> external_auth_pb2.CheckResponse:
    """A 401 for a missing, invalid or revoked token."""
    return denied(
        code_pb2.UNAUTHENTICATED, http_status_pb2.Unauthorized, reason, message
    )


def forbidden(reason: str, message: str) -> external_auth_pb2.CheckResponse:
    """A 403 for a request the policies do not allow."""
    return denied(
        code_pb2.PERMISSION_DENIED, http_status_pb2.Forbidden, reason, message
    )


def denial_of(result: DecisionResult, audience: str) -> external_auth_pb2.CheckResponse:
    """The 403 that explains a policy denial."""
    if result.policy_ids:
        return forbidden("POLICY_DENIED", "denied by " + ",".join(result.policy_ids))
    if result.errors:
        return forbidden("POLICY_DENIED", result.errors[0])
    return forbidden("POLICY_DENIED", f"no policy permits access to {audience}")


def _claim_attributes(claims: Mapping[str, Any]) -> dict[str, str]:
    return {
        name: value
        for name, value in claims.items()
        if isinstance(value, str) and name not in RESERVED_CLAIMS
    }


def _actors(claims: Mapping[str, Any]) -> list[str]:
    act = claims.get("act")
    if isinstance(act, dict) and isinstance(act.get("sub"), str):
        return [act["sub"]]
    return []


def access_question(
    token: MeshToken, audience: str, http: Any, source: str, now: float
) -> DecisionInput | None:
    """The ``access`` question a valid token asks; None for a foreign subject."""
    if spiffe.trust_domain_of(token.subject) is None:
        return None
    pool = token.subject.removeprefix(spiffe.SCHEME).split("/")[1]
    scope = token.claims.get("scope")
    return DecisionInput(
        subject=token.subject,
        pool_id=pool,
        provider_id="",
        attributes=_claim_attributes(token.claims),
        action="access",
        audience=audience,
        scopes=scope.split() if isinstance(scope, str) else [],
        context={
            "source_address": source,
            "now": int(now),
            "subject_token_age_seconds": max(0, int(now) - token.issued_at),
            "http_method": http.method,
            "http_path": http.path.split("?", 1)[0],
            "actor_chain": _actors(token.claims),
        },
    )


class EnvoyAuthorizer:
    """Answers Envoy's Check with a mesh token check and a policy decision.

    Register it with :func:`register`; the generated servicer base class
    adds nothing but untyped defaults.
    """

    def __init__(
        self,
        decider: Decider,
        keyring: KeyringFollower,
        quarantines: Quarantines,
        revocations: Revocations,
        audit: AuditLog,
        cache: DecisionCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._decider = decider
        self._keyring = keyring
        self._quarantines = quarantines
        self._revocations = revocations
        self._audit = audit
        self._cache = cache
        self._clock = clock

    def _generation(self) -> Generation:
        return (
            self._decider.engine.revision,
            self._keyring.revision,
            self._quarantines.generation,
            self._revocations.generation,
        )

    @handle_errors
    async def Check(
        self,
        request: external_auth_pb2.CheckRequest,
        context: grpc.aio.ServicerContext,
    ) -> external_auth_pb2.CheckResponse:
        with _tracer.start_as_current_span("policy.authorize") as span:
            response = await self._check(request)
            span.set_attribute(
                "wif.decision", "allow" if response.status.code == 0 else "deny"
            )
        return response

    async def _check(
        self, request: external_auth_pb2.CheckRequest
    ) -> external_auth_pb2.CheckResponse:
        now = self._clock()
        generation = self._generation()
        version = self._decider.engine.version
        if version is None:
            return denied(
                code_pb2.UNAVAILABLE,
                http_status_pb2.ServiceUnavailable,
                "NO_CONFIGURATION",
                "no trust configuration is loaded yet",
            )
        attributes = request.attributes
        http = attributes.request.http
        headers = request_headers(http)
        host = http.host or headers.get(":authority", "")
        audience = route_audience(version.config, attributes.context_extensions, host)
        if audience is None:
            return forbidden("NO_AUDIENCE", "the route maps to no audience")
        token = bearer_token(headers)
        if token is None:
            return unauthenticated("MISSING_BEARER_TOKEN", "no bearer token")

        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        key = (digest, audience, http.method, http.path.split("?", 1)[0])
        cached = self._cache.get(key, generation, now)
        if cached is not None:
            return cached

        try:
            mesh = verify_mesh_token(
                token,
                self._keyring.keyset,
                issuer=version.config.issuer,
                audience=audience,
                now=now,
            )
        except InvalidToken as error:
            return unauthenticated(error.reason, error.message)
        if self._revocations.revoked(mesh.token_id, mesh.subject):
            return unauthenticated("TOKEN_REVOKED", "the token has been revoked")
        source = attributes.source.address.socket_address.address
        question = access_question(mesh, audience, http, source, now)
        if question is None:
            return unauthenticated("INVALID_SUBJECT", "the subject is not a SPIFFE ID")

        result = self._decider.decide(question, version)
        await audit_decision(self._audit, question, result)
        await self._decider.enforce(question, result)
        response = (
            allowed(mesh.subject, result.policy_ids)
            if result.allowed
            else denial_of(result, audience)
        )
        expires_at = min(now + self._cache.ttl, float(mesh.expires_at))
        self._cache.put(key, generation, response, expires_at)
        return response


def register(authorizer: EnvoyAuthorizer, server: grpc.aio.Server) -> None:
    """Serves ``authorizer`` as envoy.service.auth.v3.Authorization."""
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(authorizer, server)
