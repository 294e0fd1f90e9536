"""Tests for services.sts.request: scope trimming, token types, echoed text."""

from __future__ import annotations

import pytest

from services.sts.checks import MAX_ECHO_LENGTH, CheckLog, Outcome, echo
from services.sts.request import check_granted, check_scopes, token_type_for
from wif.errors import InvalidGrant, WifError
from wif.trust.config import TrustConfig

TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"


def test_trimming_keeps_only_offered_scopes(dev_config: TrustConfig) -> None:
    targets = [dev_config.audiences["payments-api"]]

    kept = check_scopes(["ledger.admin", "payments.read"], targets, trim=True)

    assert kept == ("payments.read",)


def test_trimming_never_grants_an_empty_set_for_a_request(
    dev_config: TrustConfig,
) -> None:
    with pytest.raises(WifError) as caught:
        check_scopes(
            ["ledger.admin"], [dev_config.audiences["payments-api"]], trim=True
        )

    assert (caught.value.oauth_error, caught.value.reason) == (
        "invalid_scope",
        "NO_SCOPE_GRANTED",
    )


def test_scope_the_policy_did_not_grant_is_refused_unless_trimmed() -> None:
    with pytest.raises(WifError) as caught:
        check_granted(["payments.read", "payments.write"], {"payments.read"})

    assert caught.value.reason == "SCOPE_NOT_GRANTED"
    assert caught.value.metadata == {"scope": "payments.write"}
    assert check_granted(
        ["payments.read", "payments.write"], {"payments.read"}, trim=True
    ) == ("payments.read",)


@pytest.mark.parametrize(
    ("issued", "token_type"),
    [(TYPE_JWT, "Bearer"), (TYPE_ACCESS_TOKEN, "Bearer"), (TYPE_ID_TOKEN, "N_A")],
)
def test_token_type_is_n_a_for_tokens_not_usable_as_access_tokens(
    issued: str, token_type: str
) -> None:
    assert token_type_for(issued) == token_type


def test_echo_keeps_printable_ascii_and_bounds_length() -> None:
    assert echo("a\x00b\u202ec\n") == "a?b?c?"
    assert len(echo("x" * 10_000)) == MAX_ECHO_LENGTH


def test_check_log_lists_unreached_checks_as_skipped() -> None:
    log = CheckLog()
    with log.step("request"):
        pass
    with pytest.raises(InvalidGrant), log.step("format"):
        raise InvalidGrant("bad", reason="MALFORMED_TOKEN")

    results = {r.name: r for r in log.complete()}

    assert results["request"].outcome is Outcome.PASSED
    assert results["format"].outcome is Outcome.FAILED
    assert results["format"].reason == "MALFORMED_TOKEN"
    assert results["policy"].outcome is Outcome.SKIPPED
    assert results["actor.signature"].outcome is Outcome.SKIPPED
