"""Signing keys and the tokens the mesh signs with them (RFC 7515, RFC 7519).

A :class:`SigningKey` holds a private key and the one algorithm it signs
with. Its ``kid`` is the RFC 7638 thumbprint of its public key, so the same
key always has the same id wherever it is loaded. Nothing here ever shows the
private key: ``repr`` names only the algorithm and the kid, and
:meth:`SigningKey.to_pem` is the one way out, for encryption at rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk as jose_jwk

from wif.tokens import base64url
from wif.tokens.compact import MAX_TOKEN_BYTES
from wif.tokens.errors import TokenTooLarge
from wif.tokens.keys import VerificationKey, jwk_thumbprint
from wif.tokens.public_jwk import MIN_RSA_BITS
from wif.tokens.strict_json import loads_object

#: The algorithms the mesh signs with: ES256 by default, RS256 on request.
SIGNING_ALGORITHMS: Final = ("ES256", "RS256")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class SigningKey:
    """A private key that signs tokens with one algorithm, ES256 or RS256."""

    __slots__ = ("_alg", "_jose_key", "_kid", "_private_key", "_public_members")

    def __init__(self, private_key: PrivateKey, alg: str) -> None:
        """Wrap ``private_key`` for signing with ``alg``.

        Raises:
            ValueError: ``alg`` is not ES256 or RS256, or the key does not
                fit it (ES256 needs P-256; RS256 needs RSA of 2048 bits or
                more).
        """
        _check_key_fits(private_key, alg)
        self._private_key = private_key
        self._alg = alg

        self._public_members = public_members(private_key.public_key())
        self._kid = jwk_thumbprint(self._public_members)
        self._jose_key = jose_jwk.construct(private_key, alg)

    @classmethod
    def generate(cls, alg: str = "ES256") -> SigningKey:
        """Create a new random key for ``alg``.

        Raises:
            ValueError: ``alg`` is not ES256 or RS256.
        """
        _check_algorithm(alg)
        if alg == "RS256":
            return cls(rsa.generate_private_key(65537, MIN_RSA_BITS), alg)
        return cls(ec.generate_private_key(ec.SECP256R1()), alg)

    @classmethod
    def from_pem(cls, pem: bytes, alg: str) -> SigningKey:
        """Load an unencrypted PKCS#8 (or traditional) PEM private key.

        Raises:
            ValueError: the PEM holds no readable unencrypted private key,
                or the key does not fit ``alg``.
        """
        try:
            private_key = serialization.load_pem_private_key(pem, password=None)
        except (TypeError, ValueError) as exc:
            raise ValueError("not an unencrypted PEM private key") from exc

        if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the PEM holds neither an EC nor an RSA private key")
        return cls(private_key, alg)

    @property
    def alg(self) -> str:
        """The one algorithm this key signs with."""
        return self._alg

    @property
    def kid(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of the public key."""
        return self._kid

    def to_pem(self) -> bytes:
        """Return the private key as unencrypted PKCS#8 PEM, for sealing at rest."""
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, str]:
        """Return the public JWK to publish: public members, kid, alg and use."""
        return {
            **self._public_members,
            "kid": self._kid,
            "alg": self._alg,
            "use": "sig",
        }

    def verification_key(self) -> VerificationKey:
        """Return the :class:`VerificationKey` that checks this key's tokens."""
        return VerificationKey.from_jwk(self.public_jwk(), (self._alg,))

    def sign(self, claims: Mapping[str, Any], typ: str = "JWT") -> str:
        """Sign ``claims`` into a compact JWS with header {alg, kid, typ}.

        Header and payload are compact JSON; the result always parses under
        :func:`wif.tokens.compact.parse_compact`.

        Raises:
            ValueError: ``typ`` is empty, or ``claims`` has a non-string
                member name or a value JSON cannot carry strictly (NaN, a lone
                surrogate, names that collide once written).
            TypeError: a claim value is not JSON-serialisable.
            TokenTooLarge: the token would exceed MAX_TOKEN_BYTES.
        """
        return sign_compact(self._alg, self._kid, claims, typ, self._jose_key.sign)

    def __repr__(self) -> str:
        return f"SigningKey(alg={self._alg!r}, kid={self._kid!r})"


class Signer(Protocol):
    """What the ITS signs with: a key in memory, or one held by an HSM."""

    @property
    def alg(self) -> str:
        """The one algorithm this key signs with."""
        ...

    @property
    def kid(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of the public key."""
        ...

    def public_jwk(self) -> dict[str, str]:
        """The public JWK to publish: public members, kid, alg and use."""
        ...

    def sign(self, claims: Mapping[str, Any], typ: str = "JWT") -> str:
        """Sign ``claims`` into a compact JWS with header {alg, kid, typ}."""
        ...


def sign_compact(
    alg: str,
    kid: str,
    claims: Mapping[str, Any],
    typ: str,
    sign_bytes: Callable[[bytes], bytes],
) -> str:
    """Build a compact JWS (RFC 7515 section 7.1) whose signature ``sign_bytes``
    makes over the signing input, in the JWS form of ``alg`` (for ES256 the
    64-byte r || s of RFC 7518 section 3.4, not DER).

    Raises:
        ValueError: ``typ`` is empty, or ``claims`` cannot be written strictly.
        TokenTooLarge: the token would exceed MAX_TOKEN_BYTES.
    """
    if not isinstance(typ, str) or not typ:
        raise ValueError("typ must be a non-empty string")

    header = {"alg": alg, "kid": kid, "typ": typ}
    signing_input = f"{_encode_object(header)}.{_encode_object(claims)}"
    signature = sign_bytes(signing_input.encode("ascii"))
    token = f"{signing_input}.{base64url.encode(signature)}"

    if len(token) > MAX_TOKEN_BYTES:
        raise TokenTooLarge(
            f"the token would be {len(token)} bytes; at most "
            f"{MAX_TOKEN_BYTES} are allowed",
            metadata={"maxBytes": str(MAX_TOKEN_BYTES)},
        )
    return token


def _check_algorithm(alg: str) -> None:
    if alg not in SIGNING_ALGORITHMS:
        raise ValueError(f"cannot sign with {alg!r}; use one of {SIGNING_ALGORITHMS}")


def _check_key_fits(private_key: PrivateKey, alg: str) -> None:
    _check_algorithm(alg)

    if alg == "ES256" and not _is_p256(private_key):
        raise ValueError("ES256 needs a P-256 private key")

    if alg == "RS256" and not _is_strong_rsa(private_key):
        raise ValueError(f"RS256 needs an RSA key of {MIN_RSA_BITS} bits or more")


def _is_p256(private_key: PrivateKey) -> bool:
    return isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        private_key.curve, ec.SECP256R1
    )


def _is_strong_rsa(private_key: PrivateKey) -> bool:
    return (
        isinstance(private_key, rsa.RSAPrivateKey)
        and private_key.key_size >= MIN_RSA_BITS
    )


def public_members(
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
) -> dict[str, str]:
    """The RFC 7518 public members of a P-256 or RSA key, coordinates at full
    length; the RFC 7638 thumbprint is taken over them."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        point = public_key.public_numbers()
        # RFC 7518 section 6.2.1.2: coordinates are written at full length.
        size = (public_key.curve.key_size + 7) // 8
        x, y = _uint(point.x, size), _uint(point.y, size)
        return {"kty": "EC", "crv": "P-256", "x": x, "y": y}

    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}


def _uint(value: int, size: int = 0) -> str:
    size = size or (value.bit_length() + 7) // 8
    return base64url.encode(value.to_bytes(size, "big"))


def _encode_object(members: Mapping[str, Any]) -> str:
    if not all(isinstance(name, str) for name in members):
        raise ValueError("claim names must be strings")

    text = json.dumps(
        dict(members), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    data = text.encode("utf-8")
    # Never mint what the mesh's own strict parser would refuse.
    loads_object(data)
    return base64url.encode(data)
