"""Admission of each request to the STS: the per-caller rate limit.

Callers are told apart by their source address only (the gRPC peer address
or the HTTP remote address), so callers behind one proxy or NAT share a
bucket. Every refusal is counted and audited.
"""

from __future__ import annotations

from wif.audit import AuditLog
from wif.metrics import RATE_LIMITED
from wif.ratelimit import RateLimited, RateLimiter


class Admission:
    """Lets a request in or raises :class:`~wif.ratelimit.RateLimited`."""

    def __init__(self, limiter: RateLimiter, audit: AuditLog) -> None:
        self._limiter = limiter
        self._audit = audit

    async def admit(self, caller: str, surface: str, endpoint: str) -> None:
        """Takes one request from ``caller``'s allowance; audits a refusal.

        ``surface`` is ``grpc`` or ``http``; ``endpoint`` the RPC or the path.
        """
        try:
            self._limiter.check(caller)
        except RateLimited as refused:
            RATE_LIMITED.add(1, {"surface": surface})
            # Unawaited: a refusal hands nothing out, and a caller over its
            # limit must not make the STS wait for the disk on its behalf.
            self._audit.record_nowait(
                "request.rate_limited",
                "refused",
                reason=refused.reason,
                source_address=caller,
                surface=surface,
                endpoint=endpoint,
            )
            raise


def no_limit(audit: AuditLog) -> Admission:
    """An admission that lets every request in."""
    return Admission(RateLimiter(0, 1), audit)
