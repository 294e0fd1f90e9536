"""Choosing the key for a token and checking its signature.

The key, found by the header's ``kid`` alone, decides the algorithm; the
header's ``alg`` must merely agree with it (RFC 8725 sections 2.1 and 3.1).
"""

from __future__ import annotations

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


def _verifies(parsed: ParsedToken, key: VerificationKey) -> bool:
    try:
        return bool(key.jose_key.verify(parsed.signing_input, parsed.signature))
    except Exception:
        # python-jose's RSA key lets errors other than InvalidSignature escape;
        # whatever the cause, the signature did not verify.
        return False
