"""The ITS's signing keys: first-start creation, sealing and the active signer."""

from __future__ import annotations

import logging
import time

from wif.envelope import KeyEncryptionKey
from wif.errors import TemporarilyUnavailable
from wif.keyring import (
    KEYS_PREFIX,
    KeyRecord,
    KeyringFollower,
    KeyState,
    key_path,
    parse_records,
    published_jwks,
)
from wif.store import EtcdStore
from wif.tokens import SigningKey

log = logging.getLogger(__name__)

#: Written once, by the replica that creates the mesh's first key.
FIRST_KEY_MARKER = "/wif/its/first-key"


class KeyManager:
    """Keeps the key records from etcd and the decrypted active signer."""

    def __init__(self, store: EtcdStore, kek: KeyEncryptionKey, algorithm: str) -> None:
        self._store = store
        self._kek = kek
        self._algorithm = algorithm
        self._keyring = KeyringFollower(store)
        self._signers: dict[str, SigningKey] = {}

    def seal(self, key: SigningKey, state: KeyState) -> KeyRecord:
        """A new record for ``key``, its private part sealed under the KEK."""
        return KeyRecord(
            kid=key.kid,
            alg=key.alg,
            state=state,
            created_at=int(time.time()),
            public_jwk=key.public_jwk(),
            sealed_private=self._kek.seal(key.to_pem(), context=key.kid),
        )

    async def ensure_first_key(self) -> None:
        """Creates the mesh's first active key unless one exists."""
        snapshot = await self._store.get_prefix(KEYS_PREFIX)
        if any(r.state == KeyState.ACTIVE for r in parse_records(snapshot.items)):
            return
        key = SigningKey.generate(self._algorithm)
        if await self._store.put_if_absent(FIRST_KEY_MARKER, key.kid.encode()):
            await self._store.put(
                key_path(key.kid), self.seal(key, KeyState.ACTIVE).to_json()
            )
            log.info(
                "created the first signing key", extra={"fields": {"key_id": key.kid}}
            )

    async def follow(self) -> None:
        """Follows the key records until cancelled."""
        await self._keyring.follow()

    async def wait_until_loaded(self, timeout: float) -> None:
        """Waits until an active key is known."""
        await self._keyring.wait_until(
            lambda: self.active_record() is not None, timeout
        )

    def active_record(self) -> KeyRecord | None:
        """The newest active key record, if any."""
        active = [
            r for r in self._keyring.records.values() if r.state == KeyState.ACTIVE
        ]
        return max(active, key=lambda r: r.created_at, default=None)

    def signer(self) -> SigningKey:
        """The active signing key, decrypted once and then kept in memory."""
        record = self.active_record()
        if record is None:
            raise TemporarilyUnavailable(
                "no active signing key", reason="NO_SIGNING_KEY"
            )
        signer = self._signers.get(record.kid)
        if signer is None:
            pem = self._kek.open(dict(record.sealed_private), context=record.kid)
            signer = SigningKey.from_pem(pem, record.alg)
            self._signers[record.kid] = signer
        return signer

    def jwks(self) -> dict[str, object]:
        """The published JWK Set."""
        return published_jwks(self._keyring.records.values())
