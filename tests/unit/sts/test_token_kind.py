"""Tests for the token-kind rule."""

from __future__ import annotations

import pytest

from services.sts.subject import (
    TYPE_ACCESS_TOKEN,
    TYPE_ID_TOKEN,
    TYPE_JWT,
    check_token_kind,
)
from wif.errors import InvalidGrant
from wif.tokens import SigningKey, parse_compact

KEY = SigningKey.generate("ES256")


@pytest.mark.parametrize(
    ("typ", "token_type", "mesh", "allowed"),
    [
        ("at+jwt", TYPE_ACCESS_TOKEN, False, True),
        ("application/at+jwt", TYPE_ACCESS_TOKEN, False, True),
        ("JWT", TYPE_ACCESS_TOKEN, False, False),
        ("at+jwt", TYPE_ID_TOKEN, False, False),
        ("JWT", TYPE_ID_TOKEN, False, True),
        ("at+jwt", TYPE_JWT, False, True),
        ("JWT", TYPE_JWT, False, True),
        ("JWT", TYPE_ACCESS_TOKEN, True, True),
        ("JWT", TYPE_ID_TOKEN, True, False),
    ],
)
def test_token_kind_rule(typ: str, token_type: str, mesh: bool, allowed: bool) -> None:
    token = parse_compact(KEY.sign({"iss": "i", "sub": "s"}, typ=typ))

    if allowed:
        check_token_kind(token, token_type, mesh)
        return
    with pytest.raises(InvalidGrant) as caught:
        check_token_kind(token, token_type, mesh)
    assert caught.value.reason == "WRONG_TOKEN_KIND"
