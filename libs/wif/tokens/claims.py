"""Checks of a JWT's registered claims (RFC 7519 section 4.1).

Each check is one function that raises :class:`wif.errors.InvalidGrant`
with its own reason, so that a caller learns exactly which claim failed.
Times are NumericDate values (RFC 7519 section 2): a JSON number of seconds
since the epoch. Booleans and strings are refused rather than coerced.
``skew`` is the clock difference in seconds tolerated between the issuer
and this host.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from wif.errors import InvalidGrant
from wif.tokens import errors


def require_string(claims: Mapping[str, Any], name: str) -> str:
    """Return the claim ``name``, which must be a non-empty string.

    Raises:
        InvalidGrant: MISSING_CLAIM when absent, INVALID_CLAIM_TYPE when it
            is not a string or is empty.
    """
    if name not in claims:
        raise _missing(name)

    value = claims[name]
    if not isinstance(value, str) or not value:
        raise _invalid_type(name, "a non-empty string")
    return value


def check_issuer(claims: Mapping[str, Any], expected: str) -> None:
    """Require ``iss`` to equal ``expected`` exactly (RFC 7519 section 4.1.1).

    No normalisation happens: a trailing slash or a change of case is a
    different issuer.

    Raises:
        InvalidGrant: MISSING_CLAIM, INVALID_CLAIM_TYPE or ISSUER_MISMATCH.
    """
    if require_string(claims, "iss") != expected:
        raise InvalidGrant(
            "the token was issued by an issuer this relationship does not trust",
            reason=errors.ISSUER_MISMATCH,
            metadata={"claim": "iss"},
        )


def check_subject(claims: Mapping[str, Any]) -> None:
    """Require ``sub`` to be a non-empty string (RFC 7519 section 4.1.2).

    Raises:
        InvalidGrant: MISSING_CLAIM or INVALID_CLAIM_TYPE.
    """
    require_string(claims, "sub")


def check_audience(claims: Mapping[str, Any], accepted: Collection[str]) -> None:
    """Require one of the token's audiences to be accepted (RFC 7519 4.1.3).

    ``aud`` must be a string or a non-empty list of strings.

    Raises:
        InvalidGrant: MISSING_CLAIM, INVALID_CLAIM_TYPE or AUDIENCE_MISMATCH.
        TypeError: ``accepted`` is a single string, whose ``in`` would match
            substrings.
    """
    if isinstance(accepted, str):
        raise TypeError("accepted audiences must be a collection of strings")

    if not any(audience in accepted for audience in _audiences(claims)):
        raise InvalidGrant(
            "the token is not intended for an accepted audience",
            reason=errors.AUDIENCE_MISMATCH,
            metadata={"claim": "aud"},
        )


def check_expiry(claims: Mapping[str, Any], now: float, skew: int) -> None:
    """Require ``exp`` and refuse the token from ``exp + skew`` on (4.1.4).

    Raises:
        InvalidGrant: MISSING_CLAIM, INVALID_CLAIM_TYPE or TOKEN_EXPIRED.
    """
    if now >= _required_numeric_date(claims, "exp") + skew:
        raise InvalidGrant(
            "the token has expired",
            reason=errors.TOKEN_EXPIRED,
            metadata={"claim": "exp"},
        )


def check_not_before(claims: Mapping[str, Any], now: float, skew: int) -> None:
    """Refuse the token before ``nbf - skew`` when ``nbf`` is present (4.1.5).

    Raises:
        InvalidGrant: INVALID_CLAIM_TYPE or TOKEN_NOT_YET_VALID.
    """
    not_before = _numeric_date(claims, "nbf")
    if not_before is not None and not_before > now + skew:
        raise InvalidGrant(
            "the token is not valid yet",
            reason=errors.TOKEN_NOT_YET_VALID,
            metadata={"claim": "nbf"},
        )


def check_issued_at(
    claims: Mapping[str, Any], now: float, skew: int, max_age: int | None
) -> None:
    """Require ``iat`` in the past and, given ``max_age``, recent (4.1.6).

    Raises:
        InvalidGrant: MISSING_CLAIM, INVALID_CLAIM_TYPE, TOKEN_ISSUED_IN_FUTURE
            or TOKEN_TOO_OLD (older than ``max_age + skew`` seconds).
    """
    issued_at = _required_numeric_date(claims, "iat")
    if issued_at > now + skew:
        raise InvalidGrant(
            "the token claims to be issued in the future",
            reason=errors.TOKEN_ISSUED_IN_FUTURE,
            metadata={"claim": "iat"},
        )

    if max_age is not None and now - issued_at > max_age + skew:
        raise InvalidGrant(
            "the token is older than the maximum token age",
            reason=errors.TOKEN_TOO_OLD,
            metadata={"claim": "iat"},
        )


def check_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audiences: Collection[str],
    now: float,
    skew: int,
    max_age: int | None,
) -> None:
    """Run every registered-claim check, in the order RFC 7519 lists them.

    The signature must already have been verified: these checks trust the
    claims to be what the issuer wrote.

    Raises:
        InvalidGrant: with the reason of the first check that fails.
    """
    check_issuer(claims, issuer)

    check_subject(claims)

    check_audience(claims, audiences)

    check_expiry(claims, now, skew)

    check_not_before(claims, now, skew)

    check_issued_at(claims, now, skew, max_age)


@dataclass(frozen=True)
class ClaimRules:
    """What one trust relationship requires of a token's claims.

    Raises:
        ValueError: at construction, for an empty issuer or audience set, a
            negative skew or a maximum age that is not positive.
    """

    issuer: str
    audiences: frozenset[str]
    skew: int
    max_age: int | None = None

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("issuer must not be empty")
        if not self.audiences:
            raise ValueError("audiences must not be empty")
        if self.skew < 0:
            raise ValueError("skew must not be negative")
        if self.max_age is not None and self.max_age <= 0:
            raise ValueError("max_age must be positive")

    def check(self, claims: Mapping[str, Any], now: float) -> None:
        """Run :func:`check_claims` with these rules at time ``now``."""
        check_claims(
            claims,
            issuer=self.issuer,
            audiences=self.audiences,
            now=now,
            skew=self.skew,
            max_age=self.max_age,
        )


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    if "aud" not in claims:
        raise _missing("aud")

    value = claims["aud"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise _invalid_type("aud", "a string or a non-empty list of strings")


def _required_numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = _numeric_date(claims, name)
    if value is None:
        raise _missing(name)
    return value


#: 9999-12-31T23:59:59Z: the latest NumericDate accepted.
MAX_NUMERIC_DATE = 253402300799


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    if name not in claims:
        return None

    value = claims[name]
    # bool is an int subclass, and a JSON true must not pass for 1 second.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid_type(name, "a number of seconds")
    if isinstance(value, float) and not math.isfinite(value):
        raise _invalid_type(name, "a finite number of seconds")
    # Larger values mean nothing as a time, and overflow int64 fields downstream.
    if not 0 <= value <= MAX_NUMERIC_DATE:
        raise _invalid_type(name, "a time between 1970 and the year 9999")
    return value


def _missing(name: str) -> InvalidGrant:
    return InvalidGrant(
        f"the token has no {name} claim",
        reason=errors.MISSING_CLAIM,
        metadata={"claim": name},
    )


def _invalid_type(name: str, expected: str) -> InvalidGrant:
    return InvalidGrant(
        f"the {name} claim must be {expected}",
        reason=errors.INVALID_CLAIM_TYPE,
        metadata={"claim": name},
    )
