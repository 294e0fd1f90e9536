"""Choosing the key for a token and checking its signature.

The key, found by the header's ``kid`` alone, decides the algorithm; the
header's ``alg`` must merely agree with it (RFC 8725 sections 2.1 and 3.1).
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from wif.errors import InvalidGrant
from wif.tokens import errors
from wif.tokens.compact import ParsedToken
from wif.tokens.keys import KeySet, VerificationKey


def select_key(parsed: ParsedToken, keys: KeySet) -> VerificationKey:
    """Return the key of ``keys`` whose kid the token's header names.

    Raises:
        InvalidGrant: MISSING_KEY_ID when the header has no ``kid``,
            UNKNOWN_KEY_ID when no key has it.
    """
    kid = parsed.header.get("kid")
    if kid is None:
        raise InvalidGrant(
            "the token's header does not name its key (kid)",
            reason=errors.MISSING_KEY_ID,
        )

    key = keys.get(kid)
    if key is None:
        raise InvalidGrant(
            "the issuer publishes no key with the token's kid",
            reason=errors.UNKNOWN_KEY_ID,
            metadata={"kid": kid},
        )
    return key


def verify_signature(parsed: ParsedToken, key: VerificationKey) -> None:
    """Verify the token's signature with ``key`` and the algorithm it pins.

    Raises:
        InvalidGrant: ALGORITHM_MISMATCH when the header's ``alg`` is not the
            key's, BAD_SIGNATURE when the signature does not verify.
    """
    if parsed.header.get("alg") != key.alg:
        raise InvalidGrant(
            "the token's algorithm is not the one its key is for",
            reason=errors.ALGORITHM_MISMATCH,
            metadata={"alg": str(parsed.header.get("alg")), "keyAlg": key.alg},
        )

    if not _verifies(parsed, key):
        raise InvalidGrant(
            "the token's signature does not verify",
            reason=errors.BAD_SIGNATURE,
            metadata={"kid": key.kid or ""},
        )


#: ECDSA by algorithm: the scheme object, made once, and the length of each
#: of r and s in the JWS signature (RFC 7518 section 3.4).
_ECDSA: Final = {
    "ES256": (ec.ECDSA(hashes.SHA256()), 32),
    "ES384": (ec.ECDSA(hashes.SHA384()), 48),
}
#: RSASSA-PKCS1-v1_5 hashes by algorithm (RFC 7518 section 3.3).
_RSA_HASHES: Final = {
    "RS256": hashes.SHA256(),
    "RS384": hashes.SHA384(),
    "RS512": hashes.SHA512(),
}
_PKCS1V15: Final = padding.PKCS1v15()


def _verifies(parsed: ParsedToken, key: VerificationKey) -> bool:
    # Straight to OpenSSL through ``cryptography`` with scheme objects made
    # once; python-jose (which built the key) would make them on every call.
    public = key.jose_key.prepared_key
    signature = parsed.signature
    try:
        if key.alg in _ECDSA:
            scheme, size = _ECDSA[key.alg]
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            public.verify(encode_dss_signature(r, s), parsed.signing_input, scheme)
        else:
            public.verify(
                signature, parsed.signing_input, _PKCS1V15, _RSA_HASHES[key.alg]
            )
    except InvalidSignature:
        return False
    return True
