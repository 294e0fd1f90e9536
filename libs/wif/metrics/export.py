"""Where the instruments of :mod:`wif.metrics.instruments` are read.

- Prometheus: :class:`PrometheusCollector` turns them into metric families
  when ``/metrics`` is scraped (counters gain ``_total``, a unit of seconds
  gains ``_seconds``, as Prometheus names them).
- OTLP: :class:`OtlpExport` sends cumulative sums and histograms to the
  collector every ``OTEL_METRIC_EXPORT_INTERVAL`` milliseconds (60 s by
  default) from a thread of its own, and once more when the process stops.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.core import (
    Metric as PrometheusMetric,
)

from wif.metrics.instruments import Counter, Registry

log = logging.getLogger(__name__)

#: The standard variable for the OTLP export interval, in milliseconds.
EXPORT_INTERVAL_ENV = "OTEL_METRIC_EXPORT_INTERVAL"
DEFAULT_EXPORT_INTERVAL_MS = 60_000
_SCOPE = InstrumentationScope("wif")


def _prometheus_name(name: str, unit: str) -> str:
    return f"{name}_seconds" if unit == "s" else name


class PrometheusCollector:
    """A ``prometheus_client`` collector over one registry's instruments."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[PrometheusMetric]:
        """One metric family per instrument, with a sample per label set."""
        for instrument in self._registry.instruments:
            name = _prometheus_name(instrument.name, instrument.unit)
            labels = list(instrument.labels)
            if isinstance(instrument, Counter):
                family: Any = (
                    CounterMetricFamily(name, instrument.description, labels=labels)
                    if instrument.monotonic
                    else GaugeMetricFamily(name, instrument.description, labels=labels)
                )
                for key, value in sorted(instrument.snapshot().items()):
                    family.add_metric(list(key), value)
                yield family
                continue
            histogram = HistogramMetricFamily(
                name, instrument.description, labels=labels
            )
            bounds = [*map(str, instrument.bounds), "+Inf"]
            for key, point in sorted(instrument.snapshot().items()):
                cumulative, running = [], 0
                for bound, count in zip(bounds, point.bucket_counts, strict=True):
                    running += count
                    cumulative.append((bound, running))
                histogram.add_metric(list(key), cumulative, point.total)
            yield histogram


def metrics_data(registry: Registry, resource: Resource) -> MetricsData:
    """Every instrument's current cumulative values, as the OTLP exporter takes them."""
    now = time.time_ns()
    cumulative = AggregationTemporality.CUMULATIVE
    metrics: list[Metric] = []
    for instrument in registry.instruments:
        start = instrument.started_ns
        data: Sum | Histogram
        if isinstance(instrument, Counter):
            data = Sum(
                data_points=[
                    NumberDataPoint(
                        attributes=dict(zip(instrument.labels, key, strict=True)),
                        start_time_unix_nano=start,
                        time_unix_nano=now,
                        value=value,
                    )
                    for key, value in instrument.snapshot().items()
                ],
                aggregation_temporality=cumulative,
                is_monotonic=instrument.monotonic,
            )
        else:
            data = Histogram(
                data_points=[
                    HistogramDataPoint(
                        attributes=dict(zip(instrument.labels, key, strict=True)),
                        start_time_unix_nano=start,
                        time_unix_nano=now,
                        count=point.count,
                        sum=point.total,
                        bucket_counts=point.bucket_counts,
                        explicit_bounds=instrument.bounds,
                        min=point.minimum,
                        max=point.maximum,
                    )
                    for key, point in instrument.snapshot().items()
                ],
                aggregation_temporality=cumulative,
            )
        if data.data_points:
            metrics.append(
                Metric(
                    name=instrument.name,
                    description=instrument.description,
                    unit=instrument.unit,
                    data=data,
                )
            )
    scope = ScopeMetrics(scope=_SCOPE, metrics=metrics, schema_url="")
    return MetricsData(
        resource_metrics=[
            ResourceMetrics(resource=resource, scope_metrics=[scope], schema_url="")
        ]
    )


def export_interval_seconds() -> float:
    """``OTEL_METRIC_EXPORT_INTERVAL`` in seconds; the default if unset or bad."""
    raw = os.environ.get(EXPORT_INTERVAL_ENV, "")
    try:
        milliseconds = float(raw) if raw else DEFAULT_EXPORT_INTERVAL_MS
        # NaN would make the export thread spin, infinity would kill it.
        if not math.isfinite(milliseconds):
            raise ValueError(raw)
    except ValueError:
        log.warning("ignoring %s=%r: not a finite number", EXPORT_INTERVAL_ENV, raw)
        milliseconds = DEFAULT_EXPORT_INTERVAL_MS
    return max(milliseconds, 100.0) / 1000


class OtlpExport:
    """Sends the registry to an OTLP exporter on a fixed interval, in a thread."""

    def __init__(
        self,
        registry: Registry,
        resource: Resource,
        exporter: MetricExporter,
        interval: float,
    ) -> None:
        self._registry = registry
        self._resource = resource
        self._exporter = exporter
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="wif-metrics-export", daemon=True
        )

    def start(self) -> None:
        """Starts exporting."""
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.export_now()

    def export_now(self) -> None:
        """Sends the current values once; a failure is logged, not raised."""
        try:
            self._exporter.export(metrics_data(self._registry, self._resource))
        except Exception as error:  # the exporter's own faults must not spread
            log.warning("metrics export failed: %s", error)

    def stop(self) -> None:
        """Sends the last values and stops the thread and the exporter."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.export_now()
        self._exporter.shutdown()
