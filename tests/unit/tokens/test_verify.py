"""Tests for wif.tokens.verify: key selection and signature checks."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wif.errors import InvalidGrant
from wif.tokens import (
    KeySet,
    ParsedToken,
    SigningKey,
    VerificationKey,
    parse_compact,
    select_key,
    verify_signature,
)

from .forging import (
    AUDIENCE,
    assemble,
    b64,
    good_claims,
    private_key_of,
    segment,
    sign_raw,
)


def _key_set(*keys: SigningKey) -> KeySet:
    jwks = {"keys": [key.public_jwk() for key in keys]}
    key_set, problems = KeySet.from_jwks(jwks, ["ES256", "RS256"])
    assert problems == []
    return key_set


def _verify(token: str, keys: KeySet) -> None:
    parsed = parse_compact(token)
    verify_signature(parsed, select_key(parsed, keys))


def _reason(token: str, keys: KeySet) -> str:
    with pytest.raises(InvalidGrant) as caught:
        _verify(token, keys)
    return caught.value.reason


@pytest.mark.parametrize("key_name", ["es256_key", "rs256_key"])
def test_round_trip_sign_parse_verify(
    key_name: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    token = key.sign(good_claims())

    parsed = parse_compact(token)
    verify_signature(parsed, select_key(parsed, _key_set(key)))

    assert parsed.claims == good_claims()


@pytest.mark.parametrize("key_name", ["es256_key", "rs256_key"])
def test_token_signed_without_python_jose_verifies(
    key_name: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}

    _verify(sign_raw(key, header, good_claims()), _key_set(key))


@pytest.mark.parametrize("key_name", ["es256_key", "rs256_key"])
def test_pyjwt_verifies_tokens_the_mesh_signs(
    key_name: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    public_key = jwt.PyJWK(key.public_jwk()).key

    claims = jwt.decode(
        key.sign(good_claims(exp=2_000_000_000)),
        public_key,
        algorithms=[key.alg],
        audience=AUDIENCE,
    )

    assert claims == good_claims(exp=2_000_000_000)


def test_select_key_requires_a_kid(es256_key: SigningKey) -> None:
    token = sign_raw(es256_key, {"alg": "ES256"}, good_claims())

    assert _reason(token, _key_set(es256_key)) == "MISSING_KEY_ID"


def test_select_key_names_the_unknown_kid(es256_key: SigningKey) -> None:
    parsed = parse_compact(sign_raw(es256_key, {"alg": "ES256", "kid": "nope"}, {}))

    with pytest.raises(InvalidGrant) as caught:
        select_key(parsed, _key_set(es256_key))

    assert caught.value.reason == "UNKNOWN_KEY_ID"
    assert caught.value.metadata == {"kid": "nope"}


def test_rs256_header_against_an_es256_key_is_an_algorithm_mismatch(
    es256_key: SigningKey, rs256_key: SigningKey
) -> None:
    header = {"alg": "RS256", "kid": es256_key.kid}
    token = sign_raw(rs256_key, header, good_claims())

    assert _reason(token, _key_set(es256_key, rs256_key)) == "ALGORITHM_MISMATCH"


def test_hs256_forged_with_the_public_pem_is_refused(es256_key: SigningKey) -> None:
    public_pem = (
        private_key_of(es256_key)
        .public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    header = {"alg": "HS256", "kid": es256_key.kid, "typ": "JWT"}
    signing_input = f"{segment(header)}.{segment(good_claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"

    with pytest.raises(InvalidGrant) as caught:
        parse_compact(token)

    assert caught.value.reason == "ALG_NOT_ALLOWED"


def test_hs256_slipped_past_the_parser_is_still_refused(es256_key: SigningKey) -> None:
    secret = json.dumps(es256_key.public_jwk()).encode()
    signing_input = f"{segment({'alg': 'HS256', 'kid': es256_key.kid})}.{segment({})}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    parsed = ParsedToken(
        {"alg": "HS256", "kid": es256_key.kid}, {}, signing_input.encode(), mac
    )

    with pytest.raises(InvalidGrant) as caught:
        verify_signature(parsed, es256_key.verification_key())

    assert caught.value.reason == "ALGORITHM_MISMATCH"


def test_a_different_key_with_the_same_kid_is_a_bad_signature(
    es256_key: SigningKey, other_es256_key: SigningKey
) -> None:
    header = {"alg": "ES256", "kid": es256_key.kid}
    token = sign_raw(other_es256_key, header, good_claims())

    # The other key is in the set too: keys are never tried one after another.
    assert _reason(token, _key_set(es256_key, other_es256_key)) == "BAD_SIGNATURE"


@pytest.mark.parametrize("key_name", ["es256_key", "rs256_key"])
def test_tampered_payload_is_a_bad_signature(
    key_name: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    header, _, signature = key.sign(good_claims()).split(".")
    tampered = f"{header}.{segment(good_claims(sub='admin'))}.{signature}"

    assert _reason(tampered, _key_set(key)) == "BAD_SIGNATURE"


def _flip_last_byte(signature: bytes) -> bytes:
    return signature[:-1] + bytes([signature[-1] ^ 1])


@pytest.mark.parametrize(
    "change",
    [_flip_last_byte, lambda s: s[:-1], lambda s: s + b"\x00", lambda s: s[:1]],
    ids=["flipped-bit", "one-byte-short", "one-byte-long", "one-byte"],
)
@pytest.mark.parametrize("key_name", ["es256_key", "rs256_key"])
def test_damaged_signature_is_a_bad_signature(
    key_name: str, change: object, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    parsed = parse_compact(key.sign(good_claims()))
    damaged = replace(parsed, signature=change(parsed.signature))  # type: ignore[operator]

    with pytest.raises(InvalidGrant) as caught:
        verify_signature(damaged, key.verification_key())

    assert caught.value.reason == "BAD_SIGNATURE"


def test_der_encoded_es256_signature_is_a_bad_signature(es256_key: SigningKey) -> None:
    header = {"alg": "ES256", "kid": es256_key.kid}
    signing_input = f"{segment(header)}.{segment(good_claims())}".encode()
    private_key = private_key_of(es256_key)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    der = private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))

    token = assemble(header, good_claims(), der)

    assert _reason(token, _key_set(es256_key)) == "BAD_SIGNATURE"


def test_verification_key_for_another_key_type_is_refused(
    rs256_key: SigningKey,
) -> None:
    key = VerificationKey.from_jwk(rs256_key.public_jwk(), ["RS256"])
    parsed = parse_compact(assemble({"alg": "ES256", "kid": rs256_key.kid}, {}))

    with pytest.raises(InvalidGrant) as caught:
        verify_signature(parsed, key)

    assert caught.value.reason == "ALGORITHM_MISMATCH"
    assert caught.value.metadata == {"alg": "ES256", "keyAlg": "RS256"}
