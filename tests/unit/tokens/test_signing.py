"""Tests for wif.tokens.signing: the keys the mesh signs with."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from wif.errors import InvalidRequest
from wif.tokens import (
    MAX_TOKEN_BYTES,
    SigningKey,
    TokenTooLarge,
    jwk_thumbprint,
    parse_compact,
    verify_signature,
)
from wif.tokens.public_jwk import PRIVATE_MEMBERS

from .forging import good_claims, private_key_of


def _decoded_segment(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_generate_names_the_key_by_its_thumbprint(alg: str) -> None:
    key = SigningKey.generate(alg)

    assert key.alg == alg
    assert key.kid == jwk_thumbprint(key.public_jwk())


@pytest.mark.parametrize("alg", ["HS256", "ES384", "none", "RS512"])
def test_generate_refuses_other_algorithms(alg: str) -> None:
    with pytest.raises(ValueError, match="cannot sign"):
        SigningKey.generate(alg)


@pytest.mark.parametrize("key_name", ["es256_key", "rs256_key"])
def test_header_is_exactly_alg_kid_typ_in_compact_json(
    key_name: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)

    header, payload, _ = key.sign(good_claims(), typ="at+jwt").split(".")

    expected_header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    assert _decoded_segment(header) == json.dumps(
        expected_header, separators=(",", ":")
    ).encode("ascii")
    assert _decoded_segment(payload) == json.dumps(
        good_claims(), separators=(",", ":")
    ).encode("ascii")


def test_es256_signature_is_raw_r_and_s(es256_key: SigningKey) -> None:
    signature = es256_key.sign(good_claims()).split(".")[2]

    assert len(_decoded_segment(signature)) == 64


def test_rs256_signature_is_the_modulus_length(rs256_key: SigningKey) -> None:
    signature = rs256_key.sign(good_claims()).split(".")[2]

    assert len(_decoded_segment(signature)) == 256


@pytest.mark.parametrize("key_name", ["es256_key", "rs256_key"])
def test_public_jwk_has_no_private_members(
    key_name: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)

    jwk = key.public_jwk()

    assert not PRIVATE_MEMBERS & set(jwk)
    expected = {"kty", "kid", "alg", "use"} | (
        {"crv", "x", "y"} if key.alg == "ES256" else {"n", "e"}
    )
    assert set(jwk) == expected
    assert jwk["use"] == "sig"


@pytest.mark.parametrize("key_name", ["es256_key", "rs256_key"])
def test_repr_never_shows_key_material(
    key_name: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    private_numbers = private_key_of(key).private_numbers()
    secret = getattr(private_numbers, "private_value", None) or getattr(
        private_numbers, "d", None
    )

    text = repr(key) + str(key)

    assert text.count(key.kid) == 2
    assert str(secret) not in text
    assert "PRIVATE" not in text
    assert key.public_jwk().get("x", key.public_jwk().get("n", "-")) not in text


@pytest.mark.parametrize("key_name", ["es256_key", "rs256_key"])
def test_pem_round_trip_keeps_the_key(
    key_name: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)

    pem = key.to_pem()
    loaded = SigningKey.from_pem(pem, key.alg)

    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert loaded.kid == key.kid
    parsed = parse_compact(loaded.sign(good_claims()))
    verify_signature(parsed, key.verification_key())


@dataclass(frozen=True)
class BadPem:
    name: str
    pem: bytes
    alg: str
    match: str


def _pem(
    private_key: ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey,
    password: bytes | None = None,
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


_P256 = ec.generate_private_key(ec.SECP256R1())
_P384 = ec.generate_private_key(ec.SECP384R1())
_RSA_WEAK = rsa.generate_private_key(65537, 1024)  # noqa: S505 - must be refused

BAD_PEMS = [
    BadPem("garbage", b"not a pem", "ES256", "unencrypted PEM"),
    BadPem("encrypted", _pem(_P256, b"hunter22"), "ES256", "unencrypted PEM"),
    BadPem(
        "public-only",
        _P256.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "ES256",
        "unencrypted PEM",
    ),
    BadPem("ed25519", _pem(ed25519.Ed25519PrivateKey.generate()), "ES256", "neither"),
    BadPem("p384-for-es256", _pem(_P384), "ES256", "P-256"),
    BadPem("rsa-for-es256", _pem(_RSA_WEAK), "ES256", "P-256"),
    BadPem("ec-for-rs256", _pem(_P256), "RS256", "RSA key"),
    BadPem("weak-rsa", _pem(_RSA_WEAK), "RS256", "2048"),
    BadPem("hmac-alg", _pem(_P256), "HS256", "cannot sign"),
]


@pytest.mark.parametrize("case", BAD_PEMS, ids=lambda case: case.name)
def test_from_pem_refuses(case: BadPem) -> None:
    with pytest.raises(ValueError, match=case.match):
        SigningKey.from_pem(case.pem, case.alg)


def test_sign_refuses_a_token_over_the_size_limit(es256_key: SigningKey) -> None:
    with pytest.raises(TokenTooLarge) as caught:
        es256_key.sign(good_claims(pad="a" * MAX_TOKEN_BYTES))

    assert isinstance(caught.value, InvalidRequest)
    assert caught.value.reason == "TOKEN_TOO_LARGE"
    assert caught.value.oauth_error == "invalid_request"


def test_sign_accepts_non_ascii_claims(es256_key: SigningKey) -> None:
    claims = good_claims(sub="ünïcødé \U0001f600")

    assert parse_compact(es256_key.sign(claims)).claims == claims


@dataclass(frozen=True)
class BadClaims:
    name: str
    claims: dict[object, object]
    error: type[Exception]


BAD_CLAIMS = [
    BadClaims("nan", {"exp": float("nan")}, ValueError),
    BadClaims("infinity", {"exp": float("inf")}, ValueError),
    BadClaims("number-name", {1: "a"}, ValueError),
    BadClaims("colliding-nested-names", {"act": {1: "a", "1": "b"}}, ValueError),
    BadClaims("lone-surrogate", {"sub": "\ud800"}, ValueError),
    BadClaims("bytes-value", {"sub": b"x"}, TypeError),
]


@pytest.mark.parametrize("case", BAD_CLAIMS, ids=lambda case: case.name)
def test_sign_refuses_claims_json_cannot_carry_strictly(
    case: BadClaims, es256_key: SigningKey
) -> None:
    with pytest.raises(case.error):
        es256_key.sign(case.claims)  # type: ignore[arg-type]


@pytest.mark.parametrize("typ", ["", None])
def test_sign_refuses_an_empty_typ(typ: str, es256_key: SigningKey) -> None:
    with pytest.raises(ValueError, match="typ"):
        es256_key.sign(good_claims(), typ=typ)
