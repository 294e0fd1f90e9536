"""Metrics: how fast, how often, how many refused, per service.

Instruments come from the OpenTelemetry metrics API. Every process exposes
them for Prometheus scraping (``GET /metrics`` on the metrics listen
address) and, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, exports them
over OTLP as well. Instrument names and attribute keys are defined here
once; attribute values are bounded sets (RPC names, outcomes, reasons),
never subjects or token ids.
"""

from __future__ import annotations

import os

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from wif.telemetry import OTLP_ENDPOINT_ENV

_meter = metrics.get_meter("wif")

#: Calls per RPC, by outcome (ok or the gRPC status) and refusal reason.
RPC_CALLS = _meter.create_counter(
    "wif_rpc_calls", unit="1", description="RPC calls by method, outcome and reason"
)
#: RPC latency, by method and outcome.
RPC_DURATION = _meter.create_histogram(
    "wif_rpc_duration", unit="s", description="RPC latency by method and outcome"
)
#: Lookups in a cache, by cache name and hit or miss.
CACHE_LOOKUPS = _meter.create_counter(
    "wif_cache_lookups", unit="1", description="cache lookups by cache and result"
)
#: Fetches of foreign discovery documents and key sets, by outcome.
JWKS_FETCHES = _meter.create_counter(
    "wif_jwks_fetches", unit="1", description="foreign JWKS fetches by outcome"
)
#: Calls to another mesh service waiting for an answer now, by peer.
PEER_CALLS_IN_FLIGHT = _meter.create_up_down_counter(
    "wif_peer_calls_in_flight", unit="1", description="calls in flight by peer"
)
#: Requests refused by the per-caller rate limit, by surface (grpc or http).
RATE_LIMITED = _meter.create_counter(
    "wif_rate_limited", unit="1", description="requests refused by the rate limit"
)
#: HTTP connections a listener closed before a request, by reason
#: (SLOW_REQUEST_HEAD, TOO_MANY_CONNECTIONS; see :mod:`wif.http_guard`).
HTTP_CONNECTIONS_CLOSED = _meter.create_counter(
    "wif_http_connections_closed",
    unit="1",
    description="HTTP connections closed by the listener's limits, by reason",
)
#: Policy decisions, by action and decision.
DECISIONS = _meter.create_counter(
    "wif_decisions", unit="1", description="policy decisions by action and outcome"
)

#: The content type of :func:`prometheus_text`.
PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST

_provider: MeterProvider | None = None


def setup_metrics(service_name: str) -> None:
    """Installs this process's meter provider once: Prometheus, and OTLP if set."""
    global _provider
    if _provider is not None:
        return
    readers: list[MetricReader] = [PrometheusMetricReader()]
    if os.environ.get(OTLP_ENDPOINT_ENV):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter,
        )

        endpoint = os.environ[OTLP_ENDPOINT_ENV]
        exporter = OTLPMetricExporter(
            endpoint=endpoint, insecure=endpoint.startswith("http://")
        )
        readers.append(PeriodicExportingMetricReader(exporter))
    resource = Resource.create({"service.name": service_name})
    # Exemplars would sample the current span on every measurement, which
    # doubles the cost of each counter and histogram update on the RPC path;
    # traces are found through the audit record and the log line instead.
    _provider = MeterProvider(
        resource=resource,
        metric_readers=readers,
        exemplar_filter=AlwaysOffExemplarFilter(),
    )
    metrics.set_meter_provider(_provider)


def shutdown_metrics() -> None:
    """Flushes and stops metric export."""
    if _provider is not None:
        _provider.shutdown()


def prometheus_text() -> bytes:
    """The current metrics in the Prometheus text format."""
    return generate_latest(REGISTRY)
