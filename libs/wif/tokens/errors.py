# Names such as TOKEN_EXPIRED are reason codes, not hard-coded secrets.
"""Reasons the token checks report, and the one error the token module adds.

Every refusal of a token is a :class:`wif.errors.InvalidGrant` whose
``reason`` is one of the constants below, so that callers, logs and tests
name each failed check the same way. The values are part of the wire
contract: they reach callers in ``google.rpc.ErrorInfo.reason``.
"""

from __future__ import annotations

from typing import Final

from wif.errors import InvalidRequest

# Parsing the compact serialization (RFC 7515 section 7.1).
TOKEN_TOO_LARGE: Final = "TOKEN_TOO_LARGE"
MALFORMED_TOKEN: Final = "MALFORMED_TOKEN"

# The JOSE header (RFC 7515 section 4, RFC 8725 section 3).
CRIT_NOT_SUPPORTED: Final = "CRIT_NOT_SUPPORTED"
HEADER_KEY_NOT_ALLOWED: Final = "HEADER_KEY_NOT_ALLOWED"
ENCRYPTED_TOKEN_NOT_SUPPORTED: Final = "ENCRYPTED_TOKEN_NOT_SUPPORTED"
UNKNOWN_HEADER_PARAMETER: Final = "UNKNOWN_HEADER_PARAMETER"
INVALID_HEADER_PARAMETER: Final = "INVALID_HEADER_PARAMETER"
ALG_NONE: Final = "ALG_NONE"
ALG_NOT_ALLOWED: Final = "ALG_NOT_ALLOWED"
UNSUPPORTED_ALGORITHM: Final = "UNSUPPORTED_ALGORITHM"

# Key selection and the signature.
MISSING_KEY_ID: Final = "MISSING_KEY_ID"
UNKNOWN_KEY_ID: Final = "UNKNOWN_KEY_ID"
ALGORITHM_MISMATCH: Final = "ALGORITHM_MISMATCH"
BAD_SIGNATURE: Final = "BAD_SIGNATURE"

# The claims (RFC 7519 section 4.1).
MISSING_CLAIM: Final = "MISSING_CLAIM"
INVALID_CLAIM_TYPE: Final = "INVALID_CLAIM_TYPE"
ISSUER_MISMATCH: Final = "ISSUER_MISMATCH"
AUDIENCE_MISMATCH: Final = "AUDIENCE_MISMATCH"
TOKEN_EXPIRED: Final = "TOKEN_EXPIRED"
TOKEN_NOT_YET_VALID: Final = "TOKEN_NOT_YET_VALID"
TOKEN_ISSUED_IN_FUTURE: Final = "TOKEN_ISSUED_IN_FUTURE"
TOKEN_TOO_OLD: Final = "TOKEN_TOO_OLD"


class TokenTooLarge(InvalidRequest):
    """The token the mesh was asked to sign would exceed the size limit.

    Raised by the signer rather than the parser: the request asked for more
    claims than fit in a token, so the fault lies with the request.
    """

    default_reason = TOKEN_TOO_LARGE
