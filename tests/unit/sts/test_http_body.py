"""Tests for how services.sts.http reads a request body it cannot use."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.sts.http import build_app

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Unasked:
    """An exchanger these requests never reach: each fails on its form first."""

    async def exchange(self, request: object) -> object:
        raise AssertionError("the exchanger was asked")

    async def explain(self, request: object) -> object:
        raise AssertionError("the exchanger was asked")


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(exchanger=Unasked())  # type: ignore[arg-type]
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/token", "/token/explain"])
async def test_a_body_that_does_not_decode_as_its_content_encoding_is_a_400(
    client: TestClient[Any, Any], path: str
) -> None:
    headers = {**FORM, "Content-Encoding": "gzip"}

    response = await client.post(path, data=b"grant_type=x", headers=headers)

    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_a_gzip_body_that_decodes_is_read(
    client: TestClient[Any, Any],
) -> None:
    headers = {**FORM, "Content-Encoding": "gzip"}

    response = await client.post(
        "/token", data=gzip.compress(b"grant_type=x"), headers=headers
    )

    assert response.status == 400
    assert (await response.json())["error"] == "unsupported_grant_type"
