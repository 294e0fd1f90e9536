"""Tests for wif.metrics.export: Prometheus text, OTLP export and its interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric as PrometheusFamily
from prometheus_client.parser import text_string_to_metric_families

from tests.support.otlp import OtlpReceiver, ReceivedMetric
from wif.metrics.export import (
    DEFAULT_EXPORT_INTERVAL_MS,
    EXPORT_INTERVAL_ENV,
    OtlpExport,
    PrometheusCollector,
    export_interval_seconds,
)
from wif.metrics.instruments import Counter, Histogram, Registry

BOUNDS = (0.1, 1.0)
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE


@dataclass(frozen=True)
class Instruments:
    registry: Registry
    calls: Counter
    in_flight: Counter
    duration: Histogram


@pytest.fixture
def instruments() -> Instruments:
    registry = Registry()
    calls = registry.counter("wif_rpc_calls", "1", "calls", ("rpc", "outcome"))
    in_flight = registry.up_down_counter("wif_in_flight", "1", "in flight", ("peer",))
    duration = Histogram("wif_rpc_duration", "s", "latency", ("rpc",), bounds=BOUNDS)
    registry.instruments.append(duration)
    return Instruments(registry, calls, in_flight, duration)


def record_some(instruments: Instruments) -> None:
    instruments.calls.add(2, {"rpc": "Exchange", "outcome": "ok"})
    instruments.calls.add(1, {"rpc": "Exchange", "outcome": "INVALID_ARGUMENT"})
    instruments.in_flight.add(3, {"peer": "its"})
    instruments.in_flight.add(-1, {"peer": "its"})
    for value in (0.05, 0.1, 0.5, 2.0):
        instruments.duration.record(value, {"rpc": "Exchange"})


def scrape(registry: Registry) -> dict[str, PrometheusFamily]:
    prometheus = CollectorRegistry()
    prometheus.register(PrometheusCollector(registry))
    text = generate_latest(prometheus).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


LabelPairs = tuple[tuple[str, str], ...]


def samples(family: PrometheusFamily, name: str) -> dict[LabelPairs, float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for sample in family.samples
        if sample.name == name
    }


def test_prometheus_counter_is_named_with_total_and_sums_by_labels(
    instruments: Instruments,
) -> None:
    record_some(instruments)

    family = scrape(instruments.registry)["wif_rpc_calls"]

    assert family.type == "counter"
    assert samples(family, "wif_rpc_calls_total") == {
        (("outcome", "ok"), ("rpc", "Exchange")): 2.0,
        (("outcome", "INVALID_ARGUMENT"), ("rpc", "Exchange")): 1.0,
    }


def test_prometheus_up_down_counter_is_a_gauge_without_total(
    instruments: Instruments,
) -> None:
    record_some(instruments)

    family = scrape(instruments.registry)["wif_in_flight"]

    assert family.type == "gauge"
    assert samples(family, "wif_in_flight") == {(("peer", "its"),): 2.0}


def test_prometheus_histogram_in_seconds_has_cumulative_buckets(
    instruments: Instruments,
) -> None:
    record_some(instruments)

    family = scrape(instruments.registry)["wif_rpc_duration_seconds"]

    assert family.type == "histogram"
    buckets = {
        sample.labels["le"]: sample.value
        for sample in family.samples
        if sample.name == "wif_rpc_duration_seconds_bucket"
    }
    assert {float(le): count for le, count in buckets.items()} == {
        0.1: 2.0,
        1.0: 3.0,
        float("inf"): 4.0,
    }
    assert samples(family, "wif_rpc_duration_seconds_count") == {
        (("rpc", "Exchange"),): 4.0
    }
    (total,) = samples(family, "wif_rpc_duration_seconds_sum").values()
    assert total == pytest.approx(2.65)


def test_prometheus_infinite_bucket_equals_the_count(
    instruments: Instruments,
) -> None:
    for value in (0.01, 5.0, 50.0, 500.0):
        instruments.duration.record(value, {"rpc": "Validate"})

    family = scrape(instruments.registry)["wif_rpc_duration_seconds"]

    (infinite,) = [
        s.value
        for s in family.samples
        if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"
    ]
    (count,) = samples(family, "wif_rpc_duration_seconds_count").values()
    assert infinite == count == 4.0


def test_prometheus_instrument_with_no_measurement_has_no_sample(
    instruments: Instruments,
) -> None:
    families = scrape(instruments.registry)

    assert families["wif_rpc_calls"].samples == []
    assert families["wif_rpc_duration_seconds"].samples == []


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


def otlp_export(
    receiver: OtlpReceiver, registry: Registry, interval: float = 3600
) -> OtlpExport:
    exporter = OTLPMetricExporter(endpoint=receiver.endpoint, insecure=True)
    resource = Resource.create({"service.name": "sts"})
    return OtlpExport(registry, resource, exporter, interval)


def by_name(export: list[ReceivedMetric]) -> dict[str, ReceivedMetric]:
    return {received.metric.name: received for received in export}


def attributes(
    point: metrics_pb2.NumberDataPoint | metrics_pb2.HistogramDataPoint,
) -> dict[str, str]:
    return {a.key: a.value.string_value for a in point.attributes}


def number(point: metrics_pb2.NumberDataPoint) -> float:
    return point.as_int if point.HasField("as_int") else point.as_double


def exports_after(receiver: OtlpReceiver, before: int) -> list[list[ReceivedMetric]]:
    return receiver.metric_exports()[before:]


def test_otlp_export_sends_cumulative_sums_with_their_attributes(
    receiver: OtlpReceiver, instruments: Instruments
) -> None:
    record_some(instruments)
    export = otlp_export(receiver, instruments.registry)
    before = len(receiver.metric_exports())

    export.export_now()

    (sent,) = exports_after(receiver, before)
    metrics = by_name(sent)
    calls = metrics["wif_rpc_calls"]
    assert (calls.service, calls.scope) == ("sts", "wif")
    assert calls.metric.sum.is_monotonic is True
    assert calls.metric.sum.aggregation_temporality == CUMULATIVE
    assert {
        tuple(sorted(attributes(p).items())): number(p)
        for p in calls.metric.sum.data_points
    } == {
        (("outcome", "ok"), ("rpc", "Exchange")): 2,
        (("outcome", "INVALID_ARGUMENT"), ("rpc", "Exchange")): 1,
    }
    in_flight = metrics["wif_in_flight"].metric.sum
    assert in_flight.is_monotonic is False
    assert in_flight.aggregation_temporality == CUMULATIVE
    (point,) = in_flight.data_points
    assert (attributes(point), number(point)) == ({"peer": "its"}, 2)


def test_otlp_export_sends_histograms_with_bounds_counts_and_extremes(
    receiver: OtlpReceiver, instruments: Instruments
) -> None:
    record_some(instruments)
    export = otlp_export(receiver, instruments.registry)
    before = len(receiver.metric_exports())

    export.export_now()

    (sent,) = exports_after(receiver, before)
    duration = by_name(sent)["wif_rpc_duration"].metric
    assert duration.unit == "s"
    assert duration.histogram.aggregation_temporality == CUMULATIVE
    (point,) = duration.histogram.data_points
    assert attributes(point) == {"rpc": "Exchange"}
    assert list(point.explicit_bounds) == [0.1, 1.0]
    assert list(point.bucket_counts) == [2, 1, 1]
    assert point.count == 4
    assert point.sum == pytest.approx(2.65)
    assert (point.min, point.max) == (0.05, 2.0)
    assert 0 < point.start_time_unix_nano <= point.time_unix_nano


def test_otlp_export_leaves_out_instruments_with_no_measurement(
    receiver: OtlpReceiver, instruments: Instruments
) -> None:
    instruments.calls.add(1, {"rpc": "Exchange", "outcome": "ok"})
    export = otlp_export(receiver, instruments.registry)
    before = len(receiver.metric_exports())

    export.export_now()

    (sent,) = exports_after(receiver, before)
    assert [received.metric.name for received in sent] == ["wif_rpc_calls"]


def test_otlp_export_sends_running_totals_not_differences(
    receiver: OtlpReceiver, instruments: Instruments
) -> None:
    export = otlp_export(receiver, instruments.registry)
    before = len(receiver.metric_exports())

    instruments.calls.add(2, {"rpc": "Exchange", "outcome": "ok"})
    export.export_now()
    instruments.calls.add(3, {"rpc": "Exchange", "outcome": "ok"})
    export.export_now()

    first, second = exports_after(receiver, before)
    (one,) = by_name(first)["wif_rpc_calls"].metric.sum.data_points
    (two,) = by_name(second)["wif_rpc_calls"].metric.sum.data_points
    assert (number(one), number(two)) == (2, 5)
    assert one.start_time_unix_nano == two.start_time_unix_nano


def test_otlp_export_stop_sends_the_last_values(
    receiver: OtlpReceiver, instruments: Instruments
) -> None:
    export = otlp_export(receiver, instruments.registry, interval=3600)
    export.start()
    before = len(receiver.metric_exports())
    instruments.calls.add(7, {"rpc": "Exchange", "outcome": "ok"})

    started = time.monotonic()
    export.stop()

    assert time.monotonic() - started < 5
    (sent,) = exports_after(receiver, before)
    (point,) = by_name(sent)["wif_rpc_calls"].metric.sum.data_points
    assert number(point) == 7


def test_otlp_export_sends_on_its_interval(
    receiver: OtlpReceiver, instruments: Instruments
) -> None:
    instruments.calls.add(1, {"rpc": "Exchange", "outcome": "ok"})
    export = otlp_export(receiver, instruments.registry, interval=0.1)
    before = len(receiver.metric_exports())

    export.start()
    try:
        exports = receiver.wait_for_metric_exports(before + 2, timeout=10)
    finally:
        export.stop()

    assert len(exports) >= before + 2


def test_otlp_export_failure_is_logged_not_raised(
    instruments: Instruments, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(OTLPMetricExporter):
        def export(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            raise RuntimeError("collector refused")

    instruments.calls.add(1, {"rpc": "Exchange", "outcome": "ok"})
    exporter = Failing(endpoint="http://127.0.0.1:1", insecure=True)
    export = OtlpExport(instruments.registry, Resource.create({}), exporter, 3600)

    with caplog.at_level(logging.WARNING, logger="wif.metrics.export"):
        export.export_now()

    assert [r.getMessage() for r in caplog.records] == [
        "metrics export failed: collector refused"
    ]


@dataclass(frozen=True)
class Interval:
    raw: str | None
    seconds: float
    warned: bool = False


DEFAULT_SECONDS = DEFAULT_EXPORT_INTERVAL_MS / 1000

INTERVALS = [
    Interval(None, DEFAULT_SECONDS),
    Interval("", DEFAULT_SECONDS),
    Interval("250", 0.25),
    Interval("1500.5", 1.5005),
    Interval("100", 0.1),
    Interval("99", 0.1),
    Interval("0", 0.1),
    Interval("-5000", 0.1),
    Interval("abc", DEFAULT_SECONDS, warned=True),
    Interval("5s", DEFAULT_SECONDS, warned=True),
    Interval("nan", DEFAULT_SECONDS, warned=True),
    Interval("inf", DEFAULT_SECONDS, warned=True),
]


@pytest.mark.parametrize("case", INTERVALS, ids=lambda c: repr(c.raw))
def test_export_interval_is_read_in_milliseconds_with_a_floor_and_a_default(
    case: Interval,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if case.raw is None:
        monkeypatch.delenv(EXPORT_INTERVAL_ENV, raising=False)
    else:
        monkeypatch.setenv(EXPORT_INTERVAL_ENV, case.raw)

    with caplog.at_level(logging.WARNING, logger="wif.metrics.export"):
        seconds = export_interval_seconds()

    assert seconds == pytest.approx(case.seconds)
    warnings = [r.getMessage() for r in caplog.records]
    if case.warned:
        assert warnings == [
            f"ignoring {EXPORT_INTERVAL_ENV}={case.raw!r}: not a finite number"
        ]
    else:
        assert warnings == []
