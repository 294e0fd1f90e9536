"""Tests for wif.tokens.strict_json: JSON objects decoded without ambiguity."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from wif.tokens.strict_json import MAX_JSON_DEPTH, loads_object


def _nested(depth: int) -> bytes:
    """An object nested ``depth`` levels deep, the outer object included."""
    return ('{"a":' * depth + "1" + "}" * depth).encode()


@dataclass(frozen=True)
class Refusal:
    name: str
    data: bytes
    match: str


REFUSALS = [
    Refusal("array", b"[1]", "not an object"),
    Refusal("duplicate", b'{"a":1,"a":1}', "duplicate"),
    Refusal("nan", b'{"a":NaN}', "NaN"),
    Refusal("lone-surrogate", b'{"a":"\\udc00"}', "surrogate"),
    Refusal("bad-utf8", b'{"a":"\xe2\x28\xa1"}', "utf-8"),
    Refusal("too-deep", _nested(MAX_JSON_DEPTH + 1), "too deeply"),
    Refusal("too-deep-in-lists", b'{"a":' + b"[" * 40 + b"]" * 40 + b"}", "too deeply"),
    Refusal("recursion", b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}", "too deeply"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=lambda case: case.name)
def test_loads_object_refuses(case: Refusal) -> None:
    with pytest.raises(ValueError, match=case.match):
        loads_object(case.data)


def test_loads_object_accepts_the_deepest_allowed_nesting() -> None:
    assert loads_object(_nested(MAX_JSON_DEPTH))


def test_loads_object_accepts_many_shallow_brackets() -> None:
    data = b'{"a":[' + b",".join([b"[]"] * 100) + b'],"b":"{{{{"}'

    assert len(loads_object(data)["a"]) == 100
