"""Tests for wif.trust.source: YAML that is plain data, read in bounded time.

The cases come from fuzzing the loader (tests/fuzz/trust_yaml.py): each
used to escape as TypeError or RecursionError, or to take time exponential
in the length of the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from wif.errors import ConfigError
from wif.trust.source import MAX_DEPTH, expand_variables, parse_yaml

#: Nine references to the level below, six levels deep: 9**6 strings once expanded.
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{below}'] * 9)}]\n"
    for below, name in zip("abcde", "bcdef", strict=True)
)


@dataclass(frozen=True)
class Refused:
    name: str
    text: str
    message: str


REFUSED = [
    Refused("found by the fuzzer", "!\n ? ?", "line 2: a key must be text"),
    Refused("list as key", "mesh:\n  ? [a, b]\n  : c\n", "line 2: a key must be text"),
    Refused("mapping as key", "{{a: 1}: b}\n", "line 1: a key must be text"),
    Refused("number as key", "mesh:\n  1: a\n", "line 2: a key must be text"),
    Refused("yes as key", "mesh:\n  yes: a\n", "line 2: a key must be text"),
    Refused("alias", "a: &x b\nc: *x\n", "line 2: aliases (*name) are not accepted"),
    Refused("alias to itself", "&a [*a]\n", "line 1: aliases (*name) are not accepted"),
    Refused("alias bomb", ALIAS_BOMB, "line 2: aliases (*name) are not accepted"),
    Refused(
        "deep sequence",
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
        f"nested deeper than {MAX_DEPTH}",
    ),
    Refused(
        "very deep mapping",
        "{a: " * 5000 + "1" + "}" * 5000,
        f"nested deeper than {MAX_DEPTH}",
    ),
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda case: case.name)
def test_parse_yaml_refuses_what_is_not_plain_data(case: Refused) -> None:
    started = time.perf_counter()

    with pytest.raises(ConfigError) as caught:
        parse_yaml(case.text, "trust.yaml")

    assert case.message in str(caught.value)
    assert time.perf_counter() - started < 1.0


def test_parse_yaml_reads_nesting_up_to_the_limit() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH

    value = parse_yaml(text, "trust.yaml")

    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    assert depth == MAX_DEPTH


def test_an_anchor_without_alias_is_only_a_name() -> None:
    value = parse_yaml("mesh: &m\n  trust_domain: acme.example\n", "trust.yaml")

    assert expand_variables(value, {}) == {"mesh": {"trust_domain": "acme.example"}}
