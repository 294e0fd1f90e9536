"""Slow and crowding HTTP clients against running services (slowloris).

An STS replica beside the session's mesh runs with a one-second head
timeout and a small connection limit, so that its token endpoint and its
metrics listener can be tried in seconds; the mesh's own ITS shows that a
service started without these settings cuts a slow head after the default
ten seconds. Timed assertions leave generous slack for a loaded machine.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

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
from tests.support.replicas import start_replica
from wif.dev.etcd import free_port

HEAD_TIMEOUT = 1.0
MAX_CONNECTIONS = 64
DEFAULT_HEAD_TIMEOUT = 10.0
SLACK = 5.0
#: A form the token endpoint refuses at once (400): proof that it answered.
BAD_GRANT = b"grant_type=password"


@dataclass
class Listeners:
    http: int
    metrics: int


@pytest.fixture(scope="module")
def sts(mesh: dict[str, Any]) -> Iterator[Listeners]:
    """An STS replica with a short head timeout and a small connection limit."""
    state = Path(mesh["state_dir"])
    env = {
        "WIF_ETCD_ENDPOINT": mesh["etcd"],
        "WIF_KEK_FILE": str(state / "kek"),
        "WIF_ITS_ADDRESS": mesh["its"]["grpc"],
        "WIF_POLICY_ADDRESS": mesh["policy"]["grpc"],
        "WIF_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        "WIF_HTTP_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "WIF_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    replica = start_replica("sts", "sts-slow-clients", state, env)
    try:
        ready = json.loads((state / "sts-slow-clients.ready").read_text())
        yield Listeners(http=ready["http_port"], metrics=ready["metrics_port"])
    finally:
        replica.stop()


def _closed_counts(sts: Listeners) -> dict[str, float]:
    """``wif_http_connections_closed`` by reason, from the replica's /metrics."""
    url = f"http://127.0.0.1:{sts.metrics}/metrics"
    with urllib.request.urlopen(url, timeout=SLACK) as answer:
        text = answer.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("wif_http_connections_closed_total{"):
            labels, _, value = line.rpartition(" ")
            reason = labels.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = counts.get(reason, 0.0) + float(value)
    return counts


def _token_request(body: bytes = BAD_GRANT) -> bytes:
    return (
        request_head(
            "POST",
            "/token",
            "Content-Type: application/x-www-form-urlencoded",
            f"Content-Length: {len(body)}",
        )
        + body
    )


@pytest.mark.parametrize("listener", ["http", "metrics"])
async def test_a_trickled_head_is_cut_off_after_the_head_timeout(
    sts: Listeners, listener: str
) -> None:
    port = getattr(sts, listener)
    before = _closed_counts(sts).get("SLOW_REQUEST_HEAD", 0.0)

    elapsed, answer = await time_to_close(
        port, slow_head("/token"), HEAD_TIMEOUT + SLACK
    )

    assert HEAD_TIMEOUT * 0.9 <= elapsed <= HEAD_TIMEOUT + SLACK
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert _closed_counts(sts).get("SLOW_REQUEST_HEAD", 0.0) == before + 1


async def test_the_token_endpoint_serves_others_while_a_head_trickles(
    sts: Listeners,
) -> None:
    reader, writer = await connect(sts.http)
    stop = asyncio.Event()
    sending = asyncio.create_task(trickle(writer, slow_head("/token"), stop))
    await asyncio.sleep(HEAD_TIMEOUT / 2)

    started = time.monotonic()
    status, body = await exchange(sts.http, _token_request(), SLACK)
    served_in = time.monotonic() - started
    answer = await asyncio.wait_for(until_closed(reader), HEAD_TIMEOUT + SLACK)
    stop.set()
    await sending
    writer.close()

    assert (status, json.loads(body)["error"]) == (400, "unsupported_grant_type")
    assert served_in < HEAD_TIMEOUT
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_many_slow_clients_do_not_starve_a_normal_one(sts: Listeners) -> None:
    stop = asyncio.Event()
    connections = [await connect(sts.http) for _ in range(MAX_CONNECTIONS - 8)]
    senders = [
        asyncio.create_task(trickle(writer, slow_head("/token"), stop))
        for _, writer in connections
    ]
    await asyncio.sleep(HEAD_TIMEOUT / 2)

    started = time.monotonic()
    statuses = [
        (await exchange(sts.http, _token_request(), SLACK))[0] for _ in range(5)
    ]
    served_in = time.monotonic() - started
    answers = await asyncio.wait_for(
        asyncio.gather(*(until_closed(reader) for reader, _ in connections)),
        HEAD_TIMEOUT + SLACK,
    )
    stop.set()
    await asyncio.gather(*senders)
    for _, writer in connections:
        writer.close()

    assert statuses == [400] * 5
    assert served_in < SLACK
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)


async def test_a_connection_over_the_limit_gets_503(sts: Listeners) -> None:
    before = _closed_counts(sts).get("TOO_MANY_CONNECTIONS", 0.0)
    held = []
    for _ in range(MAX_CONNECTIONS):  # each kept alive after one answered request
        reader, writer = await connect(sts.http)
        writer.write(_token_request())
        await read_response(reader, SLACK)
        held.append(writer)

    reader, writer = await connect(sts.http)
    refused = await asyncio.wait_for(until_closed(reader), SLACK)
    writer.close()
    for held_writer in held:
        held_writer.close()
    await asyncio.sleep(0.2)
    after, _ = await exchange(sts.http, _token_request(), SLACK)

    assert refused.startswith(b"HTTP/1.1 503 ")
    assert after == 400
    assert _closed_counts(sts).get("TOO_MANY_CONNECTIONS", 0.0) == before + 1


async def test_the_its_cuts_a_slow_head_after_the_default_timeout(
    mesh: dict[str, Any],
) -> None:
    jwks = urlsplit(mesh["its"]["http"]).port
    metrics = urlsplit(mesh["metrics"]["its"]).port
    assert jwks is not None
    assert metrics is not None

    results = await asyncio.gather(
        time_to_close(
            jwks, slow_head("/.well-known/jwks.json"), DEFAULT_HEAD_TIMEOUT + SLACK
        ),
        time_to_close(metrics, slow_head("/metrics"), DEFAULT_HEAD_TIMEOUT + SLACK),
    )

    for elapsed, answer in results:
        assert DEFAULT_HEAD_TIMEOUT * 0.9 <= elapsed <= DEFAULT_HEAD_TIMEOUT + SLACK
        assert answer.startswith(b"HTTP/1.1 408 ")
