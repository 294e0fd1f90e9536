"""Per-caller rate limiting of the STS, on gRPC and HTTP, in a mesh of its own.

This mesh's STS allows RATE requests a second after a burst of BURST, so
that a few quick calls from this process (one caller, 127.0.0.1) reach it.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.support.mesh import TOKEN_EXCHANGE, audit_records, sts_stub
from wif.dev.mesh import start_mesh, stop_mesh
from wif.grpc_errors import error_info
from wif.v1 import sts_pb2

RATE = 2.0
BURST = 4
#: Seconds for an empty bucket to fill again.
REFILL_SECONDS = BURST / RATE + 0.2


@pytest.fixture(scope="module")
def limited_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A mesh whose STS rate-limits each caller tightly."""
    state = tmp_path_factory.mktemp("limited-mesh")
    settings = {
        "WIF_STS_RATE_LIMIT_PER_SECOND": str(RATE),
        "WIF_STS_RATE_LIMIT_BURST": str(BURST),
    }
    try:
        yield start_mesh(state, service_env=settings)
    finally:
        stop_mesh(state)


async def test_grpc_caller_over_its_rate_gets_resource_exhausted(
    limited_mesh: dict[str, Any],
) -> None:
    await asyncio.sleep(REFILL_SECONDS)
    channel, stub = sts_stub(limited_mesh)
    codes = []
    limited: list[grpc.aio.AioRpcError] = []
    async with channel:
        for _ in range(BURST + 3):
            try:
                await stub.ValidateToken(
                    sts_pb2.ValidateTokenRequest(token="not-a-token"), timeout=5
                )
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    limited.append(exc)

    assert codes[:BURST] == [grpc.StatusCode.UNAUTHENTICATED] * BURST
    assert len(limited) >= 2
    info = error_info(limited[0])
    assert info is not None
    assert info.reason == "RATE_LIMITED"
    assert info.metadata["oauthError"] == "temporarily_unavailable"
    assert int(info.metadata["retryAfterSeconds"]) >= 1


def _post_token(url: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    body = f"grant_type={TOKEN_EXCHANGE}&subject_token=x".encode()
    request = urllib.request.Request(url + "/token", data=body, method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


async def test_http_caller_over_its_rate_gets_429_with_retry_after(
    limited_mesh: dict[str, Any],
) -> None:
    await asyncio.sleep(REFILL_SECONDS)
    url = limited_mesh["sts"]["http"]
    answers = [await asyncio.to_thread(_post_token, url) for _ in range(BURST + 3)]

    assert [status for status, _, _ in answers[:BURST]] == [400] * BURST
    status, headers, body = answers[-1]
    assert status == 429
    assert body["error"] == "temporarily_unavailable"
    assert int(headers["Retry-After"]) >= 1
    assert headers["Cache-Control"] == "no-store"


async def test_a_limited_caller_is_let_in_again_after_its_bucket_refills(
    limited_mesh: dict[str, Any],
) -> None:
    url = limited_mesh["sts"]["http"]
    for _ in range(BURST + 1):
        await asyncio.to_thread(_post_token, url)
    assert (await asyncio.to_thread(_post_token, url))[0] == 429

    await asyncio.sleep(1 / RATE + 0.1)

    assert (await asyncio.to_thread(_post_token, url))[0] == 400


async def test_rate_limit_refusals_are_audited(limited_mesh: dict[str, Any]) -> None:
    deadline = time.monotonic() + 10
    records: list[dict[str, Any]] = []
    while not records and time.monotonic() < deadline:
        records = [
            r
            for r in audit_records(limited_mesh, "sts")
            if r["event"] == "request.rate_limited"
        ]
        await asyncio.sleep(0.1)

    surfaces = {r["surface"] for r in records}
    assert surfaces == {"grpc", "http"}
    assert {r["reason"] for r in records} == {"RATE_LIMITED"}
    assert {r["source_address"] for r in records} == {"127.0.0.1"}
    assert "ValidateToken" in {r["endpoint"] for r in records}
