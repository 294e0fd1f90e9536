"""Tests for wif.ratelimit: a token bucket per caller."""

from __future__ import annotations

import grpc
import pytest

from wif.ratelimit import RateLimited, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_gets_its_burst_then_is_limited() -> None:
    limiter = RateLimiter(2, 3, clock=Clock())
    for _ in range(3):
        limiter.check("10.0.0.1")

    with pytest.raises(RateLimited) as caught:
        limiter.check("10.0.0.1")

    error = caught.value
    assert (error.grpc_code, error.http_status) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        429,
    )
    assert (error.reason, error.oauth_error) == (
        "RATE_LIMITED",
        "temporarily_unavailable",
    )
    assert error.retry_after_seconds == 1


def test_callers_have_separate_buckets() -> None:
    limiter = RateLimiter(1, 1, clock=Clock())
    limiter.check("10.0.0.1")

    limiter.check("10.0.0.2")


def test_the_bucket_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 1, clock=clock)
    limiter.check("a")
    clock.now += 0.5

    limiter.check("a")


def test_a_zero_rate_turns_limiting_off() -> None:
    limiter = RateLimiter(0, 1)

    for _ in range(1000):
        limiter.check("a")

    assert not limiter.enabled


def test_the_number_of_buckets_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(1, 1, max_callers=2, clock=clock)
    for caller in ("a", "b", "c"):
        limiter.check(caller)

    limiter.check("a")  # "a" was dropped, so it starts with a full bucket

    assert len(limiter._buckets) == 2


@pytest.mark.parametrize(("rate", "burst"), [(-1, 1), (1, 0)])
def test_bad_limits_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate must be 0 or more"):
        RateLimiter(rate, burst)
