"""Validation of a public signature JWK (RFC 7517 section 4, RFC 7518 6).

python-jose builds a key from nearly anything: private members, a 512-bit
modulus, base64 with junk in it, a P-384 key for ES256. Everything a JWK
says is checked here first, so that python-jose only ever sees a public EC
or RSA key whose algorithm is pinned and consistent.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final, NamedTuple

from wif.tokens import base64url
from wif.tokens.algorithms import (
    EC_COORDINATE_BYTES,
    EC_CURVE_BY_ALGORITHM,
    RSA_ALGORITHMS,
    SUPPORTED_ALGORITHMS,
)
from wif.tokens.compact import MAX_KID_LENGTH

#: The smallest RSA modulus accepted, in bits (RFC 7518 section 3.3).
MIN_RSA_BITS: Final = 2048

#: Members that only a private or symmetric key has (RFC 7518 section 6).
PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_ALGORITHM_BY_CURVE: Final = {crv: alg for alg, crv in EC_CURVE_BY_ALGORITHM.items()}


class PublicJwk(NamedTuple):
    """What a validated JWK says: its pinned algorithm, kid and key members."""

    alg: str
    kid: str | None
    members: dict[str, str]


def validate_public_jwk(
    jwk: Mapping[str, Any], allowed_algorithms: Collection[str]
) -> PublicJwk:
    """Check that ``jwk`` is a public EC or RSA signature key and pin its alg.

    The algorithm is the JWK's ``alg``, or else P-256 means ES256, P-384
    means ES384 and RSA means RS256; it must be in both
    ``allowed_algorithms`` and SUPPORTED_ALGORITHMS and fit the key.

    Raises:
        ValueError: the JWK is symmetric or private, is not for signatures,
            names a refused algorithm, has a malformed or inconsistent member,
            or is an RSA key under MIN_RSA_BITS.
    """
    if not isinstance(jwk, Mapping):
        raise ValueError("a JWK must be a JSON object")

    kty = _key_type(jwk)
    _refuse_private_members(jwk)
    _check_intended_use(jwk)

    alg = _algorithm(jwk, kty, allowed_algorithms)
    members = _ec_members(jwk, alg) if kty == "EC" else _rsa_members(jwk)
    return PublicJwk(alg, _key_id(jwk), members)


def _key_type(jwk: Mapping[str, Any]) -> str:
    kty = jwk.get("kty")
    if kty == "oct":
        raise ValueError("symmetric keys (kty oct) never verify tokens here")
    if kty not in ("EC", "RSA"):
        raise ValueError("kty must be EC or RSA")
    return str(kty)


def _refuse_private_members(jwk: Mapping[str, Any]) -> None:
    found = sorted(PRIVATE_MEMBERS.intersection(jwk))
    if found:
        names = ", ".join(found)
        raise ValueError(
            f"the JWK holds private members ({names}); publish public keys only"
        )


def _check_intended_use(jwk: Mapping[str, Any]) -> None:
    if "use" in jwk and jwk["use"] != "sig":
        raise ValueError("use must be sig")

    key_ops = jwk.get("key_ops", ["verify"])
    if not isinstance(key_ops, list) or "verify" not in key_ops:
        raise ValueError("key_ops must allow verify")


def _algorithm(
    jwk: Mapping[str, Any], kty: str, allowed_algorithms: Collection[str]
) -> str:
    alg = jwk["alg"] if "alg" in jwk else _inferred_algorithm(jwk, kty)
    if not isinstance(alg, str):
        raise ValueError("alg must be a string")
    if alg not in SUPPORTED_ALGORITHMS:
        raise ValueError("alg is not a supported signature algorithm")
    if alg not in allowed_algorithms:
        raise ValueError(f"alg {alg} is not allowed here")

    if kty == "RSA" and alg not in RSA_ALGORITHMS:
        raise ValueError(f"alg {alg} does not fit an RSA key")
    if kty == "EC" and EC_CURVE_BY_ALGORITHM.get(alg) != jwk.get("crv"):
        raise ValueError(f"alg {alg} does not fit the key's curve")
    return alg


def _inferred_algorithm(jwk: Mapping[str, Any], kty: str) -> str:
    if kty == "RSA":
        return "RS256"

    crv = jwk.get("crv")
    alg = _ALGORITHM_BY_CURVE.get(crv) if isinstance(crv, str) else None
    if alg is None:
        raise ValueError("crv must be P-256 or P-384")
    return alg


def _ec_members(jwk: Mapping[str, Any], alg: str) -> dict[str, str]:
    crv = EC_CURVE_BY_ALGORITHM[alg]
    size = EC_COORDINATE_BYTES[crv]
    x = _integer_member(jwk, "x")
    y = _integer_member(jwk, "y")

    # RFC 7518 section 6.2.1.2: a coordinate is always the curve's full size.
    if len(base64url.decode(x)) != size or len(base64url.decode(y)) != size:
        raise ValueError(f"x and y must each be {size} bytes on {crv}")
    return {"kty": "EC", "crv": crv, "x": x, "y": y}


def _rsa_members(jwk: Mapping[str, Any]) -> dict[str, str]:
    n = _integer_member(jwk, "n")
    e = _integer_member(jwk, "e")

    bits = int.from_bytes(base64url.decode(n), "big").bit_length()
    if bits < MIN_RSA_BITS:
        raise ValueError(
            f"the RSA modulus has {bits} bits; at least {MIN_RSA_BITS} needed"
        )
    return {"kty": "RSA", "n": n, "e": e}


def _integer_member(jwk: Mapping[str, Any], name: str) -> str:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty base64url string")

    try:
        base64url.decode(value)
    except ValueError as exc:
        raise ValueError(f"{name} is not canonical base64url") from exc
    return value


def _key_id(jwk: Mapping[str, Any]) -> str | None:
    kid = jwk.get("kid")
    if "kid" in jwk and (
        not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH
    ):
        raise ValueError(f"kid must be a string of 1 to {MAX_KID_LENGTH} characters")
    return kid
