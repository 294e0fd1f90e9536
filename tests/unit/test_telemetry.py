"""Tests for wif.telemetry: server spans over a real gRPC server, trace metadata."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from wif import telemetry
from wif.telemetry import ServerTracing, trace_metadata

SERVICE = "wif.test.v1.EchoService"
ECHO = f"/{SERVICE}/Echo"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """The spans of tracers made from now on, on a provider of this test's own."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "tracer", provider.get_tracer)
    return exporter


#: Set when a "slow" call has started; the call then waits to be cancelled.
slow_call_started: asyncio.Event | None = None


async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    """Answers as the request says: a status code name, a crash, or its trace."""
    asked = request.decode()
    if asked == "slow":
        assert slow_call_started is not None
        slow_call_started.set()
        await asyncio.sleep(60)
    if asked == "crash":
        raise RuntimeError("a bug in the servicer")
    if asked.startswith("set "):
        context.set_code(grpc.StatusCode[asked.removeprefix("set ")])
        return b""
    if asked != "OK":
        await context.abort(grpc.StatusCode[asked], "refused")
    return json.dumps(dict(trace_metadata())).encode()


@dataclass(frozen=True)
class Server:
    channel: grpc.aio.Channel

    async def echo(
        self, request: str, metadata: tuple[tuple[str, str], ...] = ()
    ) -> bytes:
        call = self.channel.unary_unary(ECHO)
        reply: bytes = await call(request.encode(), metadata=metadata, timeout=10)
        return reply


@pytest.fixture
async def server(exported: InMemorySpanExporter) -> AsyncIterator[Server]:
    """A real gRPC server on loopback with the tracing interceptor."""
    server = grpc.aio.server(interceptors=[ServerTracing()])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
            ),
        )
    )
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Server(channel)
    await channel.close()
    await server.stop(grace=None)


async def only_span(exported: InMemorySpanExporter) -> ReadableSpan:
    """The one span that ended, waiting for it: the client may hear first."""
    deadline = time.monotonic() + 10
    while not exported.get_finished_spans():
        assert time.monotonic() < deadline, "no span ended"
        await asyncio.sleep(0.01)
    (span,) = exported.get_finished_spans()
    return span


async def test_a_call_with_a_traceparent_continues_the_callers_trace(
    server: Server, exported: InMemorySpanExporter
) -> None:
    await server.echo("OK", metadata=(("traceparent", TRACEPARENT),))

    span = await only_span(exported)
    assert span.name == ECHO
    assert span.kind == trace.SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert span.parent.is_remote
    assert format(span.parent.span_id, "016x") == PARENT_SPAN_ID


async def test_a_call_carries_the_callers_trace_state(
    server: Server, exported: InMemorySpanExporter
) -> None:
    metadata = (("traceparent", TRACEPARENT), ("tracestate", "vendor=opaque"))

    await server.echo("OK", metadata=metadata)

    span = await only_span(exported)
    assert dict(span.context.trace_state) == {"vendor": "opaque"}


async def test_a_call_without_a_traceparent_starts_a_new_trace(
    server: Server, exported: InMemorySpanExporter
) -> None:
    await server.echo("OK")
    await server.echo("OK", metadata=(("x-other", "value"),))

    first, second = exported.get_finished_spans()
    assert (first.parent, second.parent) == (None, None)
    assert first.context.trace_id != second.context.trace_id


async def test_a_server_span_names_the_rpc_system_service_and_method(
    server: Server, exported: InMemorySpanExporter
) -> None:
    await server.echo("OK")

    span = await only_span(exported)
    assert dict(span.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": "Echo",
        "rpc.grpc.status_code": 0,
    }


async def test_the_handler_runs_inside_the_server_span(
    server: Server, exported: InMemorySpanExporter
) -> None:
    reply = await server.echo("OK", metadata=(("traceparent", TRACEPARENT),))

    span = await only_span(exported)
    span_id = format(span.context.span_id, "016x")
    assert json.loads(reply) == {"traceparent": f"00-{TRACE_ID}-{span_id}-01"}


@dataclass(frozen=True)
class Outcome:
    asked: str
    code: grpc.StatusCode
    #: Whether the span says the server failed.
    error: bool


OUTCOMES = [
    Outcome("INVALID_ARGUMENT", grpc.StatusCode.INVALID_ARGUMENT, error=False),
    Outcome("NOT_FOUND", grpc.StatusCode.NOT_FOUND, error=False),
    Outcome("PERMISSION_DENIED", grpc.StatusCode.PERMISSION_DENIED, error=False),
    Outcome("UNAUTHENTICATED", grpc.StatusCode.UNAUTHENTICATED, error=False),
    Outcome("RESOURCE_EXHAUSTED", grpc.StatusCode.RESOURCE_EXHAUSTED, error=False),
    Outcome("FAILED_PRECONDITION", grpc.StatusCode.FAILED_PRECONDITION, error=False),
    Outcome("set NOT_FOUND", grpc.StatusCode.NOT_FOUND, error=False),
    Outcome("INTERNAL", grpc.StatusCode.INTERNAL, error=True),
    Outcome("UNAVAILABLE", grpc.StatusCode.UNAVAILABLE, error=True),
    Outcome("UNKNOWN", grpc.StatusCode.UNKNOWN, error=True),
    Outcome("DEADLINE_EXCEEDED", grpc.StatusCode.DEADLINE_EXCEEDED, error=True),
    Outcome("DATA_LOSS", grpc.StatusCode.DATA_LOSS, error=True),
    Outcome("crash", grpc.StatusCode.UNKNOWN, error=True),
]


@pytest.mark.parametrize("outcome", OUTCOMES, ids=lambda o: o.asked)
async def test_a_failed_call_records_its_code_and_errs_only_for_server_faults(
    outcome: Outcome, server: Server, exported: InMemorySpanExporter
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await server.echo(outcome.asked)

    assert caught.value.code() == outcome.code
    span = await only_span(exported)
    assert (span.attributes or {})["rpc.grpc.status_code"] == outcome.code.value[0]
    if outcome.error:
        assert span.status.status_code == trace.StatusCode.ERROR
        assert span.status.description == outcome.code.name
    else:
        assert span.status.status_code == trace.StatusCode.UNSET


async def test_an_ok_call_leaves_the_span_status_unset(
    server: Server, exported: InMemorySpanExporter
) -> None:
    await server.echo("OK")

    span = await only_span(exported)
    assert span.status.status_code == trace.StatusCode.UNSET


async def test_a_streaming_call_passes_through_untraced(
    server: Server, exported: InMemorySpanExporter
) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)

    first = await watch.read()
    watch.cancel()
    checked = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)

    assert first.status == checked.status == health_pb2.HealthCheckResponse.SERVING
    assert [span.name for span in exported.get_finished_spans()] == [
        "/grpc.health.v1.Health/Check"
    ]


async def test_a_call_the_client_cancels_records_cancelled(
    server: Server, exported: InMemorySpanExporter
) -> None:
    global slow_call_started
    slow_call_started = asyncio.Event()
    call = server.channel.unary_unary(ECHO)(b"slow", timeout=30)

    await asyncio.wait_for(slow_call_started.wait(), 10)
    call.cancel()
    span = await only_span(exported)
    code = grpc.StatusCode.CANCELLED.value[0]
    assert (span.attributes or {})["rpc.grpc.status_code"] == code
    assert span.status.status_code == trace.StatusCode.UNSET


def test_trace_metadata_names_the_current_span() -> None:
    tracer = TracerProvider().get_tracer(__name__)

    with tracer.start_as_current_span("exchange") as span:
        metadata = trace_metadata()
    context = span.get_span_context()

    trace_id, span_id = (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
    )
    flags = format(context.trace_flags, "02x")
    assert metadata == (("traceparent", f"00-{trace_id}-{span_id}-{flags}"),)


def test_trace_metadata_outside_a_span_is_empty() -> None:
    assert trace_metadata() == ()


def test_a_step_span_is_a_child_of_the_current_span_but_never_current(
    exported: InMemorySpanExporter,
) -> None:
    spans = telemetry.tracer("test")

    with spans.start_as_current_span("request") as request:
        with telemetry.step_span(spans, "step") as step:
            inside = trace.get_current_span()
        after = trace.get_current_span()

    finished = {s.name: s for s in exported.get_finished_spans()}
    assert inside is request
    assert after is request
    assert step.get_span_context().trace_id == request.get_span_context().trace_id
    assert finished["step"].parent is not None
    assert finished["step"].parent.span_id == request.get_span_context().span_id
    assert finished["step"].status.status_code is trace.StatusCode.UNSET


def test_a_step_span_that_raises_ends_with_an_error_naming_the_exception(
    exported: InMemorySpanExporter,
) -> None:
    spans = telemetry.tracer("test")

    with pytest.raises(KeyError), telemetry.step_span(spans, "step"):
        raise KeyError("missing")

    (finished,) = exported.get_finished_spans()
    assert finished.end_time is not None
    assert finished.status.status_code is trace.StatusCode.ERROR
    assert finished.status.description == "KeyError"
