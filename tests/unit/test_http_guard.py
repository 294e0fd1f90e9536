"""Tests for wif.http_guard: a real aiohttp server on loopback, raw sockets.

Each server is started in-process with a small head timeout, so a test
takes about a second. Timed assertions leave generous slack: the machine
running them may be loaded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from tests.support.raw_http import (
    connect,
    exchange,
    read_response,
    request_head,
    slow_head,
    time_to_close,
    trickle,
    until_closed,
)
from wif.http_guard import ConnectionGuard, HttpLimits, start_guarded_site

HEAD_TIMEOUT = 0.5
#: Added to every upper bound on how long the server takes to act.
SLACK = 3.0
GET = request_head("GET", "/")
SLOW_HEAD = slow_head()


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


async def _get(port: int, path: str = "/") -> int:
    status, _ = await exchange(port, request_head("GET", path), SLACK)
    return status


async def test_a_trickled_request_head_is_cut_off_after_the_head_timeout() -> None:
    async with guarded() as served:
        elapsed, answer = await time_to_close(
            served.port, SLOW_HEAD, HEAD_TIMEOUT + SLACK
        )

    assert HEAD_TIMEOUT * 0.9 <= elapsed <= HEAD_TIMEOUT + SLACK
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout() -> (
    None
):
    async with guarded() as served:
        elapsed, answer = await time_to_close(served.port, b"", HEAD_TIMEOUT + SLACK)

    assert HEAD_TIMEOUT * 0.9 <= elapsed <= HEAD_TIMEOUT + SLACK
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_normal_client_is_served_while_a_head_trickles() -> None:
    async with guarded() as served:
        reader, writer = await connect(served.port)
        stop = asyncio.Event()
        sending = asyncio.create_task(trickle(writer, SLOW_HEAD, stop))
        await asyncio.sleep(HEAD_TIMEOUT / 2)

        started = time.monotonic()
        status = await _get(served.port)
        served_in = time.monotonic() - started

        answer = await asyncio.wait_for(until_closed(reader), HEAD_TIMEOUT + SLACK)
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
        connections = [await connect(served.port) for _ in range(slow_clients)]
        senders = [
            asyncio.create_task(trickle(writer, SLOW_HEAD, stop))
            for _, writer in connections
        ]
        await asyncio.sleep(HEAD_TIMEOUT / 2)

        started = time.monotonic()
        statuses = [await _get(served.port) for _ in range(5)]
        served_in = time.monotonic() - started

        answers = await asyncio.wait_for(
            asyncio.gather(*(until_closed(reader) for reader, _ in connections)),
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
        reader, writer = await connect(served.port)
        writer.write(GET)
        first = await read_response(reader, SLACK)
        await asyncio.sleep(HEAD_TIMEOUT * 1.5)  # idle: not cut by the head bound

        started = time.monotonic()
        sending = asyncio.create_task(trickle(writer, SLOW_HEAD))
        answer = await asyncio.wait_for(until_closed(reader), HEAD_TIMEOUT + SLACK)
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
        reader, writer = await connect(served.port)
        writer.write(GET)
        await read_response(reader, SLACK)
        await asyncio.sleep(HEAD_TIMEOUT * 2)
        writer.write(GET)
        second = await read_response(reader, SLACK)
        idle_since = time.monotonic()
        answer = await asyncio.wait_for(until_closed(reader), keepalive + SLACK)
        idle_for = time.monotonic() - idle_since
        writer.close()

    assert second == (200, b"ok")
    assert answer == b""
    assert keepalive * 0.9 <= idle_for <= keepalive + SLACK


async def test_handling_and_body_are_not_bounded_by_the_head_timeout() -> None:
    async with guarded() as served:
        reader, writer = await connect(served.port)
        writer.write(request_head("GET", "/slow"))
        slow = await read_response(reader, SLACK)

        body = b"x" * 20
        writer.write(request_head("POST", "/echo", f"Content-Length: {len(body)}"))
        await trickle(writer, body)  # about twice the head timeout
        echoed = await read_response(reader, SLACK)
        writer.close()

    assert slow == (200, b"done")
    assert echoed == (200, body)


async def test_a_request_answered_by_a_later_middleware_counts_as_received() -> None:
    async with guarded() as served:
        reader, writer = await connect(served.port)
        writer.write(request_head("GET", "/refused"))
        refused = await read_response(reader, SLACK)
        await asyncio.sleep(HEAD_TIMEOUT * 2)
        writer.write(GET)
        after = await read_response(reader, SLACK)
        writer.close()

    assert refused[0] == 429
    assert after == (200, b"ok")


async def test_pipelined_requests_are_all_answered() -> None:
    async with guarded() as served:
        reader, writer = await connect(served.port)
        writer.write(GET * 3)
        answers = [await read_response(reader, SLACK) for _ in range(3)]
        writer.close()

    assert answers == [(200, b"ok")] * 3


async def test_a_connection_over_the_limit_gets_503_and_is_closed() -> None:
    async with guarded(max_connections=2) as served:
        held = [await connect(served.port) for _ in range(2)]
        await asyncio.sleep(0.05)
        reader, writer = await connect(served.port)
        refused = await asyncio.wait_for(until_closed(reader), SLACK)
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
