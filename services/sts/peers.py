"""The STS's peers (the Policy service, the ITS) as it calls them.

Every call carries a deadline, and a circuit breaker per peer refuses calls
at once while the peer is known to be down, so that an exchange fails closed
quickly instead of piling up waiting calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from wif.breaker import CircuitBreaker
from wif.grpc_errors import error_from_rpc
from wif.telemetry import trace_metadata

CALL_TIMEOUT_SECONDS = 3.0

T = TypeVar("T")
_OUTAGE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
)


def is_outage(exc: BaseException) -> bool:
    """Whether a failed call means the peer could not answer at all."""
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _OUTAGE_CODES


@dataclass(frozen=True)
class CallOptions:
    """What every call to a peer passes to its stub method."""

    timeout: float
    wait_for_ready: bool
    metadata: tuple[tuple[str, str], ...]


@dataclass
class Peer:
    """A peer service as the STS calls it: a deadline and a circuit breaker.

    Every call has the deadline; the breaker refuses calls at once while the
    peer is known to be down (see :mod:`wif.breaker`). The half-open probe
    waits for the connection (within the deadline), so that a peer that has
    just come back is used as soon as the channel reconnects.
    """

    name: str
    timeout: float = CALL_TIMEOUT_SECONDS
    breaker: CircuitBreaker | None = None

    def __post_init__(self) -> None:
        if self.breaker is None:
            self.breaker = CircuitBreaker(self.name, is_outage)

    async def call(self, make_call: Callable[[CallOptions], Awaitable[T]]) -> T:
        """Runs ``make_call(options)``; raises ``WifError``.

        The options carry the deadline, whether to wait for the connection,
        and the trace context to send along.

        UNAVAILABLE, a deadline and an open circuit all become
        ``TemporarilyUnavailable``, so the exchange fails closed.
        """
        assert self.breaker is not None
        wait = self.breaker.is_probe_due()
        try:
            options = CallOptions(self.timeout, wait, trace_metadata())
            result, _ = await self.breaker.call(lambda: make_call(options))
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, self.name) from exc
        return result
