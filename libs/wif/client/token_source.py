"""A mesh token that is always there: exchanged once, renewed before it expires.

A background thread renews the token when a set fraction of its lifetime
has passed (80% by default, minus a little random jitter so that replicas
do not renew in step), and retries with exponential backoff when the STS
fails. Callers of :meth:`TokenSource.token` get the cached token at once
while it is still valid; only a caller with no valid token waits for an
exchange.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from wif.client.errors import ExchangeFailed
from wif.client.exchangers import Exchanger, ExchangeRequest, IssuedToken

log = logging.getLogger(__name__)

DEFAULT_RENEW_FRACTION: Final = 0.8
DEFAULT_JITTER_FRACTION: Final = 0.05
#: A token this close to its expiry is no longer handed out.
DEFAULT_EXPIRY_MARGIN_SECONDS: Final = 5.0
MIN_RETRY_SECONDS: Final = 0.5
MAX_RETRY_SECONDS: Final = 30.0


def file_subject_token(path: str | Path) -> Callable[[], str]:
    """Read the platform token from ``path`` at every exchange.

    Kubernetes rewrites a projected service-account token in place before
    it expires, so the file is read afresh each time, never cached.
    """
    source = Path(path)

    def read() -> str:
        return source.read_text(encoding="ascii").strip()

    return read


@dataclass(frozen=True)
class _Cached:
    token: IssuedToken
    expires_at: float
    renew_at: float


class TokenSource:
    """A renewing mesh token for one audience and set of scopes.

    ``clock`` gives the wall-clock time in seconds; tests may inject their
    own. Use as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        exchanger: Exchanger,
        subject_token: Callable[[], str],
        *,
        audience: str | None = None,
        resource: str | None = None,
        scopes: tuple[str, ...] = (),
        renew_fraction: float = DEFAULT_RENEW_FRACTION,
        jitter_fraction: float = DEFAULT_JITTER_FRACTION,
        expiry_margin: float = DEFAULT_EXPIRY_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Raises ValueError for a fraction outside (0, 1) or no target."""
        if not 0 < renew_fraction < 1:
            raise ValueError("renew_fraction must be between 0 and 1")
        if not 0 <= jitter_fraction < renew_fraction:
            raise ValueError("jitter_fraction must be between 0 and renew_fraction")
        if audience is None and resource is None:
            raise ValueError("name an audience or a resource")

        self._exchanger = exchanger
        self._subject_token = subject_token
        self._request = ExchangeRequest(
            audience=(audience,) if audience else (),
            resource=(resource,) if resource else (),
            scopes=tuple(scopes),
        )
        self._renew_fraction = renew_fraction
        self._jitter_fraction = jitter_fraction
        self._expiry_margin = expiry_margin
        self._clock = clock

        self._cached: _Cached | None = None
        self._exchange_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0

    def token(self) -> str:
        """The current mesh token, exchanging first only if none is valid.

        Raises:
            ExchangeFailed: no valid token is cached and the exchange failed.
        """
        cached = self._valid()
        if cached is not None:
            return cached.token.access_token

        with self._exchange_lock:
            # Another thread may have exchanged while this one waited.
            cached = self._valid()
            if cached is None:
                cached = self._exchange_locked()
        self._wake.set()
        return cached.token.access_token

    def start(self) -> TokenSource:
        """Start the background renewal; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="wif-token-renewal", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the background renewal and wait for it."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=MAX_RETRY_SECONDS)
            self._thread = None

    def __enter__(self) -> TokenSource:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _valid(self) -> _Cached | None:
        cached = self._cached
        if cached is None or self._clock() >= cached.expires_at - self._expiry_margin:
            return None
        return cached

    def _exchange_locked(self) -> _Cached:
        issued = self._exchanger.exchange(self._subject_token(), self._request)
        now = self._clock()
        cached = _Cached(issued, now + issued.expires_in, self._renew_at(now, issued))
        self._cached = cached
        log.debug("exchanged a mesh token %s", issued.token_id or "(no id)")
        return cached

    def _renew_at(self, now: float, issued: IssuedToken) -> float:
        jitter = random.uniform(0, self._jitter_fraction)  # noqa: S311 - not secret
        return now + issued.expires_in * (self._renew_fraction - jitter)

    def _run(self) -> None:
        delay = MIN_RETRY_SECONDS
        while not self._stopped.is_set():
            cached = self._cached
            if cached is not None and self._clock() < cached.renew_at:
                self._wake.clear()
                self._wake.wait(timeout=cached.renew_at - self._clock())
                continue

            try:
                with self._exchange_lock:
                    self._exchange_locked()
                    self.renewals += 1
                delay = MIN_RETRY_SECONDS
            except Exception as exc:
                delay = self._backoff(exc, delay)

    def _backoff(self, exc: Exception, delay: float) -> float:
        reason = exc.error if isinstance(exc, ExchangeFailed) else type(exc).__name__
        log.warning("mesh token renewal failed (%s); retrying in %.1fs", reason, delay)
        self._stopped.wait(timeout=delay)
        return min(delay * 2, MAX_RETRY_SECONDS)
