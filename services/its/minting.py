"""What the ITS puts in a token, and the limits it enforces before signing."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wif import spiffe
from wif.errors import InvalidRequest
from wif.tokens import SigningKey
from wif.trust.model import MAX_LIFETIME_SECONDS, RESERVED_CLAIMS

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


def expiry(request: TokenRequest, now: int) -> int:
    """The expiry: the lifetime asked for, never past ``not_after``."""
    if not 1 <= request.lifetime_seconds <= MAX_LIFETIME_SECONDS:
        raise _refuse(
            f"lifetime must be 1 to {MAX_LIFETIME_SECONDS} seconds", "INVALID_LIFETIME"
        )
    expires_at = now + request.lifetime_seconds
    if request.not_after:
        expires_at = min(expires_at, request.not_after)
    if expires_at <= now:
        raise _refuse("the token would already be expired", "INVALID_LIFETIME")
    return expires_at


def mint(
    request: TokenRequest,
    *,
    issuer: str,
    trust_domain: str,
    signer: SigningKey,
    now: int,
) -> MintedToken:
    """Checks ``request`` and signs its token; raises ``InvalidRequest``."""
    check_subject(request.subject, trust_domain)
    check_audiences(request.audiences)
    check_scopes(request.scopes)
    check_claims(request.claims)
    expires_at = expiry(request, now)

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
