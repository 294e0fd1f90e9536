"""Envelope encryption of private keys at rest.

A private key is sealed under a fresh AES-256-GCM data key, and the data key
is sealed under the key-encryption key (KEK), which never leaves the process
that loaded it. The key id is bound into both seals as associated data, so
a sealed key cannot be moved to another record unnoticed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


class SealError(Exception):
    """A sealed key cannot be opened: wrong KEK, or the record was altered."""


@dataclass(frozen=True)
class KeyEncryptionKey:
    """A 256-bit key-encryption key; its ``id`` is a hash, never the key."""

    material: bytes

    def __post_init__(self) -> None:
        if len(self.material) != 32:
            raise ValueError("a key-encryption key must be 32 bytes")

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(id={self.id})"

    @property
    def id(self) -> str:
        """A short public name for the KEK, for records and logs."""
        return hashlib.sha256(b"wif-kek:" + self.material).hexdigest()[:16]

    @classmethod
    def from_text(cls, text: str) -> KeyEncryptionKey:
        """Reads a KEK written as base64 of 32 bytes."""
        try:
            return cls(base64.b64decode(text.strip(), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ValueError("must be base64 of 32 random bytes") from exc

    @classmethod
    def from_file(cls, path: Path) -> KeyEncryptionKey:
        """Reads a KEK file holding base64 of 32 bytes."""
        return cls.from_text(path.read_text(encoding="ascii"))

    @staticmethod
    def generate_text() -> str:
        """A fresh KEK as base64, for development set-ups."""
        return _b64(os.urandom(32))

    def seal(self, secret: bytes, context: str) -> dict[str, str]:
        """Encrypts ``secret`` under a new data key; returns the sealed record."""
        data_key = AESGCM.generate_key(bit_length=256)
        nonce, key_nonce = os.urandom(_NONCE_BYTES), os.urandom(_NONCE_BYTES)
        aad = context.encode()
        return {
            "kek_id": self.id,
            "nonce": _b64(nonce),
            "ciphertext": _b64(AESGCM(data_key).encrypt(nonce, secret, aad)),
            "key_nonce": _b64(key_nonce),
            "wrapped_key": _b64(
                AESGCM(self.material).encrypt(key_nonce, data_key, aad)
            ),
        }

    def open(self, sealed: dict[str, str], context: str) -> bytes:
        """Decrypts a record made by :meth:`seal`; raises ``SealError``."""
        if sealed.get("kek_id") != self.id:
            raise SealError("sealed under another key-encryption key")
        aad = context.encode()
        try:
            data_key = AESGCM(self.material).decrypt(
                _unb64(sealed["key_nonce"]),
                _unb64(sealed["wrapped_key"]),
                aad,
            )
            return AESGCM(data_key).decrypt(
                _unb64(sealed["nonce"]),
                _unb64(sealed["ciphertext"]),
                aad,
            )
        except (InvalidTag, KeyError, TypeError, binascii.Error, ValueError) as exc:
            raise SealError("the sealed key cannot be opened") from exc
