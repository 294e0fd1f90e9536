"""Validating tokens the mesh itself issued (ValidateToken, introspection).

The checks are those of :mod:`wif.mesh_tokens`, shared with the Policy
service. On top of them:

- Revocation (by ``jti`` or by subject) is looked up on every call and
  always wins, cached or not.
- Tokens that passed every check are remembered until they expire, keyed
  by the SHA-256 of their text. Only successes are remembered: an ECDSA
  signature ``(r, s)`` can be rewritten as ``(r, n - s)`` and still verify,
  so one token has several texts, and a refusal keyed on one text would
  not stop another. A rewritten text merely misses the cache and is
  verified again. A cached token whose key has left the key set (a key
  revoked at the ITS) is verified again, and fails.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.sts.checks import safe_metadata
from wif.audit import AuditLog
from wif.errors import InvalidGrant, InvalidToken
from wif.keyring import KeyringFollower
from wif.mesh_tokens import MESH_CLOCK_SKEW_SECONDS, MeshToken, verify_mesh_token
from wif.metrics import CACHE_LOOKUPS
from wif.revocations import RevocationList
from wif.tokens import KeySet, VerificationKey, check_audience
from wif.trust.follower import TrustFollower

__all__ = [
    "MESH_CLOCK_SKEW_SECONDS",
    "MeshTokenFacts",
    "MeshTokenValidator",
    "ValidToken",
]

#: Tokens remembered by the validation cache, at most.
MAX_CACHED_TOKENS = 10_000
#: Tokens ValidateTokens checks in one call, at most.
MAX_BATCH = 100

TOKEN_REVOKED = "TOKEN_REVOKED"
SUBJECT_REVOKED = "SUBJECT_REVOKED"


@dataclass(frozen=True)
class ValidToken:
    """A mesh token that passed every check."""

    subject: str
    token_id: str
    expires_at: int
    claims: dict[str, Any]
    issued_at: int = 0


@dataclass(frozen=True)
class _Cached:
    token: ValidToken
    kid: str


class ValidationCache:
    """Valid mesh tokens by the SHA-256 of their text, until they expire."""

    def __init__(self, max_entries: int = MAX_CACHED_TOKENS) -> None:
        self._max = max_entries
        self._entries: OrderedDict[bytes, _Cached] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes, now: float) -> _Cached | None:
        """The remembered token, if it has not expired."""
        entry = self._entries.get(digest)
        if entry is not None and entry.token.expires_at <= now:
            del self._entries[digest]
            entry = None
        result = "miss" if entry is None else "hit"
        CACHE_LOOKUPS.add(1, {"cache": "validation", "result": result})
        if entry is not None:
            self._entries.move_to_end(digest)
        return entry

    def put(self, digest: bytes, entry: _Cached) -> None:
        """Remembers a token that passed every check; evicts the oldest."""
        self._entries[digest] = entry
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, digest: bytes) -> None:
        """Drops one token."""
        self._entries.pop(digest, None)


def _valid(mesh: MeshToken) -> ValidToken:
    return ValidToken(
        subject=mesh.subject,
        token_id=mesh.token_id,
        expires_at=mesh.expires_at,
        claims=mesh.claims,
        issued_at=mesh.issued_at,
    )


class MeshTokenValidator:
    """Checks signature, issuer, times, audience and revocation of a mesh token."""

    def __init__(
        self,
        trust: TrustFollower,
        keyring: KeyringFollower,
        revocations: RevocationList,
        clock: Callable[[], float] = time.time,
        audit: AuditLog | None = None,
    ) -> None:
        self._audit = audit
        self._trust = trust
        self._keyring = keyring
        self._revocations = revocations
        self._clock = clock
        self.cache = ValidationCache()

    def validate(self, token: str, audience: str = "") -> ValidToken:
        """The token's facts; raises ``InvalidToken`` naming the failed check.

        Every outcome is an audit record, written with the next batch (the
        caller does not wait for the disk: a validation hands nothing out).
        """
        try:
            valid = self._validate(token, audience)
        except InvalidGrant as error:
            if self._audit is not None:
                self._audit.record_nowait(
                    "token.validated", "refused", reason=error.reason, audience=audience
                )
            raise
        if self._audit is not None:
            self._audit.record_nowait(
                "token.validated",
                "ok",
                token_id=valid.token_id,
                subject=valid.subject,
                audience=audience,
            )
        return valid

    def _validate(self, token: str, audience: str) -> ValidToken:
        now = self._clock()
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self.cache.get(digest, now)
        if cached is not None and cached.kid not in self._keyring.keyset:
            self.cache.forget(digest)
            cached = None
        if cached is None:
            valid, kid = self._verify(token, now)
            self.cache.put(digest, _Cached(valid, kid))
        else:
            valid = cached.token

        if audience:
            try:
                check_audience(valid.claims, [audience])
            except InvalidGrant as error:
                raise InvalidToken(
                    error.message, reason=error.reason, metadata=error.metadata
                ) from error

        self.check_not_revoked(valid.token_id, valid.subject)
        return valid

    @property
    def keyset(self) -> KeySet:
        """The mesh's published verification keys."""
        return self._keyring.keyset

    def check_not_revoked(self, token_id: str, subject: str) -> None:
        """Raises ``InvalidToken`` if the token or its subject is revoked."""
        if self._revocations.token_revoked(token_id):
            raise InvalidToken("the token has been revoked", reason=TOKEN_REVOKED)
        if self._revocations.subject_revoked(subject):
            raise InvalidToken(
                "every token of this subject has been revoked",
                reason=SUBJECT_REVOKED,
            )

    def _verify(self, token: str, now: float) -> tuple[ValidToken, str]:
        config = self._trust.require()
        keys = self._keyring.keyset
        try:
            mesh = verify_mesh_token(
                token, keys, issuer=config.issuer, audience="", now=now
            )
        except InvalidToken as error:
            error.metadata = safe_metadata(error.metadata)
            raise
        return _valid(mesh), mesh.key_id


class MeshTokenFacts:
    """The mesh's keys and revocations, as token exchange needs them.

    A revoked token presented for exchange is an RFC 8693 ``invalid_grant``,
    not the ``invalid_token`` of validation.
    """

    def __init__(self, validator: MeshTokenValidator) -> None:
        self._validator = validator

    def keyset_get(self, kid: str) -> VerificationKey | None:
        """The mesh's published key named ``kid``."""
        return self._validator.keyset.get(kid)

    def check_not_revoked(self, token_id: str, subject: str) -> None:
        """Raises ``InvalidGrant`` if the token or its subject is revoked."""
        try:
            self._validator.check_not_revoked(token_id, subject)
        except InvalidToken as error:
            raise InvalidGrant(error.message, reason=error.reason) from error
