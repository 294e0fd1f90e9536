"""HTTP/1.1 over raw loopback sockets, for tests of slow and many connections.

A test that trickles a request head or holds connections open cannot use an
HTTP client library: these helpers write bytes and read answers directly.
Every wait is bounded by ``timeout`` (seconds).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

#: Seconds between two bytes of a trickled request.
TRICKLE_SECONDS = 0.05


def request_head(method: str, path: str, *headers: str) -> bytes:
    """A complete request head with a Host header and ``headers``."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def slow_head(path: str = "/", lines: int = 200) -> bytes:
    """A request head long enough that trickling it takes a while."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: test\r\n".encode() + b"X-Slow: yes\r\n" * lines
    )


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to 127.0.0.1:port."""
    return await asyncio.open_connection("127.0.0.1", port)


async def read_response(
    reader: asyncio.StreamReader, timeout: float
) -> tuple[int, bytes]:
    """Reads one response framed by Content-Length; returns status and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await asyncio.wait_for(reader.readexactly(length), timeout)
    return status, body


async def exchange(port: int, request: bytes, timeout: float) -> tuple[int, bytes]:
    """Sends one request on a new connection and reads its answer."""
    reader, writer = await connect(port)
    try:
        writer.write(request)
        return await read_response(reader, timeout)
    finally:
        writer.close()


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    with suppress(ConnectionResetError):
        while chunk := await reader.read(4096):
            received += chunk
    return received


async def trickle(
    writer: asyncio.StreamWriter, data: bytes, stop: asyncio.Event | None = None
) -> None:
    """Sends ``data`` a byte at a time until all is sent, refused or stopped."""
    for index in range(len(data)):
        if stop is not None and stop.is_set():
            return
        try:
            writer.write(data[index : index + 1])
            await writer.drain()
        except OSError:
            return
        await asyncio.sleep(TRICKLE_SECONDS)


async def time_to_close(port: int, head: bytes, timeout: float) -> tuple[float, bytes]:
    """Trickles ``head`` on a new connection until the server closes it.

    Returns the seconds that took and what the server sent before closing;
    fails if the server keeps the connection past ``timeout``.
    """
    reader, writer = await connect(port)
    started = time.monotonic()
    sending = asyncio.create_task(trickle(writer, head))
    try:
        answer = await asyncio.wait_for(until_closed(reader), timeout)
    finally:
        sending.cancel()
        writer.close()
    return time.monotonic() - started, answer
