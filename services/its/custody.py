"""Where the private part of a signing key lives: sealed in etcd, or in an HSM.

A custody makes new keys and opens the ones records point to. Sealed custody
keeps the private key in the record, encrypted under the key-encryption key
(see :mod:`wif.envelope`); PKCS#11 custody leaves it in a token and keeps
only the token's CKA_ID in the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.its.pkcs11 import Pkcs11Token
from wif.envelope import KeyEncryptionKey
from wif.keyring import KeyRecord, KeyState
from wif.tokens import Signer, SigningKey


@dataclass(frozen=True)
class NewKey:
    """A key just made, and what its record must hold to find it again."""

    signer: Signer
    sealed_private: dict[str, str]
    hsm_key_id: str = ""

    def record(self, state: KeyState, now: int, activate_at: int) -> KeyRecord:
        """The record of this key, created ``now`` in ``state``."""
        return KeyRecord(
            kid=self.signer.kid,
            alg=self.signer.alg,
            state=state,
            created_at=now,
            public_jwk=self.signer.public_jwk(),
            sealed_private=self.sealed_private,
            activate_at=activate_at,
            hsm_key_id=self.hsm_key_id,
        )


class KeyCustody(Protocol):
    """Makes signing keys and opens them again from their records."""

    def create(self, alg: str) -> NewKey:
        """A new key for ``alg``."""
        ...

    def load(self, record: KeyRecord) -> Signer:
        """The signer of ``record``; raises ``ValueError`` if it cannot open."""
        ...

    def destroy(self, record: KeyRecord) -> None:
        """Forgets the private key of a deleted record, where it is kept apart."""
        ...


class SealedCustody:
    """Private keys sealed under the KEK inside their etcd records."""

    def __init__(self, kek: KeyEncryptionKey) -> None:
        self._kek = kek

    def create(self, alg: str) -> NewKey:
        """A new key generated in memory, its PEM sealed under the KEK."""
        key = SigningKey.generate(alg)
        return NewKey(key, self._kek.seal(key.to_pem(), context=key.kid))

    def load(self, record: KeyRecord) -> Signer:
        """Opens the sealed private part; raises SealError or ValueError."""
        pem = self._kek.open(dict(record.sealed_private), context=record.kid)
        key = SigningKey.from_pem(pem, record.alg)
        if key.kid != record.kid:
            raise ValueError(f"the sealed key of {record.kid} has another kid")
        return key

    def destroy(self, record: KeyRecord) -> None:
        """Nothing to do: the private part goes with the record."""


class Pkcs11Custody:
    """Private keys generated and kept inside a PKCS#11 token."""

    def __init__(self, token: Pkcs11Token) -> None:
        self._token = token

    def create(self, alg: str) -> NewKey:
        """A new key pair generated inside the token."""
        signer, key_id = self._token.generate(alg)
        return NewKey(signer, {}, hsm_key_id=key_id)

    def load(self, record: KeyRecord) -> Signer:
        """The token's key named by the record; raises ValueError if missing."""
        if not record.hsm_key_id:
            raise ValueError(f"key {record.kid} is not held by the PKCS#11 token")
        signer = self._token.load(record.hsm_key_id, record.alg)
        if signer.kid != record.kid:
            raise ValueError(f"the token's key for {record.kid} has another kid")
        return signer

    def destroy(self, record: KeyRecord) -> None:
        """Destroys the key pair in the token."""
        if record.hsm_key_id:
            self._token.destroy(record.hsm_key_id)
