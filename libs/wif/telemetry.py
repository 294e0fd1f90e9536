"""Tracing: one trace per request across every hop of the mesh.

Each service installs a tracer provider named after itself. W3C trace
context travels in gRPC metadata through the OpenTelemetry interceptors, so
a caller's trace continues through the STS, the Policy service and the ITS.
Spans are exported over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)

#: The standard variable that names the OTLP collector; unset disables export.
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"

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
        provider.add_span_processor(BatchSpanProcessor(exporter))
        log.info("exporting spans over OTLP to %s", endpoint)
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Flushes and stops span export."""
    if _provider is not None:
        _provider.shutdown()


def server_interceptors() -> list[Any]:
    """Interceptors that start a server span from the caller's trace context."""
    return [aio_server_interceptor()]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[Any]:
    """Interceptors that start a client span and send the trace context."""
    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]


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
