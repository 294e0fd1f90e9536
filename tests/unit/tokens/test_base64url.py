"""Tests for wif.tokens.base64url: one text for each byte string."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wif.tokens import base64url


@given(st.binary(max_size=100))
def test_decode_inverts_encode(data: bytes) -> None:
    assert base64url.decode(base64url.encode(data)) == data


@pytest.mark.parametrize(
    "text",
    ["QQ==", "QR", "QQ=", "Q", "Q+", "Q/", "Q Q", "QQ\n", "ÄQ"],
    ids=[
        "padded",
        "unused-bits-set",
        "partly-padded",
        "impossible-length",
        "plus",
        "slash",
        "space",
        "newline",
        "non-ascii",
    ],
)
def test_decode_refuses_non_canonical_text(text: str) -> None:
    with pytest.raises(ValueError, match="base64url"):
        base64url.decode(text)


def test_decode_accepts_empty_text() -> None:
    assert base64url.decode("") == b""
