"""Hostile input, generated: the running STS answers only documented errors.

Hypothesis sends arbitrary field values to the gRPC handlers and arbitrary
bodies and headers to the HTTP token endpoint of the session's mesh. Every
answer must be a success or a documented refusal (never UNKNOWN, INTERNAL or
a 500), and must come back within PER_REQUEST_SECONDS. Example counts are
small so that the module runs in seconds. The input limits (message, header
and body sizes, a body that never finishes) are checked here as well.

Coverage-guided fuzzing (atheris, ``make fuzz``) is not part of the suite: a
fuzzing run is open-ended, and these tests must finish in bounded time. The
suite replays the fuzz targets' seed corpora instead (tests/fuzz,
tests/unit/test_fuzz_corpus.py).
"""

from __future__ import annotations

import http.client
import json
import socket
import string
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.sts.http import BODY_TIMEOUT_SECONDS
from tests.support.mesh import TOKEN_EXCHANGE, TYPE_JWT
from wif.grpc_errors import error_info
from wif.server import MAX_HTTP_FIELD_BYTES, MAX_HTTP_HEADERS, MAX_MESSAGE_BYTES
from wif.v1 import sts_pb2, sts_pb2_grpc

#: The gRPC codes the STS documents for a refusal.
DOCUMENTED_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
#: The HTTP statuses the token endpoint documents.
DOCUMENTED_HTTP = frozenset({200, 400, 401, 403, 404, 405, 413, 415, 429, 503})
PER_REQUEST_SECONDS = 2.0
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TOKEN_TYPES = [
    TYPE_JWT,
    "urn:ietf:params:oauth:token-type:access_token",
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:saml2",
    "",
]
_b64 = st.text(string.ascii_letters + string.digits + "-_", max_size=120)
jwt_like = st.builds(lambda a, b, c: f"{a}.{b}.{c}", _b64, _b64, _b64)
token_text = st.one_of(jwt_like, st.text(max_size=300), st.just(""))
short_list = st.lists(st.text(max_size=60), max_size=12)


@pytest.fixture(scope="module")
def stub(mesh: dict[str, Any]) -> Any:
    channel = grpc.insecure_channel(mesh["sts"]["grpc"])
    yield sts_pb2_grpc.SecurityTokenServiceStub(channel)
    channel.close()


def _assert_documented(call: Any) -> None:
    started = time.perf_counter()
    refused: Any = None
    try:
        call()
    except grpc.RpcError as exc:
        refused = exc
    elapsed = time.perf_counter() - started

    assert elapsed < PER_REQUEST_SECONDS
    if refused is not None:
        assert refused.code() in DOCUMENTED_CODES, refused.code()
        if refused.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
            assert error_info(refused) is not None


@EXAMPLES
@given(
    subject_token=token_text,
    subject_token_type=st.sampled_from(TOKEN_TYPES) | st.text(max_size=80),
    actor_token=token_text,
    actor_token_type=st.sampled_from(TOKEN_TYPES),
    audience=short_list,
    resource=short_list,
    scope=short_list,
    requested_token_type=st.sampled_from(TOKEN_TYPES),
    trim=st.booleans(),
)
def test_exchange_with_arbitrary_fields_is_refused_as_documented(
    stub: Any,
    subject_token: str,
    subject_token_type: str,
    actor_token: str,
    actor_token_type: str,
    audience: list[str],
    resource: list[str],
    scope: list[str],
    requested_token_type: str,
    trim: bool,
) -> None:
    request = sts_pb2.ExchangeTokenRequest(
        subject_token=subject_token,
        subject_token_type=subject_token_type,
        actor_token=actor_token,
        actor_token_type=actor_token_type,
        audience=audience,
        resource=resource,
        scope=scope,
        requested_token_type=requested_token_type,
        allow_scope_trimming=trim,
    )
    _assert_documented(lambda: stub.ExchangeToken(request, timeout=10))


@EXAMPLES
@given(token=token_text, audience=st.text(max_size=100))
def test_validate_with_arbitrary_fields_is_refused_as_documented(
    stub: Any, token: str, audience: str
) -> None:
    request = sts_pb2.ValidateTokenRequest(token=token, audience=audience)
    _assert_documented(lambda: stub.ValidateToken(request, timeout=10))


@EXAMPLES
@given(raw=st.binary(max_size=2048))
def test_arbitrary_bytes_as_a_grpc_message_are_refused_as_documented(
    mesh: dict[str, Any], raw: bytes
) -> None:
    with grpc.insecure_channel(mesh["sts"]["grpc"]) as channel:
        call = channel.unary_unary(
            "/wif.v1.SecurityTokenService/ExchangeToken",
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )
        _assert_documented(lambda: call(raw, timeout=10))


def _post(
    mesh: dict[str, Any], body: bytes, headers: dict[str, str], path: str = "/token"
) -> tuple[int, bytes, dict[str, str]]:
    parts = urlsplit(mesh["sts"]["http"])
    connection = http.client.HTTPConnection(
        parts.hostname or "", parts.port, timeout=10
    )
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(), dict(response.headers)
    finally:
        connection.close()


_FORM_NAMES = [
    "grant_type",
    "subject_token",
    "subject_token_type",
    "actor_token",
    "audience",
    "resource",
    "scope",
    "requested_token_type",
    "allow_scope_trimming",
]
form_pairs = st.lists(
    st.tuples(
        st.sampled_from(_FORM_NAMES) | st.text(max_size=20),
        st.sampled_from([TOKEN_EXCHANGE, TYPE_JWT, "payments-api", "true"])
        | st.text(max_size=200),
    ),
    max_size=20,
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200
)
content_types = (
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=utf-8",
            "application/json",
            "multipart/form-data; boundary=x",
        ]
    )
    | header_text
)


@EXAMPLES
@given(
    body=st.one_of(
        st.binary(max_size=4096), form_pairs.map(lambda p: urlencode(p).encode())
    ),
    content_type=content_types,
    extra=st.dictionaries(
        st.text(string.ascii_letters + "-", min_size=1, max_size=30).filter(
            lambda name: (
                name.lower() not in {"content-length", "transfer-encoding", "host"}
            )
        ),
        header_text,
        max_size=8,
    ),
)
def test_token_endpoint_answers_arbitrary_bodies_and_headers_with_json(
    mesh: dict[str, Any], body: bytes, content_type: str, extra: dict[str, str]
) -> None:
    started = time.perf_counter()
    status, payload, headers = _post(
        mesh, body, {**extra, "Content-Type": content_type}
    )

    assert status in DOCUMENTED_HTTP
    assert time.perf_counter() - started < PER_REQUEST_SECONDS
    if status >= 400:
        assert "error" in json.loads(payload)
        assert headers.get("Cache-Control") == "no-store"


# -- input limits -----------------------------------------------------------


def test_a_message_over_the_size_limit_is_resource_exhausted(
    mesh: dict[str, Any],
) -> None:
    with grpc.insecure_channel(mesh["sts"]["grpc"]) as channel:
        call = channel.unary_unary(
            "/wif.v1.SecurityTokenService/ValidateToken",
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )
        request = sts_pb2.ValidateTokenRequest(token="x" * (MAX_MESSAGE_BYTES + 1))
        with pytest.raises(grpc.RpcError) as caught:
            call(request.SerializeToString(), timeout=10)

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Big": "a" * (MAX_HTTP_FIELD_BYTES + 1)},
        {f"X-Many-{i}": "1" for i in range(MAX_HTTP_HEADERS + 1)},
    ],
    ids=["one header too long", "too many headers"],
)
def test_an_oversized_header_section_is_refused_with_400(
    mesh: dict[str, Any], headers: dict[str, str]
) -> None:
    status, _, _ = _post(
        mesh,
        b"grant_type=x",
        {**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )

    assert status == 400


def test_a_body_over_the_size_limit_is_refused(mesh: dict[str, Any]) -> None:
    status, payload, _ = _post(
        mesh,
        b"a=" + b"b" * (128 * 1024),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert status in (400, 413)
    assert "error" in json.loads(payload)


def test_a_half_sent_body_is_cut_off_after_the_body_timeout(
    mesh: dict[str, Any],
) -> None:
    parts = urlsplit(mesh["sts"]["http"])
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as sock:
        sock.sendall(
            b"POST /token HTTP/1.1\r\nHost: sts\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000\r\n\r\ngrant_type="
        )
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        waited = time.monotonic() - started

    assert answer.startswith(b"HTTP/1.1 400")
    assert b"too slowly" in answer
    assert BODY_TIMEOUT_SECONDS - 0.5 < waited < BODY_TIMEOUT_SECONDS + 3
