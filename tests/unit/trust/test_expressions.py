"""Tests for wif.trust.expressions: compiling and running CEL over claims."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from wif.errors import ConfigError, InvalidGrant
from wif.trust.config import TrustConfig
from wif.trust.expressions import (
    MAX_EXPRESSION_LENGTH,
    CelInput,
    EvaluationError,
    compile_expression,
    condition_holds,
)

WHERE = "providers[0].condition"


def test_compile_expression_keeps_the_source() -> None:
    expression = compile_expression("assertion.sub", WHERE)

    assert expression.source == "assertion.sub"


@pytest.mark.parametrize("source", ["", "   ", "\n"])
def test_compile_expression_refuses_blank_text(source: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_expression(source, WHERE)

    assert caught.value.message == f"{WHERE}: must be a non-empty CEL expression"


def test_compile_expression_refuses_text_that_is_not_a_string() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_expression(42, WHERE)  # type: ignore[arg-type]

    assert caught.value.message == f"{WHERE}: must be a non-empty CEL expression"


def test_compile_expression_refuses_overlong_text() -> None:
    source = "'" + "a" * MAX_EXPRESSION_LENGTH + "'"

    with pytest.raises(ConfigError) as caught:
        compile_expression(source, WHERE)

    assert caught.value.message == f"{WHERE}: longer than 4096 characters"


@pytest.mark.parametrize(
    "source", ["assertion.ref ==", "assertion.(", "'unterminated", "f(,)"]
)
def test_compile_expression_refuses_bad_syntax_in_one_line(source: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_expression(source, WHERE)

    message = caught.value.message
    assert message.startswith(f"{WHERE}: Failed to parse expression")
    assert "\n" not in message


def test_evaluate_reads_claims_as_assertion() -> None:
    expression = compile_expression("assertion.repository + '@' + assertion.ref", WHERE)

    assert expression.evaluate({"repository": "a/b", "ref": "main"}) == "a/b@main"


def test_evaluate_raises_evaluation_error_on_a_missing_claim() -> None:
    expression = compile_expression("assertion.nosuch == 'x'", WHERE)

    with pytest.raises(EvaluationError):
        expression.evaluate({"sub": "x"})


def test_evaluate_has_tells_a_missing_claim_apart() -> None:
    expression = compile_expression(
        "has(assertion.environment) ? assertion.environment : 'none'", WHERE
    )

    assert expression.evaluate({}) == "none"
    assert expression.evaluate({"environment": "production"}) == "production"


def test_dev_condition_holds_for_a_main_branch_job(
    dev_config: TrustConfig, github_claims: dict[str, Any]
) -> None:
    condition = dev_config.providers["ci"].condition
    assert condition is not None

    assert condition_holds(condition, github_claims) is True


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("repository_owner", "someone-else"),
        ("ref", "refs/heads/feature"),
        ("ref_protected", "false"),
    ],
)
def test_dev_condition_fails_for_other_jobs(
    claim: str,
    value: str,
    dev_config: TrustConfig,
    github_claims: dict[str, Any],
) -> None:
    condition = dev_config.providers["ci"].condition
    assert condition is not None
    github_claims[claim] = value

    with pytest.raises(InvalidGrant) as caught:
        condition_holds(condition, github_claims)

    assert caught.value.reason == "ATTRIBUTE_CONDITION_FAILED"
    assert caught.value.oauth_error == "invalid_grant"


def test_condition_holds_refuses_when_a_claim_it_reads_is_missing(
    dev_config: TrustConfig, github_claims: dict[str, Any]
) -> None:
    condition = dev_config.providers["ci"].condition
    assert condition is not None
    del github_claims["repository_owner"]

    with pytest.raises(InvalidGrant) as caught:
        condition_holds(condition, github_claims)

    assert caught.value.reason == "ATTRIBUTE_CONDITION_ERROR"


@pytest.mark.parametrize("source", ["'true'", "1", "assertion.sub"])
def test_condition_holds_refuses_anything_but_true(source: str) -> None:
    condition = compile_expression(source, WHERE)

    with pytest.raises(InvalidGrant) as caught:
        condition_holds(condition, {"sub": "x"})

    assert caught.value.reason == "ATTRIBUTE_CONDITION_FAILED"


@pytest.mark.parametrize("source", ["evil(assertion.x)", "assertion.x.lowerAscii()"])
def test_expression_naming_an_unknown_function_is_a_configuration_error(
    source: str,
) -> None:
    with pytest.raises(ConfigError, match=r"where: unknown function"):
        compile_expression(source, "where")


#: Claims of every JSON kind, for running expressions both ways.
CLAIMS: dict[str, Any] = {
    "sub": "repo:acme/api:ref:refs/heads/main",
    "aud": ["sts", "api"],
    "repository": "acme/api",
    "ref": "refs/heads/main",
    "ref_protected": True,
    "run_number": 42,
    "ratio": 0.5,
    "groups": ["dev", "ops"],
    "nested": {"team": {"name": "payments"}},
    "nothing": None,
}


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    expected: Any


CASES = [
    Case(
        "condition",
        "assertion.repository.startsWith('acme/') && assertion.ref_protected",
        True,
    ),
    Case("condition refused", "assertion.ref == 'refs/heads/dev'", False),
    Case(
        "list membership", "'ops' in assertion.groups && size(assertion.aud) == 2", True
    ),
    Case("numbers", "assertion.run_number > 40 && assertion.ratio < 1.0", True),
    Case("regex", "assertion.sub.matches('^repo:[^:]+:ref:refs/heads/main$')", True),
    Case(
        "mapping",
        "assertion.repository + '@' + assertion.ref",
        "acme/api@refs/heads/main",
    ),
    Case("nested mapping", "assertion.nested.team.name", "payments"),
    Case("number as text", "string(assertion.run_number)", "42"),
    Case("list", "assertion.groups", ["dev", "ops"]),
    Case("null", "assertion.nothing == null", True),
    Case("has present", "has(assertion.nested.team) ? 'team' : 'none'", "team"),
    Case(
        "has absent",
        "has(assertion.environment) ? assertion.environment : 'none'",
        "none",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_evaluate_gives_the_same_over_cel_input_as_over_the_claims(case: Case) -> None:
    expression = compile_expression(case.source, WHERE)

    over_claims = expression.evaluate(CLAIMS)
    over_input = expression.evaluate(CelInput(CLAIMS))

    assert over_claims == over_input == case.expected


def test_one_cel_input_serves_every_expression_of_a_token() -> None:
    cel_input = CelInput(CLAIMS)

    results = [compile_expression(c.source, WHERE).evaluate(cel_input) for c in CASES]

    assert results == [case.expected for case in CASES]


@pytest.mark.parametrize(
    "source", ["assertion.nosuch == 'x'", "assertion.nested.nosuch", "assertion.sub.x"]
)
def test_evaluate_raises_evaluation_error_on_a_missing_claim_both_ways(
    source: str,
) -> None:
    expression = compile_expression(source, WHERE)

    with pytest.raises(EvaluationError):
        expression.evaluate(CLAIMS)
    with pytest.raises(EvaluationError):
        expression.evaluate(CelInput(CLAIMS))


@dataclass(frozen=True)
class Untakeable:
    name: str
    value: Any


#: Claim values the CEL runtime cannot turn into CEL values. A lone surrogate
#: is what ``json.loads`` gives for a ``"\ud800"`` escape in a token.
UNTAKEABLE = [
    Untakeable("lone surrogate", json.loads('"\\ud800"')),
    Untakeable("surrogate key", {json.loads('"\\udc00"'): 1}),
    Untakeable("set", {1, 2}),
    Untakeable("object", object()),
    Untakeable("complex", 1 + 2j),
]


@pytest.mark.parametrize("claim", UNTAKEABLE, ids=lambda u: u.name)
def test_evaluate_raises_evaluation_error_on_a_claim_cel_cannot_take(
    claim: Untakeable,
) -> None:
    cel_input = CelInput({**CLAIMS, "odd": claim.value})
    expression = compile_expression("assertion.repository", WHERE)

    for _ in range(2):  # and again: a failed conversion is not half kept
        with pytest.raises(EvaluationError, match="Conversion Error"):
            expression.evaluate(cel_input)
    with pytest.raises(EvaluationError, match="Conversion Error"):
        expression.evaluate({**CLAIMS, "odd": claim.value})


def test_condition_holds_refuses_claims_cel_cannot_take_as_an_error() -> None:
    condition = compile_expression("assertion.ref_protected", WHERE)
    cel_input = CelInput({**CLAIMS, "odd": json.loads('"\\ud800"')})

    with pytest.raises(InvalidGrant) as caught:
        condition_holds(condition, cel_input)

    assert caught.value.reason == "ATTRIBUTE_CONDITION_ERROR"


def test_cel_input_keeps_the_claims_it_was_made_of() -> None:
    assert CelInput(CLAIMS).claims is CLAIMS


def test_expressions_of_the_same_text_share_one_compiled_program() -> None:
    first = compile_expression("assertion.team == 'payments'", "providers[0].condition")
    second = compile_expression(
        "assertion.team == 'payments'", "providers[1].condition"
    )

    assert first.program is second.program
    assert second.evaluate({"team": "payments"}) is True


@pytest.mark.parametrize("source", ["assertion.(", "evil(assertion.x)"])
def test_a_bad_expression_met_again_names_where_it_is_met_again(source: str) -> None:
    with pytest.raises(ConfigError) as first:
        compile_expression(source, "providers[0].condition")
    with pytest.raises(ConfigError) as second:
        compile_expression(source, "providers[7].condition")

    assert first.value.message.startswith("providers[0].condition: ")
    assert second.value.message.startswith("providers[7].condition: ")
    assert (
        first.value.message.split(": ", 1)[1] == second.value.message.split(": ", 1)[1]
    )
