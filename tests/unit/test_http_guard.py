"""Tests for wif.http_guard: a real aiohttp server on loopback, raw sockets.

Each server is started in-process with a small head timeout, so a test
takes about a second. Timed assertions leave generous slack: the machine
running them may be loaded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from aiohttp import web

from wif.http_guard import ConnectionGuard, HttpLimits, start_guarded_site

HEAD_TIMEOUT = 0.5
#: Added to every upper bound on how long the server takes to act.
SLACK = 3.0
#: Seconds between two bytes of a trickled request head.
TRICKLE_SECONDS = 0.05
GET = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: test\r\n" + b"X-Slow: yes\r\n" * 200


@dataclass
class Served:
    port: int
    guard: ConnectionGuard


def _app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(HEAD_TIMEOUT * 3)
        return web.Response(text="done")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    @web.middleware
    async def refuse(request: web.Request, handler: object) -> web.StreamResponse:
        if request.path == "/refused":
            return web.Response(status=429)
        return await handler(request)  # type: ignore[operator,no-any-return]

    app = web.Application(middlewares=[refuse])
    app.router.add_get("/", hello)
    app.router.add_get("/slow", slow)
    app.router.add_post("/echo", echo)
    return app


@asynccontextmanager
async def guarded(
    max_connections: int = 100, keepalive: float = 15.0
) -> AsyncIterator[Served]:
    limits = HttpLimits(head_timeout=HEAD_TIMEOUT, max_connections=max_connections)
    runner, guard, port = await start_guarded_site(
        _app(),
        "127.0.0.1",
        0,
        limits,
        access_log=None,
        keepalive_timeout=keepalive,
        shutdown_timeout=1.0,
    )
    try:
        yield Served(port, guard)
    finally:
        await runner.cleanup()


async def _connect(
    port: int,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Reads one response with a Content-Length; returns status and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SLACK)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    body = await asyncio.wait_for(reader.readexactly(length), SLACK)
    return status, body


async def _get(port: int, path: str = "/") -> int:
    reader, writer = await _connect(port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        status, _ = await _response(reader)
        return status
    finally:
        writer.close()


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    with suppress(ConnectionResetError):
        while chunk := await reader.read(4096):
            received += chunk
    return received


async def _trickle(
    writer: asyncio.StreamWriter, data: bytes, stop: asyncio.Event | None = None
) -> None:
    """Sends ``data`` a byte at a time until it is sent, refused or stopped."""
    for index in range(len(data)):
        if stop is not None and stop.is_set():
            return
        try:
            writer.write(data[index : index + 1])
            await writer.drain()
        except (ConnectionError, OSError):
            return
        await asyncio.sleep(TRICKLE_SECONDS)


async def _time_to_close(port: int, head: bytes) -> tuple[float, bytes]:
    reader, writer = await _connect(port)
    started = time.monotonic()
    sending = asyncio.create_task(_trickle(writer, head))
    try:
        answer = await asyncio.wait_for(_closed(reader), HEAD_TIMEOUT + SLACK)
    finally:
        sending.cancel()
        writer.close()
    return time.monotonic() - started, answer


async def test_a_trickled_request_head_is_cut_off_after_the_head_timeout() -> None:
    async with guarded() as served:
        elapsed, answer = await _time_to_close(served.port, SLOW_HEAD)

    assert HEAD_TIMEOUT * 0.9 <= elapsed <= HEAD_TIMEOUT + SLACK
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout() -> (
    None
):
    async with guarded() as served:
        elapsed, answer = await _time_to_close(served.port, b"")

    assert HEAD_TIMEOUT * 0.9 <= elapsed <= HEAD_TIMEOUT + SLACK
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_normal_client_is_served_while_a_head_trickles() -> None:
    async with guarded() as served:
        reader, writer = await _connect(served.port)
        stop = asyncio.Event()
        sending = asyncio.create_task(_trickle(writer, SLOW_HEAD, stop))
        await asyncio.sleep(HEAD_TIMEOUT / 2)

        started = time.monotonic()
        status = await _get(served.port)
        served_in = time.monotonic() - started

        answer = await asyncio.wait_for(_closed(reader), HEAD_TIMEOUT + SLACK)
        stop.set()
        await sending
        writer.close()

    assert status == 200
    assert served_in < HEAD_TIMEOUT
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_many_slow_clients_do_not_starve_a_normal_one() -> None:
    slow_clients = 50
    async with guarded(max_connections=slow_clients + 10) as served:
        stop = asyncio.Event()
        connections = [await _connect(served.port) for _ in range(slow_clients)]
        senders = [
            asyncio.create_task(_trickle(writer, SLOW_HEAD, stop))
            for _, writer in connections
        ]
        await asyncio.sleep(HEAD_TIMEOUT / 2)

        started = time.monotonic()
        statuses = [await _get(served.port) for _ in range(5)]
        served_in = time.monotonic() - started

        answers = await asyncio.wait_for(
            asyncio.gather(*(_closed(reader) for reader, _ in connections)),
            HEAD_TIMEOUT + SLACK,
        )
        stop.set()
        await asyncio.gather(*senders)
        for _, writer in connections:
            writer.close()
        await asyncio.sleep(0.1)
        left_open = served.guard.open_connections

    assert statuses == [200] * 5
    assert served_in < SLACK
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    assert left_open == 0


async def test_the_head_of_a_later_request_on_a_kept_alive_connection_is_bounded() -> (
    None
):
    async with guarded() as served:
        reader, writer = await _connect(served.port)
        writer.write(GET)
        first = await _response(reader)
        await asyncio.sleep(HEAD_TIMEOUT * 1.5)  # idle: not cut by the head bound

        started = time.monotonic()
        sending = asyncio.create_task(_trickle(writer, SLOW_HEAD))
        answer = await asyncio.wait_for(_closed(reader), HEAD_TIMEOUT + SLACK)
        elapsed = time.monotonic() - started
        sending.cancel()
        writer.close()

    assert first == (200, b"ok")
    assert HEAD_TIMEOUT * 0.9 <= elapsed <= HEAD_TIMEOUT + SLACK
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_an_idle_kept_alive_connection_is_closed_by_the_keepalive_timeout() -> (
    None
):
    keepalive = HEAD_TIMEOUT * 4
    async with guarded(keepalive=keepalive) as served:
        reader, writer = await _connect(served.port)
        writer.write(GET)
        await _response(reader)
        idle_since = time.monotonic()

        await asyncio.sleep(HEAD_TIMEOUT * 2)
        writer.write(GET)
        second = await _response(reader)
        idle_since = time.monotonic()
        answer = await asyncio.wait_for(_closed(reader), keepalive + SLACK)
        idle_for = time.monotonic() - idle_since
        writer.close()

    assert second == (200, b"ok")
    assert answer == b""
    assert keepalive * 0.9 <= idle_for <= keepalive + SLACK


async def test_handling_and_body_are_not_bounded_by_the_head_timeout() -> None:
    async with guarded() as served:
        reader, writer = await _connect(served.port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        slow = await _response(reader)

        body = b"x" * 20
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: test\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        await _trickle(writer, body)  # about twice the head timeout
        echoed = await _response(reader)
        writer.close()

    assert slow == (200, b"done")
    assert echoed == (200, body)


async def test_a_request_answered_by_a_later_middleware_counts_as_received() -> None:
    async with guarded() as served:
        reader, writer = await _connect(served.port)
        writer.write(b"GET /refused HTTP/1.1\r\nHost: test\r\n\r\n")
        refused = await _response(reader)
        await asyncio.sleep(HEAD_TIMEOUT * 2)
        writer.write(GET)
        after = await _response(reader)
        writer.close()

    assert refused[0] == 429
    assert after == (200, b"ok")


async def test_pipelined_requests_are_all_answered() -> None:
    async with guarded() as served:
        reader, writer = await _connect(served.port)
        writer.write(GET * 3)
        answers = [await _response(reader) for _ in range(3)]
        writer.close()

    assert answers == [(200, b"ok")] * 3


async def test_a_connection_over_the_limit_gets_503_and_is_closed() -> None:
    async with guarded(max_connections=2) as served:
        held = [await _connect(served.port) for _ in range(2)]
        await asyncio.sleep(0.05)
        reader, writer = await _connect(served.port)
        refused = await asyncio.wait_for(_closed(reader), SLACK)
        writer.close()

        held[0][1].close()
        await asyncio.sleep(0.1)
        after_one_closed = await _get(served.port)
        for _, held_writer in held[1:]:
            held_writer.close()

    assert refused.startswith(b"HTTP/1.1 503 ")
    assert after_one_closed == 200


def test_limits_out_of_range_are_refused() -> None:
    for head_timeout, max_connections in [(0, 1), (float("inf"), 1), (1, 0)]:
        try:
            HttpLimits(head_timeout=head_timeout, max_connections=max_connections)
        except ValueError:
            continue
        raise AssertionError(f"{head_timeout}, {max_connections} accepted")
