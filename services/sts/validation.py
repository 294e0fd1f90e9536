"""Validating tokens the mesh itself issued (ValidateToken)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from wif.errors import InvalidGrant, InvalidToken
from wif.keyring import KeyringFollower
from wif.tokens import (
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
from wif.trust.follower import TrustFollower

#: Clock skew allowed when validating the mesh's own tokens.
MESH_CLOCK_SKEW_SECONDS = 30


@dataclass(frozen=True)
class ValidToken:
    """A mesh token that passed every check."""

    subject: str
    token_id: str
    expires_at: int
    claims: dict[str, Any]


def _check_mesh_claims(claims: dict[str, Any], issuer: str, audience: str) -> None:
    now = time.time()
    check_issuer(claims, issuer)

    check_subject(claims)

    if audience:
        check_audience(claims, [audience])

    check_expiry(claims, now, MESH_CLOCK_SKEW_SECONDS)

    check_not_before(claims, now, MESH_CLOCK_SKEW_SECONDS)

    check_issued_at(claims, now, MESH_CLOCK_SKEW_SECONDS, None)


class MeshTokenValidator:
    """Checks signature, issuer, times and audience of a mesh token."""

    def __init__(self, trust: TrustFollower, keyring: KeyringFollower) -> None:
        self._trust = trust
        self._keyring = keyring

    def validate(self, token: str, audience: str = "") -> ValidToken:
        """The token's facts; raises ``InvalidToken`` naming the failed check."""
        config = self._trust.require()
        try:
            parsed = parse_compact(token)
            verify_signature(parsed, select_key(parsed, self._keyring.keyset))
            claims = parsed.claims
            _check_mesh_claims(claims, config.issuer, audience)
        except InvalidGrant as error:
            raise InvalidToken(
                error.message, reason=error.reason, metadata=error.metadata
            ) from error
        return ValidToken(
            subject=str(claims["sub"]),
            token_id=str(claims.get("jti", "")),
            expires_at=int(claims["exp"]),
            claims=claims,
        )
