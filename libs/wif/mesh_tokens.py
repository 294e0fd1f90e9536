"""Checking a token the mesh itself issued, wherever a service meets one.

The STS answers ``ValidateToken`` with these checks, and the Policy service
applies them to the bearer tokens an Envoy sidecar forwards. The steps are
those of DESIGN.md: parse strictly, select the key by ``kid`` from the
mesh's published keys, verify with the algorithm the key pins, then check
every registered claim with a bounded clock skew.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wif.errors import InvalidGrant, InvalidToken
from wif.tokens import (
    KeySet,
    check_audience,
    check_expiry,
    check_issued_at,
    check_issuer,
    check_not_before,
    check_subject,
    parse_compact,
    select_key,
    verify_signature,
)

#: Clock skew allowed when checking the mesh's own tokens.
MESH_CLOCK_SKEW_SECONDS = 30


@dataclass(frozen=True)
class MeshToken:
    """A mesh token that passed every check."""

    subject: str
    token_id: str
    issued_at: int
    expires_at: int
    claims: dict[str, Any]
    #: The ``kid`` of the key that verified the token.
    key_id: str = ""


def check_mesh_claims(
    claims: dict[str, Any], *, issuer: str, audience: str, now: float
) -> None:
    """RFC 7519 section 4.1 checks of a mesh token's registered claims.

    An empty ``audience`` skips the audience check. Raises ``InvalidGrant``
    with the reason of the first check that fails.
    """
    check_issuer(claims, issuer)

    check_subject(claims)

    if audience:
        check_audience(claims, [audience])

    check_expiry(claims, now, MESH_CLOCK_SKEW_SECONDS)

    check_not_before(claims, now, MESH_CLOCK_SKEW_SECONDS)

    check_issued_at(claims, now, MESH_CLOCK_SKEW_SECONDS, None)


def verify_mesh_token(
    token: str, keys: KeySet, *, issuer: str, audience: str, now: float
) -> MeshToken:
    """The facts of a valid mesh token.

    Raises ``InvalidToken`` (RFC 6750 ``invalid_token``) whose reason names
    the check that failed, such as BAD_SIGNATURE or TOKEN_EXPIRED.
    """
    try:
        parsed = parse_compact(token)
        verify_signature(parsed, select_key(parsed, keys))
        claims = parsed.claims
        check_mesh_claims(claims, issuer=issuer, audience=audience, now=now)
    except InvalidGrant as error:
        raise InvalidToken(
            error.message, reason=error.reason, metadata=error.metadata
        ) from error
    return MeshToken(
        subject=str(claims["sub"]),
        token_id=str(claims.get("jti", "")),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
        claims=claims,
        key_id=str(parsed.header.get("kid", "")),
    )
