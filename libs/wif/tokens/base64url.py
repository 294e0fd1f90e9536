"""Base64url without padding, decoded strictly (RFC 7515 section 2, appendix C).

The standard library's decoder skips characters outside the alphabet and
ignores the unused bits of the last character, so two different texts can
decode to the same bytes. :func:`decode` accepts exactly one text for each
byte string: the one :func:`encode` produces.
"""

from __future__ import annotations

import base64
import binascii
import re

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: By the text's length modulo 4, the characters a canonical encoder may end
#: it with: those whose unused low bits are zero (4 bits after two
#: characters of a group, 2 after three).
_CANONICAL_LAST = {
    0: frozenset(_CHARACTERS),
    2: frozenset(_CHARACTERS[::16]),
    3: frozenset(_CHARACTERS[::4]),
}


def encode(data: bytes) -> str:
    """Return ``data`` as base64url text without ``=`` padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """Decode canonical unpadded base64url text.

    Raises:
        ValueError: ``text`` holds a character outside the base64url
            alphabet (padding included), has an impossible length, or sets
            bits that a canonical encoder leaves at zero.
    """
    remainder = len(text) % 4
    if not _ALPHABET.fullmatch(text) or remainder == 1:
        raise ValueError("not unpadded base64url")

    if text and text[-1] not in _CANONICAL_LAST[remainder]:
        raise ValueError("non-canonical base64url")

    # The alphabet is checked above, so the text is ASCII: translated to the
    # standard alphabet, it goes straight to the C decoder.
    padded = (text + "=" * (-remainder % 4)).encode("ascii")
    try:
        return binascii.a2b_base64(padded.translate(_TO_STANDARD))
    except binascii.Error as exc:
        raise ValueError("not unpadded base64url") from exc
