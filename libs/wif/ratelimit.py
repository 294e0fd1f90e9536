"""Per-caller rate limiting: one token bucket per source address.

Each caller (a source IP address) has a bucket holding up to ``burst``
tokens, refilled at ``rate`` tokens a second; a request takes one token, and
a request that finds the bucket empty is refused with :class:`RateLimited`,
which says when to retry. The number of buckets is bounded: when
``max_callers`` is reached, full buckets (callers that have been idle long
enough to be refilled) are dropped first, then the oldest.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from wif.errors import TemporarilyUnavailable


class RateLimited(TemporarilyUnavailable):
    """The caller sent more requests than its rate allows.

    gRPC: RESOURCE_EXHAUSTED, reason RATE_LIMITED. HTTP: 429 with an
    RFC 6749 ``temporarily_unavailable`` body and ``Retry-After``.
    """

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429
    default_reason = "RATE_LIMITED"

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            "too many requests from this caller; retry later",
            metadata={"retryAfterSeconds": str(seconds)},
        )
        #: Whole seconds to wait, as the HTTP ``Retry-After`` header gives them.
        self.retry_after_seconds = seconds


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per caller; ``rate`` 0 turns limiting off."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_callers: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 0 or burst < 1 or max_callers < 1:
            raise ValueError("rate must be 0 or more, burst and max_callers positive")
        self.rate = rate
        self.burst = burst
        self._max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether any request can be refused."""
        return self.rate > 0

    def check(self, caller: str) -> None:
        """Takes one token from ``caller``'s bucket; raises ``RateLimited``."""
        if not self.enabled:
            return
        now = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._new_bucket(caller, now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
            self._buckets.move_to_end(caller)

        if bucket.tokens < 1:
            raise RateLimited((1 - bucket.tokens) / self.rate)
        bucket.tokens -= 1

    def _new_bucket(self, caller: str, now: float) -> _Bucket:
        if len(self._buckets) >= self._max_callers:
            self._evict(now)
        bucket = _Bucket(tokens=float(self.burst), updated=now)
        self._buckets[caller] = bucket
        return bucket

    def _evict(self, now: float) -> None:
        refill = self.burst / self.rate
        idle = [c for c, b in self._buckets.items() if now - b.updated >= refill]
        for caller in idle:
            del self._buckets[caller]
        while len(self._buckets) >= self._max_callers:
            self._buckets.popitem(last=False)


__all__ = ["RateLimited", "RateLimiter"]
