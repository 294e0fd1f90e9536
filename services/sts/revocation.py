"""Introspection (RFC 7662) and revocation (RFC 7009) of the mesh's tokens.

Callers are authenticated and authorized before either is asked (see
:mod:`services.sts.client_auth`); every answer is audited with the caller's
subject. Both surfaces answer alike for anything that is not a valid mesh token:
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

    async def introspect(self, token: str, caller: str) -> dict[str, Any]:
        """The RFC 7662 section 2.2 answer for ``token``, asked by ``caller``
        (the subject of an authenticated caller), who is audited with it.

        The answer is returned only once its record is on disk: it hands the
        caller a token's facts."""
        try:
            valid = self._validator.validate(token)
        except InvalidGrant as error:
            await self._audit.record(
                "token.introspect", "inactive", reason=error.reason, caller=caller
            )
            return dict(INACTIVE)
        await self._audit.record(
            "token.introspect",
            "active",
            token_id=valid.token_id,
            subject=valid.subject,
            caller=caller,
        )
        return {**valid.claims, "active": True, "token_type": "Bearer"}

    async def revoke(self, token: str, caller: str, owner: str | None = None) -> None:
        """Revokes ``token`` if it is a valid mesh token; otherwise does nothing.

        ``caller`` is the subject of the authenticated caller, audited with
        the revocation. Given ``owner``, only a token of that subject is
        revoked (a caller revoking its own tokens).

        Raises ``StoreUnavailable`` when etcd cannot record the revocation
        (RFC 7009 section 2.2.1: the caller may retry).
        """
        try:
            valid = self._validator.validate(token)
        except InvalidGrant as error:
            log.info("nothing to revoke: %s", error.reason)
            await self._audit.record(
                "token.revoke", "inactive", reason=error.reason, caller=caller
            )
            return
        if owner is not None and valid.subject != owner:
            # The caller checked the claimed subject, and a valid token's
            # subject is the one it claims; this guards the contract anyway.
            log.warning("refusing to revoke a token of another subject")
            return
        await revocations.revoke_token(self._store, valid.token_id, valid.expires_at)
        self._revoked.add_token(valid.token_id)
        await self._audit.record(
            "token.revoke",
            "ok",
            token_id=valid.token_id,
            subject=valid.subject,
            caller=caller,
        )
