"""What the ITS puts in a token, and the limits it enforces before signing."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wif import spiffe
from wif.errors import InvalidRequest, TemporarilyUnavailable
from wif.tokens import Signer
from wif.trust.model import MAX_LIFETIME_SECONDS, RESERVED_CLAIMS, Audience

MAX_AUDIENCES = 16
MAX_SCOPES = 64
MAX_CLAIMS = 32
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 section 3.3
_AUDIENCE = re.compile(r"[\x21-\x7e]{1,512}")


@dataclass(frozen=True)
class TokenRequest:
    """A request to sign, already decoded from the wire."""

    subject: str
    audiences: Sequence[str]
    scopes: Sequence[str]
    lifetime_seconds: int
    not_after: int
    claims: Mapping[str, Any]
    act: Mapping[str, Any] | None


@dataclass(frozen=True)
class MintedToken:
    """A signed token and the facts about it."""

    token: str
    token_id: str
    key_id: str
    issued_at: int
    expires_at: int


def _refuse(message: str, reason: str) -> InvalidRequest:
    return InvalidRequest(message, reason=reason)


def check_subject(subject: str, trust_domain: str) -> None:
    """The subject must be a SPIFFE ID in this mesh's trust domain."""
    if spiffe.trust_domain_of(subject) != trust_domain:
        raise _refuse(
            "subject must be a SPIFFE ID in this trust domain", "INVALID_SUBJECT"
        )


def check_audiences(audiences: Sequence[str]) -> None:
    """One to MAX_AUDIENCES printable audiences."""
    if not 1 <= len(audiences) <= MAX_AUDIENCES:
        raise _refuse(f"give 1 to {MAX_AUDIENCES} audiences", "INVALID_AUDIENCE")
    if not all(_AUDIENCE.fullmatch(a) for a in audiences):
        raise _refuse("an audience is empty or holds spaces", "INVALID_AUDIENCE")


def check_scopes(scopes: Sequence[str]) -> None:
    """Scopes are RFC 6749 scope tokens."""
    if len(scopes) > MAX_SCOPES or not all(_SCOPE_TOKEN.fullmatch(s) for s in scopes):
        raise _refuse("a scope is not a valid scope token", "INVALID_SCOPE")


def check_claims(claims: Mapping[str, Any]) -> None:
    """Extra claims may not overwrite the ones the ITS owns."""
    if len(claims) > MAX_CLAIMS:
        raise _refuse(f"at most {MAX_CLAIMS} extra claims", "TOO_MANY_CLAIMS")
    reserved = sorted(RESERVED_CLAIMS.intersection(claims))
    if reserved:
        raise _refuse(f"claim {reserved[0]!r} is set by the ITS", "RESERVED_CLAIM")


def check_known_audiences(
    audiences: Sequence[str], known: Mapping[str, Audience]
) -> int:
    """Every audience must be in the trust configuration; returns the shortest
    maximum lifetime among them."""
    for name in audiences:
        if name not in known:
            raise _refuse(
                "an audience is not in the trust configuration",
                "UNKNOWN_AUDIENCE",
            )
    return min(known[name].max_lifetime_seconds for name in audiences)


def expiry(request: TokenRequest, now: int, max_lifetime: int) -> int:
    """The expiry: the lifetime asked for, never past ``not_after``."""
    if not 1 <= request.lifetime_seconds <= max_lifetime:
        raise _refuse(
            f"lifetime must be 1 to {max_lifetime} seconds", "INVALID_LIFETIME"
        )
    expires_at = now + request.lifetime_seconds
    if request.not_after:
        expires_at = min(expires_at, request.not_after)
    if expires_at <= now:
        raise _refuse("the token would already be expired", "INVALID_LIFETIME")
    return expires_at


def clamp_to_key(expires_at: int, now: int, key_bound: int) -> int:
    """The expiry, never past ``key_bound``: the last moment the signing key
    is sure to stay published (0 for no bound)."""
    if not key_bound:
        return expires_at
    if key_bound <= now:
        raise TemporarilyUnavailable(
            "the signing key is past its retirement", reason="NO_SIGNING_KEY"
        )
    return min(expires_at, key_bound)


@dataclass(frozen=True)
class MintLimits:
    """What bounds a token besides the request: lifetime, key and audiences."""

    max_lifetime: int = MAX_LIFETIME_SECONDS
    key_bound: int = 0
    audiences: Mapping[str, Audience] | None = None


def mint(
    request: TokenRequest,
    *,
    issuer: str,
    trust_domain: str,
    signer: Signer,
    now: int,
    limits: MintLimits = MintLimits(),
) -> MintedToken:
    """Checks ``request`` and signs its token.

    ``limits.audiences``, when given, is the trust configuration's audiences:
    each requested audience must be one of them, and the lifetime may not
    exceed the shortest of their maximum lifetimes.

    Raises:
        InvalidRequest: the request breaks a rule; the reason names it.
        TokenTooLarge: the token would exceed 8 KB.
        TemporarilyUnavailable: the signing key may sign no more tokens.
    """
    check_subject(request.subject, trust_domain)
    check_audiences(request.audiences)
    max_lifetime = limits.max_lifetime
    if limits.audiences is not None:
        widest = check_known_audiences(request.audiences, limits.audiences)
        max_lifetime = min(max_lifetime, widest)
    check_scopes(request.scopes)
    check_claims(request.claims)
    expires_at = clamp_to_key(expiry(request, now, max_lifetime), now, limits.key_bound)

    token_id = secrets.token_urlsafe(18)
    payload: dict[str, Any] = {
        **request.claims,
        "iss": issuer,
        "sub": request.subject,
        "aud": request.audiences[0]
        if len(request.audiences) == 1
        else list(request.audiences),
        "iat": now,
        "nbf": now,
        "exp": expires_at,
        "jti": token_id,
    }
    if request.scopes:
        payload["scope"] = " ".join(request.scopes)
    if request.act:
        payload["act"] = dict(request.act)

    token = signer.sign(payload, typ="JWT")
    return MintedToken(token, token_id, signer.kid, now, expires_at)
