"""The signature algorithms the mesh accepts (RFC 7518 section 3.1).

Only asymmetric algorithms are listed: a verifier holds public keys, and an
HMAC "verified" with a public key as its secret is the classic forgery that
RFC 8725 section 2.1 warns about.
"""

from __future__ import annotations

from typing import Final

SUPPORTED_ALGORITHMS: Final = ("ES256", "ES384", "RS256", "RS384", "RS512")

#: Symmetric algorithms, named so that a token using one gets its own reason.
HMAC_ALGORITHMS: Final = frozenset({"HS256", "HS384", "HS512"})

#: The curve each ECDSA algorithm is defined on (RFC 7518 section 3.4).
EC_CURVE_BY_ALGORITHM: Final = {"ES256": "P-256", "ES384": "P-384"}

#: The length in bytes of one coordinate on each supported curve.
EC_COORDINATE_BYTES: Final = {"P-256": 32, "P-384": 48}

RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512"})
