"""Metrics: how fast, how often, how many refused, per service.

Every process exposes its instruments for Prometheus scraping (``GET
/metrics`` on the metrics listen address) and, when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, exports them over OTLP as well.
Instrument names, label names and their meaning are defined here once;
label values are bounded sets (RPC names, outcomes, reasons), never
subjects or token ids. The instruments are this package's own
(:mod:`wif.metrics.instruments`): recording one costs about a microsecond,
so every request can be counted and timed.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from wif.metrics.export import OtlpExport, PrometheusCollector, export_interval_seconds
from wif.metrics.instruments import Counter, Histogram, Registry
from wif.telemetry import OTLP_ENDPOINT_ENV

__all__ = [
    "CACHE_LOOKUPS",
    "DECISIONS",
    "HTTP_CONNECTIONS_CLOSED",
    "JWKS_FETCHES",
    "PEER_CALLS_IN_FLIGHT",
    "PROMETHEUS_CONTENT_TYPE",
    "RATE_LIMITED",
    "REGISTRY_OF_INSTRUMENTS",
    "RPC_CALLS",
    "RPC_DURATION",
    "Counter",
    "Histogram",
    "prometheus_text",
    "setup_metrics",
    "shutdown_metrics",
]

#: Every instrument of this process.
REGISTRY_OF_INSTRUMENTS = Registry()
_r = REGISTRY_OF_INSTRUMENTS

#: Calls per RPC, by outcome (ok or the gRPC status) and refusal reason.
RPC_CALLS = _r.counter(
    "wif_rpc_calls",
    "1",
    "RPC calls by method, outcome and reason",
    ("rpc", "outcome", "reason"),
)
#: RPC latency, by method and outcome.
RPC_DURATION = _r.histogram(
    "wif_rpc_duration", "s", "RPC latency by method and outcome", ("rpc", "outcome")
)
#: Lookups in a cache, by cache name and hit or miss.
CACHE_LOOKUPS = _r.counter(
    "wif_cache_lookups", "1", "cache lookups by cache and result", ("cache", "result")
)
#: Fetches of foreign discovery documents and key sets, by outcome.
JWKS_FETCHES = _r.counter(
    "wif_jwks_fetches", "1", "foreign JWKS fetches by outcome", ("outcome",)
)
#: Calls to another mesh service waiting for an answer now, by peer.
PEER_CALLS_IN_FLIGHT = _r.up_down_counter(
    "wif_peer_calls_in_flight", "1", "calls in flight by peer", ("peer",)
)
#: Requests refused by the per-caller rate limit, by surface (grpc or http).
RATE_LIMITED = _r.counter(
    "wif_rate_limited",
    "1",
    "requests refused by the rate limit",
    ("surface",),
)
#: HTTP connections a listener closed before a request, by reason
#: (SLOW_REQUEST_HEAD, TOO_MANY_CONNECTIONS; see :mod:`wif.http_guard`).
HTTP_CONNECTIONS_CLOSED = _r.counter(
    "wif_http_connections_closed",
    "1",
    "HTTP connections closed by the listener's limits, by reason",
    ("reason",),
)
#: Policy decisions, by action and decision.
DECISIONS = _r.counter(
    "wif_decisions",
    "1",
    "policy decisions by action and outcome",
    ("action", "decision"),
)

#: The content type of :func:`prometheus_text`.
PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST

_collector: PrometheusCollector | None = None
_otlp: OtlpExport | None = None


def setup_metrics(service_name: str) -> None:
    """Exposes this process's instruments once: Prometheus, and OTLP if set."""
    global _collector, _otlp
    if _collector is not None:
        return
    _collector = PrometheusCollector(REGISTRY_OF_INSTRUMENTS)
    REGISTRY.register(_collector)
    endpoint = os.environ.get(OTLP_ENDPOINT_ENV)
    if endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter,
        )
        from opentelemetry.sdk.resources import Resource

        exporter = OTLPMetricExporter(
            endpoint=endpoint, insecure=endpoint.startswith("http://")
        )
        _otlp = OtlpExport(
            REGISTRY_OF_INSTRUMENTS,
            Resource.create({"service.name": service_name}),
            exporter,
            export_interval_seconds(),
        )
        _otlp.start()


def shutdown_metrics() -> None:
    """Sends the last values over OTLP and stops the export."""
    global _otlp
    if _otlp is not None:
        _otlp.stop()
        _otlp = None


def prometheus_text() -> bytes:
    """The current metrics in the Prometheus text format."""
    return generate_latest(REGISTRY)
