"""Tests for services.its.pkcs11: keys inside a real SoftHSM2 token."""

from __future__ import annotations

import jwt
import pkcs11
import pytest

from services.its.pkcs11 import Pkcs11Error, Pkcs11Signer, Pkcs11Token
from tests.support.softhsm import SoftHsmToken
from wif.tokens import jwk_thumbprint, parse_compact, verify_signature
from wif.tokens.keys import VerificationKey
from wif.tokens.public_jwk import PRIVATE_MEMBERS

CLAIMS = {"iss": "https://wif.acme.example", "sub": "spiffe://acme.example/a/b"}


def verify_with_pyjwt(token: str, signer: Pkcs11Signer) -> dict[str, object]:
    key = jwt.PyJWK.from_dict(signer.public_jwk())
    decoded: dict[str, object] = jwt.decode(
        token, key=key, algorithms=[signer.alg], options={"verify_aud": False}
    )
    return decoded


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_token_key_signs_a_jwt_that_pyjwt_verifies(
    hsm_token: Pkcs11Token, alg: str
) -> None:
    signer, _ = hsm_token.generate(alg)

    token = signer.sign(CLAIMS)

    assert verify_with_pyjwt(token, signer) == CLAIMS
    assert parse_compact(token).header == {"alg": alg, "kid": signer.kid, "typ": "JWT"}


def test_es256_signature_is_raw_r_and_s_as_jws_needs(hsm_token: Pkcs11Token) -> None:
    signer, _ = hsm_token.generate("ES256")

    parsed = parse_compact(signer.sign(CLAIMS))

    assert len(parsed.signature) == 64
    verify_signature(parsed, VerificationKey.from_jwk(signer.public_jwk(), ("ES256",)))


def test_kid_is_the_thumbprint_of_the_public_jwk(hsm_token: Pkcs11Token) -> None:
    signer, _ = hsm_token.generate("ES256")

    jwk = signer.public_jwk()

    members = {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y")}
    assert signer.kid == jwk["kid"] == jwk_thumbprint(members)
    assert not PRIVATE_MEMBERS.intersection(jwk)


def test_load_finds_the_same_key_by_its_id(hsm_token: Pkcs11Token) -> None:
    signer, key_id = hsm_token.generate("ES256")

    loaded = hsm_token.load(key_id, "ES256")

    assert loaded.kid == signer.kid
    assert verify_with_pyjwt(loaded.sign(CLAIMS), signer) == CLAIMS


def test_private_key_is_sensitive_and_never_extractable(
    softhsm: SoftHsmToken, hsm_token: Pkcs11Token
) -> None:
    _, key_id = hsm_token.generate("ES256")
    session = pkcs11.lib(softhsm.module).get_token(token_label=softhsm.label).open()

    with session:
        private = session.get_key(
            object_class=pkcs11.ObjectClass.PRIVATE_KEY, id=bytes.fromhex(key_id)
        )
        flags = (
            private[pkcs11.Attribute.SENSITIVE],
            private[pkcs11.Attribute.EXTRACTABLE],
        )

    assert flags == (True, False)


def test_destroy_removes_both_halves(hsm_token: Pkcs11Token) -> None:
    _, key_id = hsm_token.generate("ES256")

    hsm_token.destroy(key_id)

    with pytest.raises(Pkcs11Error, match=f"^no PRIVATE_KEY with id {key_id} "):
        hsm_token.load(key_id, "ES256")


def test_opening_with_a_wrong_pin_is_refused(softhsm: SoftHsmToken) -> None:
    with pytest.raises(Pkcs11Error, match=r"^cannot open token 'wif-test'"):
        Pkcs11Token(softhsm.module, softhsm.label, "wrong-pin", "x")


def test_signer_repr_names_only_alg_and_kid(hsm_token: Pkcs11Token) -> None:
    signer, _ = hsm_token.generate("ES256")

    assert repr(signer) == f"Pkcs11Signer(alg='ES256', kid={signer.kid!r})"
