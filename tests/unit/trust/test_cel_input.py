"""Tests for the bound on the claims handed to CEL."""

from __future__ import annotations

from typing import Any

import pytest

from wif.errors import InvalidGrant
from wif.trust.expressions import (
    MAX_CEL_INPUT_DEPTH,
    MAX_CEL_INPUT_VALUES,
    check_cel_input,
)


def nested(depth: int) -> dict[str, Any]:
    claims: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        claims = {"next": claims}
    return claims


def test_claims_at_the_limits_are_accepted() -> None:
    check_cel_input(nested(MAX_CEL_INPUT_DEPTH))
    check_cel_input({"many": list(range(MAX_CEL_INPUT_VALUES - 1))})


@pytest.mark.parametrize(
    "claims",
    [
        nested(MAX_CEL_INPUT_DEPTH + 1),
        {"many": list(range(MAX_CEL_INPUT_VALUES))},
        {f"c{i}": {"x": [1, 2]} for i in range(MAX_CEL_INPUT_VALUES // 3)},
    ],
    ids=["deep", "wide", "spread"],
)
def test_claims_over_a_limit_are_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidGrant) as caught:
        check_cel_input(claims)

    assert caught.value.reason == "CLAIMS_TOO_COMPLEX"
