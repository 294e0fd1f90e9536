"""Signing keys held by a PKCS#11 token (a hardware security module).

The ITS asks the token to generate each key pair; the private key is created
sensitive and not extractable, so it never leaves the token, and the ITS
keeps only the key's CKA_ID (in the etcd record) and a handle to it. The
public key is read back once to publish it and to compute the RFC 7638 kid.

PKCS#11's CKM_ECDSA returns the signature as the raw ``r || s`` that JWS
needs for ES256 (RFC 7518 section 3.4), not DER. The digest is taken here and
the token signs it with CKM_ECDSA, since not every token offers
CKM_ECDSA_SHA256 (SoftHSM2 does not). RS256 uses CKM_SHA256_RSA_PKCS.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from wif.tokens import jwk_thumbprint, sign_compact
from wif.tokens.signing import public_members

log = logging.getLogger(__name__)

#: RSA keys the token makes for RS256.
RSA_BITS = 2048

_ES256_SIGNATURE_BYTES = 64
_KEY_ID_BYTES = 16


class Pkcs11Error(Exception):
    """The token refused an operation, or holds no key with the given id."""


class Pkcs11Signer:
    """A key pair inside a PKCS#11 token; satisfies :class:`wif.tokens.Signer`."""

    def __init__(self, private_key: Any, public_jwk: dict[str, str]) -> None:
        self._private_key = private_key
        self._public_jwk = public_jwk

    @property
    def alg(self) -> str:
        """The one algorithm this key signs with."""
        return self._public_jwk["alg"]

    @property
    def kid(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of the public key."""
        return self._public_jwk["kid"]

    def public_jwk(self) -> dict[str, str]:
        """The public JWK to publish: public members, kid, alg and use."""
        return dict(self._public_jwk)

    def sign(self, claims: Mapping[str, Any], typ: str = "JWT") -> str:
        """Sign ``claims`` into a compact JWS inside the token.

        Raises:
            Pkcs11Error: the token refused to sign.
            TokenTooLarge: the token would exceed 8 KB.
        """
        return sign_compact(self.alg, self.kid, claims, typ, self._sign_bytes)

    def _sign_bytes(self, data: bytes) -> bytes:
        try:
            if self.alg == "RS256":
                return bytes(
                    self._private_key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
                )
            digest = hashlib.sha256(data).digest()
            signature = bytes(self._private_key.sign(digest, mechanism=Mechanism.ECDSA))
        except pkcs11.PKCS11Error as exc:
            raise Pkcs11Error(f"the token refused to sign: {exc!r}") from exc
        if len(signature) != _ES256_SIGNATURE_BYTES:
            raise Pkcs11Error("the token's ECDSA signature is not 64 bytes of r || s")
        return signature

    def __repr__(self) -> str:
        return f"Pkcs11Signer(alg={self.alg!r}, kid={self.kid!r})"


class Pkcs11Token:
    """A logged-in session on one token, making and finding signing keys."""

    def __init__(self, module: str, token_label: str, pin: str, key_label: str) -> None:
        """Open a read-write user session on the token labelled ``token_label``.

        Raises:
            Pkcs11Error: the module cannot be loaded, the token is missing or
                the PIN is refused.
        """
        try:
            library = pkcs11.lib(module)
            token = library.get_token(token_label=token_label)
            self._session = token.open(rw=True, user_pin=pin)
        except (OSError, RuntimeError, pkcs11.PKCS11Error) as exc:
            raise Pkcs11Error(
                f"cannot open token {token_label!r} with {module}: {exc!r}"
            ) from exc
        self._key_label = key_label

    def generate(self, alg: str) -> tuple[Pkcs11Signer, str]:
        """A new key pair for ``alg`` inside the token, and its CKA_ID in hex."""
        key_id = secrets.token_bytes(_KEY_ID_BYTES)
        private_template = {
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.PRIVATE: True,
        }
        options: dict[str, Any] = {
            "id": key_id,
            "label": self._key_label,
            "store": True,
            "private_template": private_template,
        }
        try:
            if alg == "RS256":
                public, private = self._session.generate_keypair(
                    KeyType.RSA, RSA_BITS, **options
                )
            else:
                curve = encode_named_curve_parameters("secp256r1")
                params = self._session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: curve}, local=True
                )
                public, private = params.generate_keypair(**options)
        except pkcs11.PKCS11Error as exc:
            raise Pkcs11Error(f"the token cannot generate a key: {exc!r}") from exc
        signer = Pkcs11Signer(private, _public_jwk(public, alg))
        log.info(
            "generated a key in the token", extra={"fields": {"key_id": signer.kid}}
        )
        return signer, key_id.hex()

    def load(self, key_id: str, alg: str) -> Pkcs11Signer:
        """The key pair whose CKA_ID is ``key_id`` (hex); raises Pkcs11Error."""
        private = self._find(key_id, ObjectClass.PRIVATE_KEY)
        public = self._find(key_id, ObjectClass.PUBLIC_KEY)
        return Pkcs11Signer(private, _public_jwk(public, alg))

    def destroy(self, key_id: str) -> None:
        """Destroys both halves of the key pair ``key_id``, if still present."""
        for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            try:
                self._find(key_id, cls).destroy()
            except Pkcs11Error:
                continue

    def close(self) -> None:
        """Logs out and closes the session."""
        self._session.close()

    def _find(self, key_id: str, cls: ObjectClass) -> Any:
        try:
            return self._session.get_key(object_class=cls, id=bytes.fromhex(key_id))
        except (ValueError, pkcs11.PKCS11Error) as exc:
            raise Pkcs11Error(f"no {cls.name} with id {key_id} in the token") from exc


def _public_jwk(public: Any, alg: str) -> dict[str, str]:
    """The public JWK of a token's public key object."""
    if alg == "RS256":
        key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey = rsa.RSAPublicNumbers(
            int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public[Attribute.MODULUS], "big"),
        ).public_key()
    else:
        loaded = load_der_public_key(encode_ec_public_key(public))
        if not isinstance(loaded, ec.EllipticCurvePublicKey) or not isinstance(
            loaded.curve, ec.SECP256R1
        ):
            raise Pkcs11Error("the token's key is not a P-256 key")
        key = loaded
    members = public_members(key)
    return {**members, "kid": jwk_thumbprint(members), "alg": alg, "use": "sig"}
