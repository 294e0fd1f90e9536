"""Malformed input at the services' edges gets a documented error, never a crash."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import grpc
import pytest

from tests.support.mesh import refusal


@pytest.mark.parametrize(
    "payload",
    [b"\x0a\x02\xff\xfe", b"\xff\xff\xff\xff", b"\x0a\x10abc"],
    ids=["bad utf-8", "corrupt wire format", "truncated"],
)
async def test_undecodable_message_is_invalid_argument(
    mesh: dict[str, Any], payload: bytes
) -> None:
    async with grpc.aio.insecure_channel(mesh["sts"]["grpc"]) as channel:
        call = channel.unary_unary(
            "/wif.v1.SecurityTokenService/ExchangeToken",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(payload, timeout=5)

    assert refusal(caught.value) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MALFORMED_REQUEST",
        "invalid_request",
    )
    assert "DecodeError" not in (caught.value.details() or "")


def _http_error(
    url: str, data: bytes | None, content_type: str
) -> tuple[int, str, str]:
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310
    request.add_header("Content-Type", content_type)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310
    error = caught.value
    return error.code, error.headers["Content-Type"], error.headers["Cache-Control"]


def test_unknown_http_path_answers_json_without_caching(mesh: dict[str, Any]) -> None:
    status, content_type, cache = _http_error(
        mesh["sts"]["http"] + "/nowhere", None, "text/plain"
    )

    assert (status, cache) == (404, "no-store")
    assert content_type.startswith("application/json")


def test_form_in_another_charset_is_refused(mesh: dict[str, Any]) -> None:
    status, _, cache = _http_error(
        mesh["sts"]["http"] + "/token",
        b"grant_type=x",
        "application/x-www-form-urlencoded; charset=iso-8859-1",
    )

    assert (status, cache) == (400, "no-store")
