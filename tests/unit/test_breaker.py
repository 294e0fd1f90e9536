"""Tests for wif.breaker: open after failures, probe after cool-down, cap."""

from __future__ import annotations

import asyncio

import pytest

from wif.breaker import CircuitBreaker, State
from wif.errors import TemporarilyUnavailable


class Down(Exception):
    """Stands for UNAVAILABLE or DEADLINE_EXCEEDED from the peer."""


class Refused(Exception):
    """Stands for an answer from the peer (the peer is up)."""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(
        "policy service",
        lambda exc: isinstance(exc, Down),
        failure_threshold=3,
        cooldown_seconds=0.5,
        max_in_flight=2,
        clock=clock,
    )


async def _fail(breaker: CircuitBreaker, exc: Exception) -> None:
    async def call() -> None:
        raise exc

    with pytest.raises(type(exc)):
        await breaker.call(call)


async def _ok() -> str:
    return "ok"


async def test_breaker_opens_after_consecutive_outages(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        await _fail(breaker, Down())

    with pytest.raises(TemporarilyUnavailable) as caught:
        await breaker.call(_ok)

    assert breaker.state is State.OPEN
    assert caught.value.reason == "POLICY_SERVICE_UNAVAILABLE"
    assert caught.value.metadata == {"circuit": "open"}


async def test_an_answer_resets_the_count_of_failures(breaker: CircuitBreaker) -> None:
    await _fail(breaker, Down())
    await _fail(breaker, Down())
    await _fail(breaker, Refused())
    await _fail(breaker, Down())

    assert breaker.state is State.CLOSED


async def test_one_probe_after_the_cooldown_closes_on_success(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    for _ in range(3):
        await _fail(breaker, Down())
    clock.now += 0.5
    assert breaker.is_probe_due()

    result = await breaker.call(_ok)

    assert result == ("ok", True)
    assert breaker.state is State.CLOSED


async def test_a_failed_probe_opens_the_circuit_again(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    for _ in range(3):
        await _fail(breaker, Down())
    clock.now += 0.5

    await _fail(breaker, Down())

    reopened = breaker.state
    clock.now += 0.5

    assert reopened is State.OPEN
    assert breaker.state is State.HALF_OPEN


async def test_only_one_probe_is_out_at_a_time(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    for _ in range(3):
        await _fail(breaker, Down())
    clock.now += 0.5
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()

    probe = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)
    with pytest.raises(TemporarilyUnavailable):
        await breaker.call(_ok)
    release.set()
    await probe

    assert breaker.state is State.CLOSED


async def test_calls_beyond_the_in_flight_cap_are_refused_at_once(
    breaker: CircuitBreaker,
) -> None:
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()

    waiting = [asyncio.create_task(breaker.call(slow)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(TemporarilyUnavailable):
        await breaker.call(_ok)
    release.set()
    await asyncio.gather(*waiting)

    assert breaker.max_in_flight_seen == 2
    assert breaker.in_flight == 0
    assert breaker.state is State.CLOSED
