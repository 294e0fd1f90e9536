"""A circuit breaker and an in-flight cap for calls to another mesh service.

A peer that is down answers UNAVAILABLE at once; a peer that hangs costs
every caller the whole deadline. Without a breaker each request in a burst
waits out that deadline and the waiting calls pile up. :class:`CircuitBreaker`
counts consecutive failures that mean "the peer cannot answer" (UNAVAILABLE,
DEADLINE_EXCEEDED); after ``failure_threshold`` of them it opens and refuses
every call at once. After ``cooldown_seconds`` it lets one probe through
(half-open): a success closes it, a failure opens it again. A refused call
raises :class:`~wif.errors.TemporarilyUnavailable`, so the caller fails closed.

The breaker also caps the calls in flight to the peer at ``max_in_flight``:
a call beyond the cap is refused instead of queueing behind a slow peer.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from wif.errors import TemporarilyUnavailable
from wif.metrics import PEER_CALLS_IN_FLIGHT

log = logging.getLogger(__name__)

T = TypeVar("T")


class State(enum.Enum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Guards the calls to one peer; see the module's docstring.

    ``is_outage`` tells whether an exception raised by a call means the peer
    could not answer (it counts as a failure); any other exception is an
    answer, so it counts as a success. Not thread-safe: one event loop only.
    """

    def __init__(
        self,
        peer: str,
        is_outage: Callable[[BaseException], bool],
        *,
        failure_threshold: int = 5,
        cooldown_seconds: float = 0.5,
        max_in_flight: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cooldown_seconds <= 0 or max_in_flight < 1:
            raise ValueError("breaker limits must be positive")
        self.peer = peer
        self._is_outage = is_outage
        self._threshold = failure_threshold
        self._cooldown = cooldown_seconds
        self._max_in_flight = max_in_flight
        self._clock = clock
        self._state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.in_flight = 0
        #: The most calls ever in flight at once, for tests and benchmarks.
        self.max_in_flight_seen = 0

    @property
    def state(self) -> State:
        """The state now; an open breaker past its cool-down reads half-open."""
        if self._state is State.OPEN and self._cooled_down():
            return State.HALF_OPEN
        return self._state

    async def call(self, make_call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Runs ``make_call()`` unless the breaker refuses it.

        Returns the result and whether this call was the half-open probe
        (a probe may want to wait for the peer's connection).

        Raises:
            TemporarilyUnavailable: the breaker is open, a probe is already
                out, or the in-flight cap is reached.
            Exception: whatever the call raised.
        """
        probe = self._admit()
        self.in_flight += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
        PEER_CALLS_IN_FLIGHT.add(1, {"peer": self.peer})
        try:
            result = await make_call()
        except Exception as exc:
            if self._is_outage(exc):
                self._failed(probe)
            else:
                self._succeeded()
            raise
        finally:
            self.in_flight -= 1
            PEER_CALLS_IN_FLIGHT.add(-1, {"peer": self.peer})
            if probe:
                self._probing = False
        self._succeeded()
        return result, probe

    def is_probe_due(self) -> bool:
        """Whether the next admitted call would be the half-open probe."""
        return self.state is State.HALF_OPEN and not self._probing

    def _admit(self) -> bool:
        state = self.state
        if state is State.OPEN or (state is State.HALF_OPEN and self._probing):
            raise self._refusal("the circuit to the peer is open")
        if self.in_flight >= self._max_in_flight:
            raise self._refusal("too many calls to the peer are in flight")
        if state is State.HALF_OPEN:
            self._probing = True
            return True
        return False

    def _succeeded(self) -> None:
        if self._state is not State.CLOSED:
            log.info("circuit to the %s closed", self.peer)
        self._state = State.CLOSED
        self._failures = 0

    def _failed(self, probe: bool) -> None:
        self._failures += 1
        if probe or (self._state is State.CLOSED and self._failures >= self._threshold):
            if self._state is State.CLOSED:
                log.warning(
                    "circuit to the %s opened after %d failures",
                    self.peer,
                    self._failures,
                )
            self._state = State.OPEN
            self._opened_at = self._clock()

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self._cooldown

    def _refusal(self, why: str) -> TemporarilyUnavailable:
        name = self.peer.upper().replace(" ", "_")
        return TemporarilyUnavailable(
            f"the {self.peer} is unavailable: {why}",
            reason=f"{name}_UNAVAILABLE",
            metadata={"circuit": self.state.value},
        )


__all__ = ["CircuitBreaker", "State"]
