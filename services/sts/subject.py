"""Validating a foreign token against its provider (RFC 8693 subject/actor tokens).

The steps follow DESIGN.md: parse strictly, find the provider by the exact
issuer, select the key by ``kid``, verify with the algorithm the key
dictates, check the time and audience claims, then hold the provider's
attribute condition and apply its attribute mapping.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.sts.foreign_keys import ForeignKeys
from wif import spiffe
from wif.errors import InvalidGrant
from wif.telemetry import tracer
from wif.tokens import check_claims, parse_compact, unverified_issuer, verify_signature
from wif.trust.config import TrustConfig
from wif.trust.expressions import EvaluationError, condition_holds
from wif.trust.model import Provider

_tracer = tracer(__name__)


@dataclass(frozen=True)
class Principal:
    """A workload authenticated by a trusted provider."""

    subject: str
    pool_id: str
    provider_id: str
    attributes: Mapping[str, str]
    claims: Mapping[str, Any]
    token_id: str


async def _verified_claims(
    token: str, config: TrustConfig, keys: ForeignKeys
) -> tuple[Provider, dict[str, Any]]:
    with _tracer.start_as_current_span("sts.parse"):
        parsed = parse_compact(token)
        issuer = unverified_issuer(parsed)
    provider = config.provider_for_issuer(issuer)
    if provider is None:
        raise InvalidGrant("the token's issuer is not trusted", reason="UNKNOWN_ISSUER")

    with _tracer.start_as_current_span("sts.signature") as span:
        span.set_attribute("wif.provider", provider.id)
        kid = parsed.header.get("kid")
        if not isinstance(kid, str):
            raise InvalidGrant("the token's header has no kid", reason="MISSING_KEY_ID")
        key = await keys.key_for(provider, kid)
        if key is None:
            raise InvalidGrant(
                "no key of the issuer has this kid",
                reason="UNKNOWN_KEY_ID",
                metadata={"kid": kid},
            )
        verify_signature(parsed, key)

    with _tracer.start_as_current_span("sts.claims"):
        check_claims(
            parsed.claims,
            issuer=provider.issuer,
            audiences=provider.audiences,
            now=time.time(),
            skew=provider.clock_skew_seconds,
            max_age=provider.max_token_age_seconds,
        )
    return provider, parsed.claims


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
    provider: Provider, claims: Mapping[str, Any], trust_domain: str
) -> Principal:
    """Applies the provider's attribute mapping; raises ``InvalidGrant``."""
    try:
        subject_path = provider.mapping.subject.evaluate(claims)
        attributes = {
            name: _mapped_string(expr.evaluate(claims), name)
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


async def authenticate(token: str, config: TrustConfig, keys: ForeignKeys) -> Principal:
    """Validates a foreign token and returns the principal it proves."""
    provider, claims = await _verified_claims(token, config, keys)

    with _tracer.start_as_current_span("sts.condition"):
        if provider.condition is not None:
            condition_holds(provider.condition, claims)

    with _tracer.start_as_current_span("sts.mapping"):
        return map_principal(provider, claims, config.trust_domain)
