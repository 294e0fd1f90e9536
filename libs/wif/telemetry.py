"""Tracing: one trace per request across every hop of the mesh.

Each service installs a tracer provider named after itself. W3C trace
context travels in gRPC metadata: :class:`ServerTracing` continues the
caller's trace in a server span named after the method, and a service
calling another sends :func:`trace_metadata` with the call, so a caller's
trace continues through the STS, the Policy service and the ITS. Spans are
exported over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

The interceptors are this module's own rather than OpenTelemetry's gRPC
instrumentation, which wraps every servicer context and client call in
Python objects of its own and cost about a fifth of a small RPC; these do
only what the mesh needs: one server span per call with its method and
status, and the trace context on the way out. Streaming calls (health
watches, reflection) are not traced.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)

#: The standard variable that names the OTLP collector; unset disables export.
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"

#: Spans sent in one export unless ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` says
#: otherwise. Encoding a span holds the interpreter for tens of
#: microseconds, so the SDK's 512 at a time stalled requests for 15 ms or
#: more; 64 keeps each export's share short.
EXPORT_BATCH_SIZE = 64
_BATCH_SIZE_ENV = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"

_provider: TracerProvider | None = None


def setup_tracing(service_name: str) -> TracerProvider:
    """Installs this process's tracer provider once and returns it."""
    global _provider
    if _provider is not None:
        return _provider
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    endpoint = os.environ.get(OTLP_ENDPOINT_ENV)
    if endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        insecure = endpoint.startswith("http://")
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=insecure)
        batch = None if os.environ.get(_BATCH_SIZE_ENV) else EXPORT_BATCH_SIZE
        provider.add_span_processor(
            BatchSpanProcessor(exporter, max_export_batch_size=batch)
        )
        log.info("exporting spans over OTLP to %s", endpoint)
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Flushes and stops span export."""
    if _provider is not None:
        _provider.shutdown()


#: The metadata keys of W3C trace context (``traceparent``, ``tracestate``).
_TRACE_KEYS = frozenset({"traceparent", "tracestate"})
#: Statuses that mean the server failed, as OpenTelemetry's conventions list them.
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def _span_status(code: grpc.StatusCode) -> trace.Status:
    if code in _SERVER_FAULTS:
        return trace.Status(trace.StatusCode.ERROR, code.name)
    return trace.Status(trace.StatusCode.UNSET)


class ServerTracing(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Runs each unary call in a server span that continues the caller's trace."""

    def __init__(self) -> None:
        self._tracer = tracer("wif.grpc")

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = details.method
        service, _, name = method.lstrip("/").rpartition("/")
        carrier = {
            key: value
            for key, value in details.invocation_metadata or ()
            if key in _TRACE_KEYS
        }
        inner = handler.unary_unary
        spans = self._tracer

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            parent = propagate.extract(carrier) if carrier else None
            with spans.start_as_current_span(
                method,
                context=parent,
                kind=trace.SpanKind.SERVER,
                attributes={
                    "rpc.system": "grpc",
                    "rpc.service": service,
                    "rpc.method": name,
                },
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                # The code gRPC sends when the servicer set none.
                unset = grpc.StatusCode.OK
                try:
                    return await inner(request, context)
                except asyncio.CancelledError:
                    unset = grpc.StatusCode.CANCELLED
                    raise
                except Exception:
                    unset = grpc.StatusCode.UNKNOWN
                    raise
                finally:
                    code = context.code() or unset
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if code in _SERVER_FAULTS:
                        span.set_status(_span_status(code))

        return handler._replace(unary_unary=traced)


def server_interceptors() -> list[Any]:
    """Interceptors that start a server span from the caller's trace context."""
    return [ServerTracing()]


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata, for a call to another service."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


class step_span:
    """A span for one step that starts no spans of its own.

    It is a child of the current span but is never made current, which
    spares the context switch that ``start_as_current_span`` makes on entry
    and exit: a third of a span's cost on the exchange path, where every
    check has its span. A step that raises ends with status ERROR naming the
    exception's class. Use ``start_as_current_span`` for a step that calls
    another service or may start spans below it.
    """

    __slots__ = ("_name", "_span", "_tracer")

    def __init__(self, spans: trace.Tracer, name: str) -> None:
        self._tracer = spans
        self._name = name
        self._span: trace.Span = trace.INVALID_SPAN

    def __enter__(self) -> trace.Span:
        self._span = self._tracer.start_span(self._name)
        return self._span

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self._span.set_status(trace.Status(trace.StatusCode.ERROR, kind.__name__))
        self._span.end()


def tracer(name: str) -> trace.Tracer:
    """The tracer for a module."""
    return trace.get_tracer(name)


@web.middleware
async def http_tracing(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Continues the caller's W3C trace (``traceparent``) through an HTTP request."""
    parent = propagate.extract(dict(request.headers))
    name = f"{request.method} {request.path}"
    span_kind = trace.SpanKind.SERVER
    with tracer("wif.http").start_as_current_span(
        name, context=parent, kind=span_kind
    ) as span:
        response = await handler(request)
        span.set_attribute("http.status_code", response.status)
        return response
