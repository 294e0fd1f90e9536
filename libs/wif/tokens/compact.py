"""Strict parsing of a JWS in compact serialization (RFC 7515 section 7.1).

Nothing here verifies a signature: :func:`parse_compact` only makes sure the
token is exactly one well-formed, unambiguous JWS whose header asks for
nothing the mesh refuses, so that the key selection, the signature check and
the claim checks all look at the same, canonical data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from wif.errors import InvalidGrant
from wif.tokens import base64url, errors
from wif.tokens.algorithms import HMAC_ALGORITHMS, SUPPORTED_ALGORITHMS
from wif.tokens.claims import require_string
from wif.tokens.strict_json import loads_object

#: The longest token, in bytes, the mesh reads or writes.
MAX_TOKEN_BYTES: Final = 8192

#: The longest ``kid`` accepted, in characters.
MAX_KID_LENGTH: Final = 256

_HEADER_PARAMETERS: Final = frozenset({"alg", "kid", "typ", "x5t", "x5t#S256"})

# Parameters refused with their own reason (RFC 8725 sections 3.1 and 3.10):
# a key or key location named by the token would let the token choose the key
# that verifies it; crit asks for extensions the mesh does not implement.
_REFUSED_PARAMETERS: Final = {
    "crit": errors.CRIT_NOT_SUPPORTED,
    "jku": errors.HEADER_KEY_NOT_ALLOWED,
    "jwk": errors.HEADER_KEY_NOT_ALLOWED,
    "x5c": errors.HEADER_KEY_NOT_ALLOWED,
    "x5u": errors.HEADER_KEY_NOT_ALLOWED,
    "enc": errors.ENCRYPTED_TOKEN_NOT_SUPPORTED,
    "zip": errors.ENCRYPTED_TOKEN_NOT_SUPPORTED,
}

_OPTIONAL_STRING_PARAMETERS: Final = ("typ", "x5t", "x5t#S256")

# Caller-controlled text copied into error metadata is cut to this length.
_METADATA_TEXT_LIMIT: Final = 64


@dataclass(frozen=True, repr=False)
class ParsedToken:
    """A token whose structure has been checked and whose signature has not."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def fingerprint(self) -> str:
        """The first 16 hex digits of the token's SHA-256, safe to log."""
        encoded = base64url.encode(self.signature).encode("ascii")
        token = self.signing_input + b"." + encoded
        return hashlib.sha256(token).hexdigest()[:16]

    def __repr__(self) -> str:
        alg, kid = self.header.get("alg"), self.header.get("kid")
        return f"ParsedToken(alg={alg!r}, kid={kid!r}, fingerprint={self.fingerprint})"


def parse_compact(token: str) -> ParsedToken:
    """Split and decode ``token`` strictly, checking the header's parameters.

    The size is checked before anything is decoded. Each segment must be
    canonical unpadded base64url; header and payload must be UTF-8 JSON
    objects without duplicate members (RFC 7515 section 5.2, RFC 8725
    section 3.4); the header may only hold ``alg``, ``kid``, ``typ``, ``x5t``
    and ``x5t#S256``, and ``alg`` must be one of SUPPORTED_ALGORITHMS.

    Raises:
        InvalidGrant: TOKEN_TOO_LARGE, MALFORMED_TOKEN, or a header reason:
            CRIT_NOT_SUPPORTED, HEADER_KEY_NOT_ALLOWED,
            ENCRYPTED_TOKEN_NOT_SUPPORTED, UNKNOWN_HEADER_PARAMETER,
            INVALID_HEADER_PARAMETER, ALG_NONE, ALG_NOT_ALLOWED or
            UNSUPPORTED_ALGORITHM.
    """
    _check_size(token)

    header_text, payload_text, signature_text = _split(token)
    header = _checked_header(header_text)

    claims = _decode_object(payload_text, "payload")
    signature = _decode_segment(signature_text, "signature")
    signing_input = f"{header_text}.{payload_text}".encode("ascii")
    return ParsedToken(header, claims, signing_input, signature)


def unverified_issuer(parsed: ParsedToken) -> str:
    """Return the ``iss`` claim before the signature is checked.

    Use it only to choose the trust relationship and its keys; nothing in
    the token can be believed until the signature is verified.

    Raises:
        InvalidGrant: MISSING_CLAIM, or INVALID_CLAIM_TYPE when ``iss`` is
            not a non-empty string.
    """
    return require_string(parsed.claims, "iss")


def _check_size(token: str) -> None:
    if not isinstance(token, str):
        _malformed("the token must be text")

    # A str never has more characters than its UTF-8 form has bytes, so the
    # first test settles any oversized token without encoding it.
    if len(token) > MAX_TOKEN_BYTES or _utf8_length(token) > MAX_TOKEN_BYTES:
        raise InvalidGrant(
            f"the token is longer than {MAX_TOKEN_BYTES} bytes",
            reason=errors.TOKEN_TOO_LARGE,
            metadata={"maxBytes": str(MAX_TOKEN_BYTES)},
        )

    if not token.isascii():
        _malformed("the token must be ASCII text")


def _utf8_length(token: str) -> int:
    if token.isascii():
        return len(token)
    return len(token.encode("utf-8", "surrogatepass"))


def _split(token: str) -> tuple[str, str, str]:
    segments = token.split(".")
    if len(segments) != 3:
        _malformed(
            "a signed token has three segments separated by dots",
            segments=str(len(segments)),
        )
    return segments[0], segments[1], segments[2]


def _decode_segment(text: str, name: str) -> bytes:
    if not text:
        _malformed(f"the token's {name} segment is empty", segment=name)

    try:
        return base64url.decode(text)
    except ValueError:
        _malformed(f"the token's {name} segment is not base64url", segment=name)


def _decode_object(text: str, name: str) -> dict[str, Any]:
    data = _decode_segment(text, name)
    try:
        return loads_object(data)
    except ValueError:
        _malformed(f"the token's {name} is not a strict JSON object", segment=name)


#: Headers that passed every check, by their encoded text. A key's tokens
#: all share one header, so most tokens skip decoding and checking theirs.
#: Emptied when full rather than evicted one by one: cheap, and safe from
#: several threads.
_CHECKED_HEADERS: dict[str, dict[str, Any]] = {}
_CHECKED_HEADERS_MAX = 256


def _checked_header(text: str) -> dict[str, Any]:
    known = _CHECKED_HEADERS.get(text)
    if known is not None:
        return dict(known)

    header = _decode_object(text, "header")
    _check_header(header)
    if len(_CHECKED_HEADERS) >= _CHECKED_HEADERS_MAX:
        _CHECKED_HEADERS.clear()
    _CHECKED_HEADERS[text] = dict(header)
    return header


def _check_header(header: dict[str, Any]) -> None:
    _check_parameter_names(header)

    _check_algorithm(header.get("alg"))

    _check_key_id(header)

    for name in _OPTIONAL_STRING_PARAMETERS:
        if name in header and not isinstance(header[name], str):
            _bad_parameter(name, f"the header parameter {name} must be a string")


def _check_parameter_names(header: dict[str, Any]) -> None:
    # Sorted, so that one token always gets the same reason.
    for name in sorted(header):
        reason = _REFUSED_PARAMETERS.get(name)
        if reason is not None:
            raise InvalidGrant(
                f"the header parameter {name} is not accepted",
                reason=reason,
                metadata={"parameter": name},
            )

    unknown = sorted(set(header) - _HEADER_PARAMETERS)
    if unknown:
        raise InvalidGrant(
            "the header holds a parameter the mesh does not understand",
            reason=errors.UNKNOWN_HEADER_PARAMETER,
            metadata={"parameter": unknown[0][:_METADATA_TEXT_LIMIT]},
        )


def _check_algorithm(alg: object) -> None:
    if not isinstance(alg, str):
        _bad_parameter("alg", "the header must name its algorithm as a string")

    if alg.lower() == "none":
        _refuse_algorithm("unsigned tokens are not accepted", errors.ALG_NONE, alg)

    if alg in HMAC_ALGORITHMS:
        message = "symmetric algorithms are not accepted"
        _refuse_algorithm(message, errors.ALG_NOT_ALLOWED, alg)

    if alg not in SUPPORTED_ALGORITHMS:
        message = "the token's algorithm is not supported"
        _refuse_algorithm(message, errors.UNSUPPORTED_ALGORITHM, alg)


def _check_key_id(header: dict[str, Any]) -> None:
    if "kid" not in header:
        return

    kid = header["kid"]
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        message = f"kid must be a string of 1 to {MAX_KID_LENGTH} characters"
        _bad_parameter("kid", message)


def _refuse_algorithm(message: str, reason: str, alg: str) -> NoReturn:
    metadata = {"alg": alg[:_METADATA_TEXT_LIMIT]}
    raise InvalidGrant(message, reason=reason, metadata=metadata)


def _bad_parameter(name: str, message: str) -> NoReturn:
    metadata = {"parameter": name}
    raise InvalidGrant(
        message, reason=errors.INVALID_HEADER_PARAMETER, metadata=metadata
    )


def _malformed(message: str, **metadata: str) -> NoReturn:
    raise InvalidGrant(message, reason=errors.MALFORMED_TOKEN, metadata=metadata)
