"""Tests for wif.tokens.claims: one check per registered claim."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from wif.errors import InvalidGrant
from wif.tokens import (
    ClaimRules,
    check_audience,
    check_claims,
    check_expiry,
    check_issued_at,
    check_issuer,
    check_not_before,
    check_subject,
)

from .forging import AUDIENCE, ISSUER, NOW, good_claims

Check = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class Case:
    name: str
    check: Check
    claims: Mapping[str, Any]
    reason: str | None


def _expiry(skew: int) -> Check:
    return lambda claims: check_expiry(claims, NOW, skew)


def _not_before(skew: int) -> Check:
    return lambda claims: check_not_before(claims, NOW, skew)


def _issued_at(skew: int, max_age: int | None = None) -> Check:
    return lambda claims: check_issued_at(claims, NOW, skew, max_age)


def _issuer(claims: Mapping[str, Any]) -> None:
    check_issuer(claims, ISSUER)


def _audience(claims: Mapping[str, Any]) -> None:
    check_audience(claims, {AUDIENCE, "https://other.mesh.test"})


CASES = [
    # iss (RFC 7519 section 4.1.1): exact string equality.
    Case("iss-exact", _issuer, {"iss": ISSUER}, None),
    Case("iss-trailing-slash", _issuer, {"iss": ISSUER + "/"}, "ISSUER_MISMATCH"),
    Case("iss-case", _issuer, {"iss": ISSUER.upper()}, "ISSUER_MISMATCH"),
    Case("iss-http", _issuer, {"iss": "http://ci.example.test"}, "ISSUER_MISMATCH"),
    Case("iss-whitespace", _issuer, {"iss": ISSUER + " "}, "ISSUER_MISMATCH"),
    Case("iss-missing", _issuer, {}, "MISSING_CLAIM"),
    Case("iss-list", _issuer, {"iss": [ISSUER]}, "INVALID_CLAIM_TYPE"),
    Case("iss-null", _issuer, {"iss": None}, "INVALID_CLAIM_TYPE"),
    # sub (4.1.2).
    Case("sub-present", check_subject, {"sub": "x"}, None),
    Case("sub-missing", check_subject, {}, "MISSING_CLAIM"),
    Case("sub-empty", check_subject, {"sub": ""}, "INVALID_CLAIM_TYPE"),
    Case("sub-number", check_subject, {"sub": 42}, "INVALID_CLAIM_TYPE"),
    # aud (4.1.3).
    Case("aud-string", _audience, {"aud": AUDIENCE}, None),
    Case("aud-list-one-match", _audience, {"aud": ["x", AUDIENCE]}, None),
    Case("aud-list-no-match", _audience, {"aud": ["x", "y"]}, "AUDIENCE_MISMATCH"),
    Case("aud-other", _audience, {"aud": AUDIENCE + "/"}, "AUDIENCE_MISMATCH"),
    Case("aud-empty-string", _audience, {"aud": ""}, "AUDIENCE_MISMATCH"),
    Case("aud-missing", _audience, {}, "MISSING_CLAIM"),
    Case("aud-empty-list", _audience, {"aud": []}, "INVALID_CLAIM_TYPE"),
    Case("aud-list-of-number", _audience, {"aud": [AUDIENCE, 1]}, "INVALID_CLAIM_TYPE"),
    Case("aud-nested-list", _audience, {"aud": [[AUDIENCE]]}, "INVALID_CLAIM_TYPE"),
    Case("aud-number", _audience, {"aud": 1}, "INVALID_CLAIM_TYPE"),
    Case("aud-object", _audience, {"aud": {AUDIENCE: True}}, "INVALID_CLAIM_TYPE"),
    Case("aud-null", _audience, {"aud": None}, "INVALID_CLAIM_TYPE"),
    # exp (4.1.4): refused from exp + skew on.
    Case("exp-future", _expiry(0), {"exp": NOW + 1}, None),
    Case("exp-exactly-now", _expiry(0), {"exp": NOW}, "TOKEN_EXPIRED"),
    Case("exp-past", _expiry(0), {"exp": NOW - 1}, "TOKEN_EXPIRED"),
    Case("exp-within-skew", _expiry(60), {"exp": NOW - 59}, None),
    Case("exp-at-skew", _expiry(60), {"exp": NOW - 60}, "TOKEN_EXPIRED"),
    Case("exp-float", _expiry(0), {"exp": NOW + 0.5}, None),
    Case("exp-float-past", _expiry(0), {"exp": NOW - 0.5}, "TOKEN_EXPIRED"),
    Case("exp-huge", _expiry(0), {"exp": 10**400}, "INVALID_CLAIM_TYPE"),
    Case("exp-year-9999", _expiry(0), {"exp": 253402300799}, None),
    Case("exp-missing", _expiry(0), {}, "MISSING_CLAIM"),
    Case("exp-true", _expiry(0), {"exp": True}, "INVALID_CLAIM_TYPE"),
    Case("exp-string", _expiry(0), {"exp": str(NOW + 60)}, "INVALID_CLAIM_TYPE"),
    Case("exp-null", _expiry(0), {"exp": None}, "INVALID_CLAIM_TYPE"),
    Case("exp-nan", _expiry(0), {"exp": float("nan")}, "INVALID_CLAIM_TYPE"),
    Case("exp-infinity", _expiry(0), {"exp": float("inf")}, "INVALID_CLAIM_TYPE"),
    # nbf (4.1.5): optional; refused before nbf - skew.
    Case("nbf-absent", _not_before(0), {}, None),
    Case("nbf-exactly-now", _not_before(0), {"nbf": NOW}, None),
    Case("nbf-future", _not_before(0), {"nbf": NOW + 1}, "TOKEN_NOT_YET_VALID"),
    Case("nbf-within-skew", _not_before(60), {"nbf": NOW + 60}, None),
    Case("nbf-past-skew", _not_before(60), {"nbf": NOW + 61}, "TOKEN_NOT_YET_VALID"),
    Case("nbf-false", _not_before(0), {"nbf": False}, "INVALID_CLAIM_TYPE"),
    Case("nbf-string", _not_before(0), {"nbf": "0"}, "INVALID_CLAIM_TYPE"),
    # iat (4.1.6): required, not in the future, not older than max_age.
    Case("iat-now", _issued_at(0), {"iat": NOW}, None),
    Case("iat-future", _issued_at(0), {"iat": NOW + 1}, "TOKEN_ISSUED_IN_FUTURE"),
    Case("iat-within-skew", _issued_at(30), {"iat": NOW + 30}, None),
    Case("iat-past-skew", _issued_at(30), {"iat": NOW + 31}, "TOKEN_ISSUED_IN_FUTURE"),
    Case("iat-at-max-age", _issued_at(0, 3600), {"iat": NOW - 3600}, None),
    Case("iat-over-max-age", _issued_at(0, 3600), {"iat": NOW - 3601}, "TOKEN_TOO_OLD"),
    Case("iat-max-age-skew", _issued_at(60, 3600), {"iat": NOW - 3660}, None),
    Case(
        "iat-over-max-age-skew",
        _issued_at(60, 3600),
        {"iat": NOW - 3661},
        "TOKEN_TOO_OLD",
    ),
    Case("iat-old-no-max-age", _issued_at(0), {"iat": 0}, None),
    Case("iat-missing", _issued_at(0), {}, "MISSING_CLAIM"),
    Case("iat-true", _issued_at(0), {"iat": True}, "INVALID_CLAIM_TYPE"),
    Case("iat-string", _issued_at(0), {"iat": str(NOW)}, "INVALID_CLAIM_TYPE"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_claim_check(case: Case) -> None:
    if case.reason is None:
        case.check(case.claims)
        return

    with pytest.raises(InvalidGrant) as caught:
        case.check(case.claims)

    assert caught.value.reason == case.reason
    claim = case.name.split("-")[0]
    assert caught.value.metadata == {"claim": claim}


def test_check_audience_refuses_a_single_string_of_accepted_audiences() -> None:
    # "in" on a string would accept any substring of it.
    with pytest.raises(TypeError):
        check_audience({"aud": "sts"}, "https://sts.mesh.test")


def _check_all(claims: Mapping[str, Any]) -> None:
    check_claims(
        claims,
        issuer=ISSUER,
        audiences={AUDIENCE},
        now=NOW,
        skew=0,
        max_age=3600,
    )


def test_check_claims_accepts_good_claims() -> None:
    _check_all(good_claims())


@dataclass(frozen=True)
class OrderCase:
    name: str
    claims: Mapping[str, Any]
    reason: str


# Each case breaks every claim from its own onwards; the first one reported
# must be the earliest in RFC 7519 section 4.1 order.
_BROKEN = {
    "iss": "https://elsewhere.test",
    "sub": "",
    "aud": "https://elsewhere.test",
    "exp": NOW - 1,
    "nbf": NOW + 1,
    "iat": NOW + 1,
}
_ORDER = list(_BROKEN)
_REASONS = [
    "ISSUER_MISMATCH",
    "INVALID_CLAIM_TYPE",
    "AUDIENCE_MISMATCH",
    "TOKEN_EXPIRED",
    "TOKEN_NOT_YET_VALID",
    "TOKEN_ISSUED_IN_FUTURE",
]
ORDER_CASES = [
    OrderCase(
        f"from-{name}",
        good_claims(**{later: _BROKEN[later] for later in _ORDER[index:]}),
        _REASONS[index],
    )
    for index, name in enumerate(_ORDER)
]


@pytest.mark.parametrize("case", ORDER_CASES, ids=lambda case: case.name)
def test_check_claims_reports_the_first_failure_in_rfc_order(case: OrderCase) -> None:
    with pytest.raises(InvalidGrant) as caught:
        _check_all(case.claims)

    assert caught.value.reason == case.reason


def test_claim_rules_check_runs_every_check() -> None:
    rules = ClaimRules(ISSUER, frozenset({AUDIENCE}), skew=0, max_age=60)

    rules.check(good_claims(), NOW)
    with pytest.raises(InvalidGrant) as caught:
        rules.check(good_claims(iat=NOW - 61), NOW)

    assert caught.value.reason == "TOKEN_TOO_OLD"


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (("", frozenset({"a"}), 0, None), "issuer"),
        (("i", frozenset(), 0, None), "audiences"),
        (("i", frozenset({"a"}), -1, None), "skew"),
        (("i", frozenset({"a"}), 0, 0), "max_age"),
    ],
    ids=["issuer", "audiences", "skew", "max-age"],
)
def test_claim_rules_refuse_bad_settings(
    arguments: tuple[str, frozenset[str], int, int | None], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        ClaimRules(*arguments)


@pytest.mark.parametrize("value", [1e300, 2**63, 10**30, -1])
def test_time_claim_outside_any_real_time_is_refused(value: float) -> None:
    with pytest.raises(InvalidGrant) as caught:
        check_expiry({"exp": value}, now=1_000_000.0, skew=0)

    assert caught.value.reason == "INVALID_CLAIM_TYPE"
