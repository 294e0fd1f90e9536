"""Tests for wif.grpc_errors: mesh errors to gRPC statuses and back.

The round trips run through a real grpc.aio server on loopback, with the
mesh's own PolicyService contract and a servicer whose ``Decide`` fails on
demand.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from wif import errors
from wif.errors import ERROR_DOMAIN, WifError
from wif.grpc_errors import error_from_rpc, error_info, handle_errors, to_status
from wif.v1 import policy_pb2, policy_pb2_grpc

PEER = "policy service"

Behaviour = Callable[[grpc.aio.ServicerContext], Awaitable[None]]


class GuardedPolicy(policy_pb2_grpc.PolicyServiceServicer):
    """A servicer behind handle_errors that raises what the test sets."""

    def __init__(self) -> None:
        self.failure: BaseException | None = None
        self.hang = False
        self.release = asyncio.Event()

    @handle_errors
    async def Decide(
        self, request: policy_pb2.DecideRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.DecideResponse:
        if self.hang:
            await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return policy_pb2.DecideResponse(decision=policy_pb2.DECISION_ALLOW)


class PlainPolicy(policy_pb2_grpc.PolicyServiceServicer):
    """A servicer outside the mesh's conventions: it aborts as it likes."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    async def Decide(
        self, request: policy_pb2.DecideRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.DecideResponse:
        await self.behaviour(context)
        return policy_pb2.DecideResponse()


@asynccontextmanager
async def serving(
    servicer: policy_pb2_grpc.PolicyServiceServicer,
) -> AsyncIterator[policy_pb2_grpc.PolicyServiceStub]:
    server = grpc.aio.server()
    policy_pb2_grpc.add_PolicyServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield policy_pb2_grpc.PolicyServiceStub(channel)
    finally:
        await server.stop(0)


async def failed_call(
    stub: policy_pb2_grpc.PolicyServiceStub, timeout: float = 5.0
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Decide(policy_pb2.DecideRequest(), timeout=timeout)
    return caught.value


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "wif.grpc_errors"]


def test_to_status_holds_one_error_info_with_reason_domain_and_metadata() -> None:
    error = errors.AccessDenied(
        "the policy refused", reason="POLICY_DENIED", metadata={"policyId": "p1"}
    )

    status = to_status(error)

    assert status.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert status.message == "the policy refused"
    assert len(status.details) == 1
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "POLICY_DENIED"
    assert info.domain == "wif.mesh"
    assert dict(info.metadata) == {"policyId": "p1", "oauthError": "invalid_target"}


def test_to_status_uses_the_class_default_reason() -> None:
    status = to_status(errors.InvalidRequest("subject_token is missing"))

    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert info.reason == "INVALID_REQUEST"
    assert dict(info.metadata) == {"oauthError": "invalid_request"}


@dataclass(frozen=True)
class RoundTrip:
    name: str
    error: WifError
    code: grpc.StatusCode
    metadata: dict[str, str] = field(default_factory=dict)


ROUND_TRIPS = [
    RoundTrip(
        "access denied",
        errors.AccessDenied(
            "no policy allows it", reason="POLICY_DENIED", metadata={"policyId": "p1"}
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        {"policyId": "p1"},
    ),
    RoundTrip(
        "invalid request",
        errors.InvalidRequest("the audience is missing", reason="MISSING_AUDIENCE"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    RoundTrip(
        "invalid grant",
        errors.InvalidGrant(
            "the token expired", reason="TOKEN_EXPIRED", metadata={"claim": "exp"}
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        {"claim": "exp"},
    ),
    RoundTrip(
        "invalid token",
        errors.InvalidToken("the signature does not verify", reason="BAD_SIGNATURE"),
        grpc.StatusCode.UNAUTHENTICATED,
    ),
    RoundTrip(
        "invalid scope",
        errors.InvalidScope("payments.write is not granted", reason="SCOPE_DENIED"),
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    RoundTrip(
        "unsupported token type",
        errors.UnsupportedTokenType("saml2 is not accepted"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
]


@pytest.mark.parametrize("case", ROUND_TRIPS, ids=lambda case: case.name)
async def test_a_raised_mesh_error_comes_back_as_the_same_error(
    case: RoundTrip,
) -> None:
    servicer = GuardedPolicy()
    servicer.failure = case.error

    async with serving(servicer) as stub:
        exc = await failed_call(stub)

    assert exc.code() == case.code
    info = error_info(exc)
    assert info is not None
    assert info.reason == case.error.reason
    assert info.domain == ERROR_DOMAIN
    back = error_from_rpc(exc, PEER)
    # The wire carries the OAuth error, so a subclass (AccessDenied) comes back
    # as the class that owns that code (InvalidTarget).
    assert isinstance(case.error, type(back))
    assert back.oauth_error == case.error.oauth_error
    assert back.reason == case.error.reason
    assert back.message == case.error.message
    assert back.metadata == case.metadata


async def test_a_refused_call_is_logged_once_with_its_outcome_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    servicer = GuardedPolicy()
    servicer.failure = errors.AccessDenied("no policy allows it")

    with caplog.at_level(logging.INFO, logger="wif.grpc_errors"):
        async with serving(servicer) as stub:
            await failed_call(stub)

    (line,) = refusals(caplog)
    assert line.getMessage() == "Decide refused: POLICY_DENIED"
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["rpc"] == "Decide"
    assert fields["outcome"] == "permission_denied"
    assert fields["reason"] == "POLICY_DENIED"


async def test_a_successful_call_is_logged_once_as_ok(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="wif.grpc_errors"):
        async with serving(GuardedPolicy()) as stub:
            response = await stub.Decide(policy_pb2.DecideRequest(), timeout=5)

    assert response.decision == policy_pb2.DECISION_ALLOW
    (line,) = refusals(caplog)
    assert line.getMessage() == "Decide ok"
    assert line.fields["outcome"] == "ok"  # type: ignore[attr-defined]


async def test_an_unexpected_exception_reaches_the_caller_as_internal_without_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    servicer = GuardedPolicy()
    servicer.failure = RuntimeError("database at 10.0.0.7 refused user admin")

    with caplog.at_level(logging.INFO, logger="wif.grpc_errors"):
        async with serving(servicer) as stub:
            exc = await failed_call(stub)

    assert exc.code() == grpc.StatusCode.INTERNAL
    assert exc.details() == "internal error"
    info = error_info(exc)
    assert info is not None
    assert info.reason == "INTERNAL"
    assert dict(info.metadata) == {"oauthError": "server_error"}
    back = error_from_rpc(exc, PEER)
    assert type(back) is errors.InternalError
    assert back.reason == "INTERNAL"
    assert back.message == "internal error"

    failed, refused = refusals(caplog)
    assert failed.getMessage() == "Decide failed"
    assert failed.exc_info is not None
    assert "10.0.0.7" in str(failed.exc_info[1])
    assert refused.getMessage() == "Decide refused: INTERNAL"
    assert refused.fields["outcome"] == "internal"  # type: ignore[attr-defined]


async def test_a_closed_port_becomes_temporarily_unavailable() -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{closed_port()}") as channel:
        exc = await failed_call(policy_pb2_grpc.PolicyServiceStub(channel))

    assert exc.code() == grpc.StatusCode.UNAVAILABLE
    back = error_from_rpc(exc, PEER)
    assert type(back) is errors.TemporarilyUnavailable
    assert back.reason == "POLICY_SERVICE_UNAVAILABLE"
    assert back.message == "the policy service is unavailable"
    assert back.oauth_error == "temporarily_unavailable"


async def test_a_deadline_becomes_temporarily_unavailable() -> None:
    servicer = GuardedPolicy()
    servicer.hang = True

    try:
        async with serving(servicer) as stub:
            exc = await failed_call(stub, timeout=0.2)
    finally:
        servicer.release.set()

    assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    back = error_from_rpc(exc, "identity token service")
    assert type(back) is errors.TemporarilyUnavailable
    assert back.reason == "IDENTITY_TOKEN_SERVICE_UNAVAILABLE"


async def test_a_status_without_error_info_becomes_peer_failed() -> None:
    async def abort(context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    async with serving(PlainPolicy(abort)) as stub:
        exc = await failed_call(stub)

    assert exc.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(exc) is None
    back = error_from_rpc(exc, PEER)
    assert type(back) is errors.InternalError
    assert back.reason == "PEER_FAILED"
    assert back.message == "the policy service failed"


async def test_an_error_info_of_another_domain_becomes_peer_failed() -> None:
    info = error_details_pb2.ErrorInfo(
        reason="QUOTA_EXCEEDED",
        domain="example.com",
        metadata={"oauthError": "invalid_request"},
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
        message="quota",
        details=[detail],
    )

    async def abort(context: grpc.aio.ServicerContext) -> None:
        await context.abort_with_status(rpc_status.to_status(status))

    async with serving(PlainPolicy(abort)) as stub:
        exc = await failed_call(stub)

    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = error_info(exc)
    assert found is not None
    assert found.domain == "example.com"
    back = error_from_rpc(exc, PEER)
    assert type(back) is errors.InternalError
    assert back.reason == "PEER_FAILED"
