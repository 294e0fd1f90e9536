"""Tests for wif.trust.fields: typed members, errors that name the member."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from wif.errors import ConfigError
from wif.trust.fields import Fields

Read = Callable[[Fields], Any]


@dataclass(frozen=True)
class Bad:
    name: str
    doc: dict[str, Any]
    read: Read
    message: str


BAD = [
    Bad(
        "string-missing",
        {},
        lambda f: f.string("s"),
        "doc.s: must be a non-empty string",
    ),
    Bad(
        "string-empty",
        {"s": ""},
        lambda f: f.string("s"),
        "doc.s: must be a non-empty string",
    ),
    Bad(
        "string-number",
        {"s": 1},
        lambda f: f.string("s"),
        "doc.s: must be a non-empty string",
    ),
    Bad(
        "optional-string-list",
        {"s": ["a"]},
        lambda f: f.optional_string("s"),
        "doc.s: must be a non-empty string",
    ),
    Bad(
        "integer-bool",
        {"n": True},
        lambda f: f.integer("n", 1, 0, 10),
        "doc.n: must be an integer",
    ),
    Bad(
        "integer-float",
        {"n": 1.5},
        lambda f: f.integer("n", 1, 0, 10),
        "doc.n: must be an integer",
    ),
    Bad(
        "integer-above",
        {"n": 11},
        lambda f: f.integer("n", 1, 0, 10),
        "doc.n: must be between 0 and 10",
    ),
    Bad(
        "boolean-string",
        {"b": "true"},
        lambda f: f.boolean("b", False),
        "doc.b: must be true or false",
    ),
    Bad(
        "strings-with-empty-item",
        {"l": ["a", ""]},
        lambda f: f.strings("l"),
        "doc.l: must be a list of strings",
    ),
    Bad(
        "strings-repeated",
        {"l": ["a", "a"]},
        lambda f: f.strings("l"),
        "doc.l: holds a value twice",
    ),
    Bad(
        "strings-required-empty",
        {"l": []},
        lambda f: f.strings("l", required=True),
        "doc.l: must not be empty",
    ),
    Bad(
        "mapping-list", {"m": []}, lambda f: f.mapping("m"), "doc.m: must be a mapping"
    ),
]


@pytest.mark.parametrize("case", BAD, ids=lambda case: case.name)
def test_fields_refuse_bad_member_naming_it(case: Bad) -> None:
    with pytest.raises(ConfigError) as caught:
        case.read(Fields(case.doc, "doc"))

    assert caught.value.message == case.message


def test_fields_give_defaults_for_absent_members() -> None:
    fields = Fields({}, "doc")

    assert fields.string("s", default="d") == "d"
    assert fields.optional_string("o") is None
    assert fields.integer("n", 5, 0, 10) == 5
    assert fields.boolean("b", True) is True
    assert fields.strings("l") == ()
    assert fields.mapping("m") == {}
    assert fields.raw("r") is None


def test_fields_done_refuses_a_member_never_read() -> None:
    fields = Fields({"id": "a", "idd": "b", "zz": 1}, "pools[0]")
    fields.string("id")

    with pytest.raises(ConfigError) as caught:
        fields.done()

    assert caught.value.message == "pools[0]: unknown setting 'idd'"


def test_fields_done_accepts_members_read_even_if_absent() -> None:
    fields = Fields({"id": "a"}, "pools[0]")
    fields.string("id")
    fields.optional_string("parent")

    fields.done()


def test_fields_refuse_a_document_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError) as caught:
        Fields("id: a", "pools[0]")

    assert caught.value.message == "pools[0]: must be a mapping"
