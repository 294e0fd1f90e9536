"""Introspection (RFC 7662) and revocation (RFC 7009) of the mesh's tokens.

Both surfaces answer alike for anything that is not a valid mesh token:
introspection says ``{"active": false}`` and nothing more, whatever the
reason (malformed, forged, expired, revoked, foreign), and revocation
answers success, as RFC 7009 section 2.2 asks, because there is nothing
left to revoke. A valid token is revoked by its ``jti`` in etcd, with a
lease that ends when it expires; this replica honours the revocation at
once, the others when the watch brings it, normally within milliseconds.
"""

from __future__ import annotations

import logging
from typing import Any

from services.sts.validation import MeshTokenValidator
from wif import revocations
from wif.audit import AuditLog
from wif.errors import InvalidGrant
from wif.revocations import RevocationList
from wif.store import EtcdStore

log = logging.getLogger(__name__)

INACTIVE: dict[str, Any] = {"active": False}


class TokenAdministration:
    """Introspects and revokes mesh tokens."""

    def __init__(
        self,
        validator: MeshTokenValidator,
        store: EtcdStore,
        revoked: RevocationList,
        audit: AuditLog,
    ) -> None:
        self._validator = validator
        self._store = store
        self._revoked = revoked
        self._audit = audit

    def introspect(self, token: str) -> dict[str, Any]:
        """The RFC 7662 section 2.2 answer for ``token``."""
        try:
            valid = self._validator.validate(token)
        except InvalidGrant:
            return dict(INACTIVE)
        return {**valid.claims, "active": True, "token_type": "Bearer"}

    async def revoke(self, token: str) -> None:
        """Revokes ``token`` if it is a valid mesh token; otherwise does nothing.

        Raises ``StoreUnavailable`` when etcd cannot record the revocation
        (RFC 7009 section 2.2.1: the caller may retry).
        """
        try:
            valid = self._validator.validate(token)
        except InvalidGrant as error:
            log.info("nothing to revoke: %s", error.reason)
            return
        await revocations.revoke_token(self._store, valid.token_id, valid.expires_at)
        self._revoked.add_token(valid.token_id)
        await self._audit.record(
            "token.revoke", "ok", token_id=valid.token_id, subject=valid.subject
        )
