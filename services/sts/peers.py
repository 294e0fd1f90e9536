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

CALL_TIMEOUT_SECONDS = 3.0

T = TypeVar("T")
_OUTAGE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
)


def is_outage(exc: BaseException) -> bool:
    """Whether a failed call means the peer could not answer at all."""
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _OUTAGE_CODES


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

    async def call(self, make_call: Callable[[float, bool], Awaitable[T]]) -> T:
        """Runs ``make_call(timeout, wait_for_ready)``; raises ``WifError``.

        UNAVAILABLE, a deadline and an open circuit all become
        ``TemporarilyUnavailable``, so the exchange fails closed.
        """
        assert self.breaker is not None
        wait = self.breaker.is_probe_due()
        try:
            result, _ = await self.breaker.call(lambda: make_call(self.timeout, wait))
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, self.name) from exc
        return result
