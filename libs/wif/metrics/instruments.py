"""Counters and histograms cheap enough for every request.

The OpenTelemetry SDK's synchronous instruments hash their attributes and
walk every reader on each measurement, about 15 µs each under load, three
or four times per request. These instruments only add to a number in a dict
keyed by the tuple of label values, under a lock held for a few
instructions; :mod:`wif.metrics.export` reads them when Prometheus scrapes
or when the OTLP export is due. Label names are fixed when the instrument is
made, and their values come from bounded sets (RPC names, outcomes,
reasons), never subjects or token ids.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

#: Histogram bucket bounds in seconds, from 0.5 ms to 10 s.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

LabelValues = tuple[str, ...]


@dataclass(frozen=True)
class HistogramPoint:
    """One label set's distribution: counts per bucket, then the overflow."""

    bucket_counts: tuple[int, ...]
    count: int
    total: float
    minimum: float
    maximum: float


class Instrument:
    """What every instrument has: a name, a unit, a description, label names."""

    def __init__(
        self, name: str, unit: str, description: str, labels: tuple[str, ...]
    ) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.labels = labels
        self.started_ns = time.time_ns()
        self._lock = threading.Lock()

    def _key(self, attributes: Mapping[str, str]) -> LabelValues:
        return tuple([attributes.get(label, "") for label in self.labels])


class Counter(Instrument):
    """A sum by label values; ``monotonic`` counters only ever grow."""

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        labels: tuple[str, ...],
        monotonic: bool = True,
    ) -> None:
        super().__init__(name, unit, description, labels)
        self.monotonic = monotonic
        self._values: dict[LabelValues, float] = {}

    def add(self, amount: float, attributes: Mapping[str, str]) -> None:
        """Adds ``amount`` to the sum of ``attributes``' label values."""
        key = self._key(attributes)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def snapshot(self) -> dict[LabelValues, float]:
        """Every sum so far, by label values."""
        with self._lock:
            return dict(self._values)


class Histogram(Instrument):
    """Counts of measurements per bucket, by label values, with sum and extremes."""

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        labels: tuple[str, ...],
        bounds: tuple[float, ...] = LATENCY_BOUNDS,
    ) -> None:
        super().__init__(name, unit, description, labels)
        self.bounds = bounds
        # Per label values: bucket counts (one more than bounds), then
        # [count, sum, min, max] in a second list.
        self._buckets: dict[LabelValues, list[int]] = {}
        self._totals: dict[LabelValues, list[float]] = {}

    def record(self, value: float, attributes: Mapping[str, str]) -> None:
        """Counts one measurement of ``attributes``' label values."""
        key = self._key(attributes)
        index = bisect.bisect_left(self.bounds, value)
        with self._lock:
            buckets = self._buckets.get(key)
            if buckets is None:
                buckets = self._buckets[key] = [0] * (len(self.bounds) + 1)
                self._totals[key] = [0, 0.0, value, value]
            buckets[index] += 1
            totals = self._totals[key]
            totals[0] += 1
            totals[1] += value
            if value < totals[2]:
                totals[2] = value
            if value > totals[3]:
                totals[3] = value

    def snapshot(self) -> dict[LabelValues, HistogramPoint]:
        """Every label set's distribution so far."""
        with self._lock:
            return {
                key: HistogramPoint(
                    bucket_counts=tuple(buckets),
                    count=int(self._totals[key][0]),
                    total=self._totals[key][1],
                    minimum=self._totals[key][2],
                    maximum=self._totals[key][3],
                )
                for key, buckets in self._buckets.items()
            }


InstrumentT = TypeVar("InstrumentT", "Counter", "Histogram")


class Registry:
    """The instruments of one process, in the order they were made."""

    def __init__(self) -> None:
        self.instruments: list[Counter | Histogram] = []

    def counter(
        self, name: str, unit: str, description: str, labels: tuple[str, ...]
    ) -> Counter:
        """A new monotonic counter."""
        return self._add(Counter(name, unit, description, labels))

    def up_down_counter(
        self, name: str, unit: str, description: str, labels: tuple[str, ...]
    ) -> Counter:
        """A new counter that may go down (things in flight)."""
        return self._add(Counter(name, unit, description, labels, monotonic=False))

    def histogram(
        self, name: str, unit: str, description: str, labels: tuple[str, ...]
    ) -> Histogram:
        """A new latency histogram."""
        return self._add(Histogram(name, unit, description, labels))

    def _add(self, instrument: InstrumentT) -> InstrumentT:
        self.instruments.append(instrument)
        return instrument
