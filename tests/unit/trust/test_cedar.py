"""Tests for wif.trust.cedar: policy documents compiled against the schema."""

from __future__ import annotations

import pytest

from wif.errors import ConfigError
from wif.trust.cedar import compile_policies
from wif.trust.model import PolicyDocument

PERMIT = 'permit (principal in Pool::"acme", action, resource);'
FORBID = 'forbid (principal, action == Action::"validate", resource);'


def test_compile_policies_names_each_policy_by_its_document_id() -> None:
    compiled = compile_policies(
        [PolicyDocument("allow-acme", PERMIT), PolicyDocument("no-validate", FORBID)]
    )

    assert compiled.ids == ("allow-acme", "no-validate")


def test_compile_policies_numbers_the_statements_of_one_document() -> None:
    compiled = compile_policies([PolicyDocument("pair", PERMIT + "\n" + FORBID)])

    assert compiled.ids == ("pair#1", "pair#2")


def test_compile_policies_accepts_an_empty_list() -> None:
    assert compile_policies([]).ids == ()


def test_compile_policies_accepts_tags_and_typed_attributes() -> None:
    text = (
        'permit (principal, action == Action::"exchange", resource) when {'
        ' principal.hasTag("repository")'
        ' && principal.getTag("repository") == "acme-corp/payments-api"'
        " && principal has environment_tier"
        ' && context.scopes.contains("payments.read") };'
    )

    assert compile_policies([PolicyDocument("tags", text)]).ids == ("tags",)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            'permit (principal, action, resource) when { principal.nosuch == "x" };',
            "attribute `nosuch` on entity type `Workload` not found",
        ),
        (
            'permit (principal, action == Action::"delete", resource);',
            'unrecognized action `Action::"delete"`',
        ),
        ("permit (principal, action, resource) when { 1 };", "policies.bad: "),
    ],
)
def test_compile_policies_refuses_a_policy_failing_the_schema(
    text: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_policies([PolicyDocument("good", PERMIT), PolicyDocument("bad", text)])

    assert caught.value.message.startswith("policies.bad: ")
    assert fragment in caught.value.message


def test_compile_policies_refuses_a_syntax_error() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_policies([PolicyDocument("broken", "permit (principal, action")])

    assert caught.value.message.startswith("policies.broken: Policy parse error")


@pytest.mark.parametrize(
    "text",
    [
        "   ",
        "// a comment and no policy\n",
        "permit (principal == ?principal, action, resource);",
    ],
)
def test_compile_policies_refuses_a_document_without_a_static_policy(
    text: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_policies([PolicyDocument("empty", text)])

    assert caught.value.message == (
        "policies.empty: must hold at least one policy and no templates"
    )


def test_compile_policies_names_the_statement_instead_of_cedars_own_name() -> None:
    bad = PERMIT + "\nforbid (principal, action, resource) when { principal.foo };"

    with pytest.raises(ConfigError) as caught:
        compile_policies([PolicyDocument("pair", bad)])

    assert caught.value.message == (
        "policies.pair#2: attribute `foo` on entity type `Workload` not found"
    )
    assert "policy0" not in caught.value.message
    assert "policy1" not in caught.value.message


def test_compile_policies_quotes_every_error_of_a_document() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_policies(
            [
                PolicyDocument(
                    "bad", 'permit (principal, action == Action::"x", resource);'
                )
            ]
        )

    assert caught.value.message == (
        'policies.bad: unrecognized action `Action::"x"`; policies.bad: unable to '
        "find an applicable action given the policy scope constraints"
    )


def test_compile_policies_names_the_section_it_compiles() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_policies([PolicyDocument("bad", "permit (")], "shadow_policies")

    assert caught.value.message.startswith("shadow_policies.bad: Policy parse error")


def test_compile_policies_lists_the_permits_and_the_quarantines() -> None:
    text = '@quarantine("15m")\n' + FORBID

    compiled = compile_policies(
        [PolicyDocument("allow", PERMIT), PolicyDocument("quarantine", text)]
    )

    assert compiled.permits == ("allow",)
    assert compiled.quarantine_seconds == {"quarantine": 900}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('@quarantine("15m")\n' + PERMIT, "only a forbid policy may carry @quarantine"),
        ('@quarantine("soon")\n' + FORBID, "@quarantine: 'soon' is not a duration"),
    ],
)
def test_compile_policies_refuses_a_bad_quarantine_annotation(
    text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_policies([PolicyDocument("q", text)])

    assert caught.value.message.startswith(f"policies.q: {message}")


def test_the_schema_offers_risk_and_http_context_and_the_access_action() -> None:
    text = (
        'permit (principal, action == Action::"access", resource) when {'
        " context.risk_score < 50"
        ' && !context.risk_signals.contains("burst")'
        ' && context.http_method == "GET"'
        ' && context.http_path like "/v1/*" };'
    )

    assert compile_policies([PolicyDocument("http", text)]).ids == ("http",)
