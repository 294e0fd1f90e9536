"""Authenticating a subject or actor token (RFC 8693 section 2.1).

A foreign token is checked against its provider, in the steps of
DESIGN.md: parse strictly, find the provider by the exact issuer, select the
key by ``kid``, verify with the algorithm the key dictates, check the time
and audience claims, check the token's kind against its declared type, hold
the provider's attribute condition and apply its attribute mapping.

A token the mesh issued itself is accepted too, so that a service can pass
on a caller's token with its own actor token (delegation): it is verified
with the mesh's keys and must not be revoked; its ``sub`` is the principal
and its ``act`` chain is carried on.

The kind rule (``token_kind``), after RFC 9068 section 4:

- ``access_token``: a foreign token must declare ``typ`` ``at+jwt`` (or
  ``application/at+jwt``); a mesh token is an access token.
- ``id_token``: a token declaring ``at+jwt`` is an access token and is
  refused; the mesh issues no ID tokens, so a mesh token is refused too.
- ``jwt``: any kind.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.sts.checks import CheckLog, echo
from services.sts.foreign_keys import ForeignKeys
from wif import spiffe
from wif.errors import InvalidGrant
from wif.mesh_tokens import MESH_CLOCK_SKEW_SECONDS
from wif.telemetry import step_span, tracer
from wif.tokens import (
    ParsedToken,
    VerificationKey,
    check_audience,
    check_expiry,
    check_issued_at,
    check_issuer,
    check_not_before,
    check_subject,
    parse_compact,
    unverified_issuer,
    verify_signature,
)
from wif.trust.config import TrustConfig
from wif.trust.expressions import (
    CelInput,
    EvaluationError,
    check_cel_input,
    condition_holds,
)
from wif.trust.model import RESERVED_CLAIMS, Provider

_tracer = tracer(__name__)

TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"

#: ``typ`` values of a JWT access token (RFC 9068 section 2.1).
ACCESS_TOKEN_TYPS = frozenset({"at+jwt", "application/at+jwt"})
#: Longest actor chain carried in a token, whatever the policy says.
MAX_ACTOR_DEPTH = 5

WRONG_TOKEN_KIND = "WRONG_TOKEN_KIND"


@dataclass(frozen=True)
class Principal:
    """A workload authenticated by a trusted provider, or by the mesh itself."""

    subject: str
    pool_id: str
    provider_id: str
    attributes: Mapping[str, str]
    claims: Mapping[str, Any]
    token_id: str
    #: True when the mesh issued the token (its ``act`` chain can be trusted).
    mesh_issued: bool = False


class MeshKeys(Protocol):
    """What authentication needs to know about the mesh's own tokens."""

    def keyset_get(self, kid: str) -> VerificationKey | None:
        """The mesh's published key named ``kid``."""

    def check_not_revoked(self, token_id: str, subject: str) -> None:
        """Raises ``InvalidGrant`` if the token or its subject is revoked."""


def _kind(typ: Any) -> str:
    return "access" if isinstance(typ, str) and typ.lower() in ACCESS_TOKEN_TYPS else ""


def check_token_kind(parsed: ParsedToken, token_type: str, mesh_issued: bool) -> None:
    """The kind rule of this module's docstring; raises ``InvalidGrant``."""
    is_access = mesh_issued or _kind(parsed.header.get("typ")) == "access"
    if token_type == TYPE_ACCESS_TOKEN and not is_access:
        raise InvalidGrant(
            "the token is not a JWT access token (typ at+jwt) but was presented as one",
            reason=WRONG_TOKEN_KIND,
        )
    if token_type == TYPE_ID_TOKEN and is_access:
        raise InvalidGrant(
            "the token is an access token but was presented as an ID token",
            reason=WRONG_TOKEN_KIND,
        )


def _mapped_string(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise InvalidGrant(
        f"attribute mapping {name!r} did not give a string",
        reason="ATTRIBUTE_MAPPING_FAILED",
    )


def map_principal(
    provider: Provider, token: Mapping[str, Any] | CelInput, trust_domain: str
) -> Principal:
    """Applies the provider's attribute mapping; raises ``InvalidGrant``."""
    cel_input = token if isinstance(token, CelInput) else CelInput(token)
    claims = cel_input.claims
    try:
        subject_path = provider.mapping.subject.evaluate(cel_input)
        attributes = {
            name: _mapped_string(expr.evaluate(cel_input), name)
            for name, expr in provider.mapping.attributes.items()
        }
    except EvaluationError as exc:
        raise InvalidGrant(
            f"the attribute mapping could not be evaluated: {exc}",
            reason="ATTRIBUTE_MAPPING_FAILED",
        ) from exc
    if not isinstance(subject_path, str) or not spiffe.is_workload_path(subject_path):
        raise InvalidGrant(
            "the mapped subject is not a valid SPIFFE ID path",
            reason="ATTRIBUTE_MAPPING_FAILED",
        )
    try:
        subject = spiffe.make_id(trust_domain, f"{provider.pool}/{subject_path}")
    except ValueError as exc:  # the only check left is the 2048-character limit
        raise InvalidGrant(
            f"the mapped subject does not make a valid SPIFFE ID: {exc}",
            reason="ATTRIBUTE_MAPPING_FAILED",
        ) from exc
    return Principal(
        subject=subject,
        pool_id=provider.pool,
        provider_id=provider.id,
        attributes=attributes,
        claims=claims,
        token_id=str(claims.get("jti", "")),
    )


def mesh_principal(claims: Mapping[str, Any], trust_domain: str) -> Principal:
    """The principal of a verified mesh token: its ``sub`` and its attributes.

    The pool is the first segment of the SPIFFE ID's path, where the STS put
    it; the attributes are the token's string claims that the ITS does not
    set itself.
    """
    subject = str(claims["sub"])
    if spiffe.trust_domain_of(subject) != trust_domain:
        raise InvalidGrant(
            "the mesh token's subject is not of this trust domain",
            reason="ATTRIBUTE_MAPPING_FAILED",
        )
    pool = subject[len(f"spiffe://{trust_domain}/") :].split("/", 1)[0]
    attributes = {
        name: value
        for name, value in claims.items()
        if name not in RESERVED_CLAIMS and isinstance(value, str)
    }
    return Principal(
        subject=subject,
        pool_id=pool,
        provider_id="",
        attributes=attributes,
        claims=claims,
        token_id=str(claims.get("jti", "")),
        mesh_issued=True,
    )


class Authenticator:
    """Checks subject and actor tokens against the trust configuration."""

    def __init__(self, keys: ForeignKeys, mesh: MeshKeys) -> None:
        self._keys = keys
        self._mesh = mesh

    async def authenticate(
        self,
        token: str,
        token_type: str,
        config: TrustConfig,
        checks: CheckLog | None = None,
        *,
        actor: bool = False,
    ) -> Principal:
        """Validates a token and returns the principal it proves.

        An ``actor`` token must be a foreign one: a mesh token is bound to
        other audiences, and whoever received it could otherwise claim its
        subject's identity as their own. Raises ``InvalidGrant`` whose reason
        names the failed check; each check is recorded in ``checks``.
        """
        log = checks or CheckLog()
        with log.step("format"), step_span(_tracer, "sts.parse"):
            parsed = parse_compact(token)
            issuer = unverified_issuer(parsed)
        if issuer == config.issuer:
            if actor:
                with log.step("issuer"):
                    raise InvalidGrant(
                        "an actor proves itself with its own platform token, "
                        "not with a token of this mesh",
                        reason="MESH_TOKEN_AS_ACTOR",
                    )
            return self._mesh_token(parsed, token_type, config, log)
        return await self._foreign_token(parsed, issuer, token_type, config, log)

    async def _foreign_token(
        self,
        parsed: ParsedToken,
        issuer: str,
        token_type: str,
        config: TrustConfig,
        log: CheckLog,
    ) -> Principal:
        with log.step("issuer"):
            provider = config.provider_for_issuer(issuer)
            if provider is None:
                raise InvalidGrant(
                    "the token's issuer is not trusted", reason="UNKNOWN_ISSUER"
                )
            check_issuer(parsed.claims, provider.issuer)
            check_subject(parsed.claims)

        with log.step("signature"), _tracer.start_as_current_span("sts.signature"):
            key = await self._foreign_key(parsed, provider)
            verify_signature(parsed, key)

        claims, now = parsed.claims, time.time()
        with log.step("time"), step_span(_tracer, "sts.claims"):
            check_expiry(claims, now, provider.clock_skew_seconds)
            check_not_before(claims, now, provider.clock_skew_seconds)
            check_issued_at(
                claims, now, provider.clock_skew_seconds, provider.max_token_age_seconds
            )

        with log.step("audience"):
            check_audience(claims, provider.audiences)

        with log.step("token_kind"):
            check_token_kind(parsed, token_type, mesh_issued=False)

        with log.step("condition"), step_span(_tracer, "sts.condition"):
            check_cel_input(claims)
            cel_input = CelInput(claims)
            if provider.condition is not None:
                condition_holds(provider.condition, cel_input)

        with log.step("mapping"), step_span(_tracer, "sts.mapping"):
            principal = map_principal(provider, cel_input, config.trust_domain)

        with log.step("revocation"):
            self._mesh.check_not_revoked("", principal.subject)
        return principal

    async def _foreign_key(
        self, parsed: ParsedToken, provider: Provider
    ) -> VerificationKey:
        kid = parsed.header.get("kid")
        if not isinstance(kid, str):
            raise InvalidGrant("the token's header has no kid", reason="MISSING_KEY_ID")
        key = await self._keys.key_for(provider, kid)
        if key is None:
            raise InvalidGrant(
                "no key of the issuer has this kid",
                reason="UNKNOWN_KEY_ID",
                metadata={"kid": echo(kid)},
            )
        return key

    def _mesh_token(
        self, parsed: ParsedToken, token_type: str, config: TrustConfig, log: CheckLog
    ) -> Principal:
        with log.step("issuer", "the mesh's own issuer"):
            check_subject(parsed.claims)

        with log.step("signature"):
            kid = parsed.header.get("kid")
            if not isinstance(kid, str):
                raise InvalidGrant(
                    "the token's header has no kid", reason="MISSING_KEY_ID"
                )
            key = self._mesh.keyset_get(kid)
            if key is None:
                raise InvalidGrant(
                    "no key of the mesh has this kid",
                    reason="UNKNOWN_KEY_ID",
                    metadata={"kid": echo(kid)},
                )
            verify_signature(parsed, key)

        claims, now = parsed.claims, time.time()
        with log.step("time"):
            check_expiry(claims, now, MESH_CLOCK_SKEW_SECONDS)
            check_not_before(claims, now, MESH_CLOCK_SKEW_SECONDS)
            check_issued_at(claims, now, MESH_CLOCK_SKEW_SECONDS, None)

        log.skip("audience", "a mesh token is exchanged only with an actor token")

        with log.step("token_kind"):
            check_token_kind(parsed, token_type, mesh_issued=True)

        log.skip("condition", "the mesh's own token")
        with log.step("mapping"):
            principal = mesh_principal(claims, config.trust_domain)
            _check_chain(claims.get("act"))

        with log.step("revocation"):
            self._mesh.check_not_revoked(principal.token_id, principal.subject)
        return principal


def _check_chain(act: Any, depth: int = 0) -> None:
    """A mesh token's ``act`` chain is nested objects with a string ``sub``."""
    if act is None:
        return
    if depth >= MAX_ACTOR_DEPTH:
        raise InvalidGrant(
            "the token's actor chain is too deep", reason="ACTOR_CHAIN_TOO_DEEP"
        )
    if not isinstance(act, dict) or not isinstance(act.get("sub"), str):
        raise InvalidGrant(
            "the token's act claim is malformed", reason="INVALID_ACT_CLAIM"
        )
    _check_chain(act.get("act"), depth + 1)
