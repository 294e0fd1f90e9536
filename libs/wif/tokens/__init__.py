"""JSON Web Tokens for the mesh: strict parsing, keys, signing, claim checks.

python-jose signs and verifies; everything else a token goes through is done
here, strictly. To accept a foreign token: :func:`parse_compact`, find the
trust relationship by :func:`unverified_issuer`, :func:`select_key` from its
:class:`KeySet`, :func:`verify_signature`, then :func:`check_claims`.
To issue one: :meth:`SigningKey.sign`.
"""

from wif.tokens.algorithms import SUPPORTED_ALGORITHMS
from wif.tokens.claims import (
    ClaimRules,
    check_audience,
    check_claims,
    check_expiry,
    check_issued_at,
    check_issuer,
    check_not_before,
    check_subject,
)
from wif.tokens.compact import (
    MAX_TOKEN_BYTES,
    ParsedToken,
    parse_compact,
    unverified_issuer,
)
from wif.tokens.errors import TokenTooLarge
from wif.tokens.keys import KeySet, VerificationKey, jwk_thumbprint
from wif.tokens.signing import SIGNING_ALGORITHMS, Signer, SigningKey, sign_compact
from wif.tokens.verify import select_key, verify_signature

__all__ = [
    "MAX_TOKEN_BYTES",
    "SIGNING_ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "ClaimRules",
    "KeySet",
    "ParsedToken",
    "Signer",
    "SigningKey",
    "TokenTooLarge",
    "VerificationKey",
    "check_audience",
    "check_claims",
    "check_expiry",
    "check_issued_at",
    "check_issuer",
    "check_not_before",
    "check_subject",
    "jwk_thumbprint",
    "parse_compact",
    "select_key",
    "sign_compact",
    "unverified_issuer",
    "verify_signature",
]
