"""The ITS's view of its signing keys: the records from etcd and the active signer."""

from __future__ import annotations

import logging

from services.its.custody import KeyCustody
from services.its.pkcs11 import Pkcs11Error
from wif.envelope import SealError
from wif.errors import TemporarilyUnavailable
from wif.keyring import KeyRecord, KeyringFollower, KeyState, published_jwks
from wif.store import EtcdStore
from wif.tokens import Signer

log = logging.getLogger(__name__)


class KeyManager:
    """Follows the key records in etcd and opens the active signer once."""

    def __init__(self, store: EtcdStore, custody: KeyCustody) -> None:
        self._custody = custody
        self._keyring = KeyringFollower(store)
        self._signers: dict[str, Signer] = {}

    async def follow(self) -> None:
        """Follows the key records until cancelled."""
        await self._keyring.follow()

    async def wait_until_loaded(self, timeout: float) -> None:
        """Waits until an active key is known; raises TimeoutError."""
        await self._keyring.wait_until(
            lambda: self.active_record() is not None, timeout
        )

    def records(self) -> list[KeyRecord]:
        """Every key record, newest first."""
        records = self._keyring.records.values()
        return sorted(records, key=lambda r: (r.created_at, r.kid), reverse=True)

    def active_record(self) -> KeyRecord | None:
        """The newest active key record, if any."""
        active = [r for r in self.records() if r.state == KeyState.ACTIVE]
        return active[0] if active else None

    def signer(self) -> tuple[KeyRecord, Signer]:
        """The active key's record and signer, opened once and then kept.

        Raises:
            TemporarilyUnavailable: no key is active, or the active key
                cannot be opened (wrong KEK, missing from the token).
        """
        record = self.active_record()
        if record is None:
            raise TemporarilyUnavailable(
                "no active signing key", reason="NO_SIGNING_KEY"
            )
        signer = self._signers.get(record.kid)
        if signer is None:
            signer = self._open(record)
            self._forget_gone_keys()
            self._signers[record.kid] = signer
        return record, signer

    def jwks(self) -> dict[str, object]:
        """The published JWK Set."""
        return published_jwks(self._keyring.records.values())

    def _open(self, record: KeyRecord) -> Signer:
        try:
            return self._custody.load(record)
        except (SealError, Pkcs11Error, ValueError) as exc:
            log.error(
                "cannot open the active signing key: %s",
                exc,
                extra={"fields": {"key_id": record.kid}},
            )
            raise TemporarilyUnavailable(
                "the active signing key cannot be opened", reason="NO_SIGNING_KEY"
            ) from exc

    def _forget_gone_keys(self) -> None:
        # Only an active key signs; drop retired, revoked and deleted ones.
        live = self._keyring.records
        for kid in list(self._signers):
            if kid not in live or live[kid].state != KeyState.ACTIVE:
                del self._signers[kid]
