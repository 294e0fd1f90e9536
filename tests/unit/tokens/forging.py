"""Hand-built tokens for the token tests.

These helpers assemble compact tokens without the code under test, and sign
with ``cryptography`` directly rather than through python-jose, so that the
tests can produce every shape of token an attacker could send.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from wif.tokens import SigningKey

NOW = 1_750_000_000
ISSUER = "https://ci.example.test"
AUDIENCE = "https://sts.mesh.test"

#: A signature segment of the right length for ES256 that verifies nothing.
DUMMY_SIGNATURE = bytes(64)


def b64(data: bytes) -> str:
    """Encode as base64url without padding, the way a correct encoder does."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: object) -> str:
    """Encode one segment: bytes as they are, str as UTF-8, else compact JSON."""
    if isinstance(value, bytes):
        return b64(value)
    if isinstance(value, str):
        return b64(value.encode("utf-8", "surrogatepass"))
    return b64(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def assemble(header: object, claims: object, signature: bytes = DUMMY_SIGNATURE) -> str:
    """Join three segments; the signature verifies nothing unless it was made so."""
    return f"{segment(header)}.{segment(claims)}.{b64(signature)}"


def good_header(**overrides: object) -> dict[str, object]:
    """An acceptable ES256 header, changed by ``overrides``."""
    return {"alg": "ES256", "kid": "key-1", "typ": "JWT", **overrides}


def good_claims(**overrides: object) -> dict[str, object]:
    """A claim set that passes every check at NOW, changed by ``overrides``."""
    claims: dict[str, object] = {
        "iss": ISSUER,
        "sub": "repo:example/app:ref:refs/heads/main",
        "aud": AUDIENCE,
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 300,
    }
    return {**claims, **overrides}


def private_key_of(key: SigningKey) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """Recover the private key of ``key`` through its PEM."""
    private_key = serialization.load_pem_private_key(key.to_pem(), password=None)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return private_key


def sign_raw(key: SigningKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Sign with ``cryptography`` alone (ES256 as raw r||s, or RS256)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    data = signing_input.encode("ascii")
    private_key = private_key_of(key)

    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def public_jwk_of(
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> dict[str, str]:
    """Write the public JWK of ``private_key`` by hand, without the module."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        point = private_key.public_key().public_numbers()
        size = (private_key.curve.key_size + 7) // 8
        crv = {256: "P-256", 384: "P-384", 521: "P-521"}[private_key.curve.key_size]
        x, y = point.x.to_bytes(size, "big"), point.y.to_bytes(size, "big")
        return {"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)}

    numbers = private_key.public_key().public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    return {"kty": "RSA", "n": b64(n), "e": b64(e)}
