"""Tests for wif.tokens.keys and wif.tokens.public_jwk."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from wif.tokens import KeySet, SigningKey, VerificationKey, jwk_thumbprint
from wif.tokens.public_jwk import PRIVATE_MEMBERS

from .forging import b64, public_jwk_of

_P256 = ec.generate_private_key(ec.SECP256R1())
_P384 = ec.generate_private_key(ec.SECP384R1())
_P521 = ec.generate_private_key(ec.SECP521R1())
_RSA = rsa.generate_private_key(65537, 2048)
_RSA_WEAK = rsa.generate_private_key(65537, 1024)  # noqa: S505 - must be refused

EC_JWK = public_jwk_of(_P256)
EC384_JWK = public_jwk_of(_P384)
RSA_JWK = public_jwk_of(_RSA)
ALL_ALGORITHMS = ("ES256", "ES384", "RS256", "RS384", "RS512")


def _with(jwk: Mapping[str, str], **changes: object) -> dict[str, object]:
    return {**jwk, **changes}


def _without(jwk: Mapping[str, str], name: str) -> dict[str, object]:
    return {key: value for key, value in jwk.items() if key != name}


def _off_curve(jwk: Mapping[str, str]) -> dict[str, object]:
    y = int.from_bytes(_decode(jwk["y"]), "big") ^ 1
    return _with(jwk, y=b64(y.to_bytes(32, "big")))


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Accepted:
    name: str
    jwk: Mapping[str, object]
    alg: str


ACCEPTED = [
    Accepted("p256-inferred", EC_JWK, "ES256"),
    Accepted("p384-inferred", EC384_JWK, "ES384"),
    Accepted("rsa-inferred", RSA_JWK, "RS256"),
    Accepted("p256-explicit", _with(EC_JWK, alg="ES256", use="sig"), "ES256"),
    Accepted("rsa-rs384", _with(RSA_JWK, alg="RS384"), "RS384"),
    Accepted("rsa-rs512", _with(RSA_JWK, alg="RS512", key_ops=["verify"]), "RS512"),
    Accepted("with-kid", _with(EC_JWK, kid="k" * 256), "ES256"),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda case: case.name)
def test_from_jwk_pins_the_algorithm(case: Accepted) -> None:
    key = VerificationKey.from_jwk(case.jwk, ALL_ALGORITHMS)

    assert key.alg == case.alg
    assert key.jwk["alg"] == case.alg
    assert key.kid == case.jwk.get("kid")


@dataclass(frozen=True)
class Refused:
    name: str
    jwk: object
    match: str
    allowed: tuple[str, ...] = field(default=ALL_ALGORITHMS)


REFUSED = [
    Refused("not-an-object", ["EC"], "JSON object"),
    Refused("oct", {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}, "symmetric"),
    Refused("kty-missing", _without(EC_JWK, "kty"), "kty"),
    Refused("kty-okp", _with(EC_JWK, kty="OKP"), "kty"),
    Refused("kty-list", _with(EC_JWK, kty=["EC"]), "kty"),
    Refused("use-enc", _with(EC_JWK, use="enc"), "use"),
    Refused("key-ops-encrypt", _with(EC_JWK, key_ops=["encrypt"]), "key_ops"),
    Refused("key-ops-string", _with(EC_JWK, key_ops="verify"), "key_ops"),
    Refused("alg-not-allowed", EC_JWK, "not allowed", ("RS256",)),
    Refused("alg-hs256", _with(EC_JWK, alg="HS256"), "supported"),
    Refused("alg-none", _with(RSA_JWK, alg="none"), "supported"),
    Refused("alg-list", _with(RSA_JWK, alg=["RS256"]), "string"),
    Refused("es384-on-p256", _with(EC_JWK, alg="ES384"), "curve"),
    Refused("es256-on-p384", _with(EC384_JWK, alg="ES256"), "curve"),
    Refused("rs256-on-ec", _with(EC_JWK, alg="RS256"), "RSA|curve"),
    Refused("es256-on-rsa", _with(RSA_JWK, alg="ES256"), "RSA"),
    Refused("p521", public_jwk_of(_P521), "crv"),
    Refused("crv-missing", _without(EC_JWK, "crv"), "crv"),
    Refused("crv-list", _with(EC_JWK, crv=["P-256"]), "crv"),
    Refused("weak-rsa", public_jwk_of(_RSA_WEAK), "2048"),
    Refused("x-missing", _without(EC_JWK, "x"), "x must"),
    Refused("x-short", _with(EC_JWK, x=b64(bytes(31))), "32 bytes"),
    Refused("x-padded", _with(EC_JWK, x=EC_JWK["x"] + "="), "canonical"),
    Refused("x-junk", _with(EC_JWK, x="!" + EC_JWK["x"][1:]), "canonical"),
    Refused("x-number", _with(EC_JWK, x=1), "x must"),
    Refused("off-curve", _off_curve(EC_JWK), "not a valid EC key"),
    Refused("n-missing", _without(RSA_JWK, "n"), "n must"),
    Refused("e-missing", _without(RSA_JWK, "e"), "e must"),
    Refused("e-empty", _with(RSA_JWK, e=""), "e must"),
    Refused("e-zero", _with(RSA_JWK, e="AA"), "not a valid RSA key"),
    Refused("kid-empty", _with(EC_JWK, kid=""), "kid"),
    Refused("kid-too-long", _with(EC_JWK, kid="k" * 257), "kid"),
    Refused("kid-number", _with(EC_JWK, kid=3), "kid"),
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda case: case.name)
def test_from_jwk_refuses(case: Refused) -> None:
    with pytest.raises(ValueError, match=case.match):
        VerificationKey.from_jwk(case.jwk, case.allowed)  # type: ignore[arg-type]


@pytest.mark.parametrize("member", sorted(PRIVATE_MEMBERS - {"k"}))
def test_from_jwk_refuses_private_member(member: str) -> None:
    base = EC_JWK if member == "d" else RSA_JWK

    with pytest.raises(ValueError, match=f"private members \\({member}\\)"):
        VerificationKey.from_jwk(_with(base, **{member: "AQAB"}), ALL_ALGORITHMS)


def test_verification_key_keeps_only_public_members() -> None:
    key = VerificationKey.from_jwk(_with(EC_JWK, kid="a", x5c=["MIIB"]), ["ES256"])

    assert dict(key.jwk) == {**EC_JWK, "kid": "a", "alg": "ES256", "use": "sig"}
    assert EC_JWK["x"] not in repr(key)


def test_from_jwks_keeps_good_keys_and_explains_the_rest() -> None:
    document = {
        "keys": [
            _with(EC_JWK, kid="good-ec"),
            _with(RSA_JWK, kid="good-rsa"),
            _with(EC_JWK, kid="private", d="AQAB"),
            EC384_JWK,
            _with(EC_JWK, kid="twice"),
            _with(RSA_JWK, kid="twice"),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            "not a key",
        ]
    }

    keys, problems = KeySet.from_jwks(document, ALL_ALGORITHMS)

    assert keys.kids == ("good-ec", "good-rsa")
    assert problems == [
        "kid 'twice' is repeated: every copy dropped",
        "key 2: the JWK holds private members (d); publish public keys only",
        "key 3: no kid, so no token could select it",
        "key 6: symmetric keys (kty oct) never verify tokens here",
        "key 7: a JWK must be a JSON object",
    ]


def test_from_jwks_drops_a_repeated_kid_even_when_one_copy_is_bad() -> None:
    document = {"keys": [_with(EC_JWK, kid="a"), _with(EC_JWK, kid="a", use="enc")]}

    keys, problems = KeySet.from_jwks(document, ALL_ALGORITHMS)

    assert len(keys) == 0
    assert problems[0] == "kid 'a' is repeated: every copy dropped"


@pytest.mark.parametrize(
    "document",
    [{}, {"keys": {}}, {"keys": "x"}, [EC_JWK], None],
    ids=["no-keys", "keys-object", "keys-string", "bare-list", "null"],
)
def test_from_jwks_refuses_a_document_without_a_keys_array(document: object) -> None:
    with pytest.raises(ValueError, match="keys array"):
        KeySet.from_jwks(document, ALL_ALGORITHMS)  # type: ignore[arg-type]


def test_key_set_finds_keys_by_kid_only() -> None:
    keys, _ = KeySet.from_jwks({"keys": [_with(EC_JWK, kid="a")]}, ["ES256"])

    assert keys.get("a") is keys["a"]
    assert keys.get("b") is None
    assert "a" in keys
    assert "b" not in keys


def test_key_set_cannot_be_changed() -> None:
    keys, _ = KeySet.from_jwks({"keys": [_with(EC_JWK, kid="a")]}, ["ES256"])

    with pytest.raises(TypeError):
        keys["b"] = keys["a"]  # type: ignore[index]


def test_key_set_refuses_a_key_without_kid() -> None:
    with pytest.raises(ValueError, match="needs a kid"):
        KeySet([VerificationKey.from_jwk(EC_JWK, ["ES256"])])


def test_key_set_refuses_two_keys_with_one_kid() -> None:
    key = VerificationKey.from_jwk(_with(EC_JWK, kid="a"), ["ES256"])

    with pytest.raises(ValueError, match="share the kid"):
        KeySet([key, key])


# A fixed P-256 key, so that the thumbprint below is the same on every run.
_FIXED_EC = ec.derive_private_key(
    0x7A3C_19F0_5D2E_8B41_C6A7_0F93_E8D2_B5C4, ec.SECP256R1()
)


def test_thumbprint_matches_a_hand_computed_ec_value() -> None:
    jwk = public_jwk_of(_FIXED_EC)
    # RFC 7638 section 3: required members only, sorted, no whitespace.
    text = '{"crv":"P-256","kty":"EC","x":"' + jwk["x"] + '","y":"' + jwk["y"] + '"}'
    expected = b64(hashlib.sha256(text.encode("ascii")).digest())

    thumbprint = jwk_thumbprint({"y": jwk["y"], "kid": "ignored", **jwk, "use": "sig"})

    assert thumbprint == expected


def test_thumbprint_matches_a_hand_computed_rsa_value() -> None:
    jwk = public_jwk_of(_RSA)
    text = '{"e":"' + jwk["e"] + '","kty":"RSA","n":"' + jwk["n"] + '"}'
    expected = b64(hashlib.sha256(text.encode("ascii")).digest())

    assert jwk_thumbprint(_with(jwk, alg="RS256")) == expected


def test_thumbprint_is_the_signing_key_kid() -> None:
    key = SigningKey(_FIXED_EC, "ES256")

    assert key.kid == jwk_thumbprint(public_jwk_of(_FIXED_EC))


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "AA"},
        {"kty": ["EC"]},
        _without(EC_JWK, "y"),
        _with(RSA_JWK, e=3),
    ],
    ids=["oct", "kty-list", "member-missing", "member-not-string"],
)
def test_thumbprint_refuses(jwk: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="thumbprint"):
        jwk_thumbprint(jwk)
