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
    if not _ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")

    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not unpadded base64url") from exc

    if encode(data) != text:
        raise ValueError("non-canonical base64url")
    return data
