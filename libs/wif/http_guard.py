"""Connection limits of the services' HTTP listeners: slow request heads, crowds.

aiohttp bounds the size of a request head but has no setting for the time
it may take to arrive. With older releases a client that trickles header
bytes keeps a connection (a file descriptor, a parser, a task) for as long
as it likes; recent ones (3.14) close a connection still waiting for a head
when its keep-alive timer runs out, a side effect of closing connections
that never send a request. Every HTTP listener of the services is started
with :func:`start_guarded_site`, whose connections pass through a
:class:`ConnectionGuard`, whatever the aiohttp version:

- A complete request head (request line and headers) must arrive within
  ``head_timeout`` seconds, counted from the accept for the first request
  and, on a kept-alive connection, from the first byte of each later one.
  A connection that misses it gets ``408 Request Timeout`` and is closed.
  Once the head is in, the bound no longer applies: the handler bounds the
  body (see ``services.sts.http.BODY_TIMEOUT_SECONDS``), and a connection
  idle between requests is closed by aiohttp's keep-alive timeout as before.
- At most ``max_connections`` connections are open at once on the listener;
  one more is answered ``503 Service Unavailable`` and closed at once.

The guard knows that a head is complete when aiohttp hands the request to
the application: its middleware runs first of all (it is put in front of
the application's own). Both refusals happen below aiohttp, so their
answers have no body; each is counted in ``wif_http_connections_closed``
by reason. The cap keeps the process within its file descriptors; it does
not keep a listener available to everyone when many clients fill it within
one ``head_timeout``: that needs per-source limits in front of the mesh.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.typedefs import Middleware
from yarl import URL

from wif.metrics import HTTP_CONNECTIONS_CLOSED

log = logging.getLogger(__name__)

#: Reasons a connection is closed by the guard: a metric attribute and a log field.
SLOW_REQUEST_HEAD = "SLOW_REQUEST_HEAD"
TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)
_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
    b"Retry-After: 1\r\nContent-Length: 0\r\n\r\n"
)

ProtocolFactory = Callable[[], asyncio.Protocol]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class HttpLimits:
    """What a listener tolerates; raises ``ValueError`` for a limit out of range.

    The services take both from their settings ``http_head_timeout_seconds``
    and ``http_max_connections`` (:class:`wif.settings.CommonSettings`).
    """

    #: Seconds a client has to send a complete request head.
    head_timeout: float
    #: Connections open at once on the listener.
    max_connections: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.head_timeout) and self.head_timeout > 0):
            raise ValueError("head_timeout must be a finite number above zero")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least one")


class ConnectionGuard:
    """The connections of one listener, their head deadlines and their count."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self._open: dict[asyncio.BaseTransport, _GuardedConnection] = {}

    @property
    def open_connections(self) -> int:
        """Connections admitted and not yet closed."""
        return len(self._open)

    def protocol_factory(self, make_protocol: ProtocolFactory) -> ProtocolFactory:
        """Wraps the protocol factory of a listener (aiohttp's ``web.Server``)."""
        return lambda: _GuardedConnection(self, make_protocol)

    def middleware(self) -> Middleware:
        """The middleware that tells a connection its request head is complete.

        It must run before any other, so that a request refused by a later
        middleware still counts as received.
        """

        @web.middleware
        async def head_received(
            request: web.Request, handler: Handler
        ) -> web.StreamResponse:
            transport = request.transport
            connection = self._open.get(transport) if transport else None
            if connection is None:
                return await handler(request)
            connection.request_started()
            try:
                return await handler(request)
            finally:
                request.content.on_eof(connection.request_finished)

        return head_received

    def admit(self, transport: asyncio.BaseTransport, conn: _GuardedConnection) -> bool:
        """Counts a new connection in; False when the listener is full."""
        if len(self._open) >= self.limits.max_connections:
            return False
        self._open[transport] = conn
        return True

    def forget(self, transport: asyncio.BaseTransport) -> None:
        """Counts a closed connection out."""
        self._open.pop(transport, None)


class _GuardedConnection(asyncio.Protocol):
    """One connection: aiohttp's protocol inside, a head deadline around it."""

    def __init__(self, guard: ConnectionGuard, make_protocol: ProtocolFactory) -> None:
        self._guard = guard
        self._make_protocol = make_protocol
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if not self._guard.admit(transport, self):
            self._close(TOO_MANY_CONNECTIONS, _UNAVAILABLE)
            return
        self._inner = self._make_protocol()
        self._inner.connection_made(transport)
        self._start_deadline()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if data and not self._in_request and self._deadline is None:
            self._start_deadline()  # the first byte of the next request
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        if self._transport is not None:
            self._guard.forget(self._transport)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def request_started(self) -> None:
        """The head is complete: the deadline stops until the request is over."""
        self._in_request = True
        self._stop_deadline()

    def request_finished(self) -> None:
        """The request's body is read: the next byte starts a new deadline."""
        self._in_request = False

    def _start_deadline(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.limits.head_timeout, self._expire)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self._in_request:
            self._close(SLOW_REQUEST_HEAD, _REQUEST_TIMEOUT)

    def _close(self, reason: str, answer: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        HTTP_CONNECTIONS_CLOSED.add(1, {"reason": reason})
        log.debug(
            "HTTP connection closed",
            extra={"fields": {"reason": reason, "peer": _peer(transport)}},
        )
        if transport.get_write_buffer_size():
            transport.abort()  # a client that does not read either
            return
        transport.write(answer)
        transport.close()


def _peer(transport: asyncio.BaseTransport) -> str:
    peer: Any = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


class GuardedSite(web.BaseSite):
    """A TCP listener, as ``web.TCPSite``, whose connections pass a guard."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._host, port=self._port))

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None, "BaseSite refuses a runner that is not set up"
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
        )


async def start_guarded_site(
    app: web.Application,
    host: str,
    port: int,
    limits: HttpLimits,
    **runner_options: Any,
) -> tuple[web.AppRunner, ConnectionGuard, int]:
    """Serves ``app`` on ``host:port`` (port 0 picks one) within ``limits``.

    ``runner_options`` go to ``web.AppRunner`` (header sizes, keep-alive).
    Puts the guard's middleware in front of the application's own, so the
    application must not be running yet. Returns the runner (its
    ``cleanup`` stops the listener), the guard and the bound port.
    """
    guard = ConnectionGuard(limits)
    app.middlewares.insert(0, guard.middleware())
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    site = GuardedSite(runner, host, port, guard)
    await site.start()
    bound = int(runner.addresses[0][1])
    return runner, guard, bound
