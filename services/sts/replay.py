"""One-time use of subject tokens, shared by every STS replica through etcd.

A provider with ``one_time_use: true`` lets each of its tokens be exchanged
once: the first exchange creates ``/wif/replay/<provider>/<sha256 of jti>``
with a lease that ends when the token expires (plus its clock skew), and
any later exchange of a token with the same ``jti`` finds the key and is
refused. The key is the token id, never the token text, so a token whose
signature was rewritten (ECDSA allows two signatures per message) is still
the same token.
"""

from __future__ import annotations

import hashlib
import math
import time

from services.sts.subject import Principal
from wif.errors import InvalidGrant
from wif.store import EtcdStore
from wif.trust.model import Provider

#: The etcd prefix of used subject-token ids.
REPLAY_PREFIX = "/wif/replay/"

TOKEN_REPLAYED = "TOKEN_REPLAYED"


def replay_key(provider_id: str, token_id: str) -> str:
    """The etcd key marking ``token_id`` of ``provider_id`` as used."""
    digest = hashlib.sha256(token_id.encode("utf-8")).hexdigest()
    return f"{REPLAY_PREFIX}{provider_id}/{digest}"


def _token_id(subject: Principal) -> str:
    if not subject.token_id:
        raise InvalidGrant(
            "one-time tokens of this provider must carry a jti",
            reason="MISSING_CLAIM",
            metadata={"claim": "jti"},
        )
    return subject.token_id


class ReplayGuard:
    """Consumes one-time subject tokens in etcd."""

    def __init__(self, store: EtcdStore) -> None:
        self._store = store

    async def check_unused(self, provider: Provider, subject: Principal) -> None:
        """Raises ``InvalidGrant`` if the token was already used; consumes nothing."""
        key = replay_key(provider.id, _token_id(subject))
        if await self._store.get(key) is not None:
            raise InvalidGrant(
                "the subject token was already used", reason=TOKEN_REPLAYED
            )

    async def consume(self, provider: Provider, subject: Principal) -> None:
        """Marks the token used on every replica; raises if it already was."""
        key = replay_key(provider.id, _token_id(subject))
        expires_at = float(subject.claims["exp"])
        remaining = expires_at + provider.clock_skew_seconds - time.time()
        lease = await self._store.grant_lease(max(1, math.ceil(remaining)) + 1)
        if not await self._store.put_if_absent(key, b"", lease=lease):
            await self._store.revoke_lease(lease)
            raise InvalidGrant(
                "the subject token was already used", reason=TOKEN_REPLAYED
            )
