"""Tests for wif.metrics.instruments: sums, bucket placement and snapshots."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from wif.metrics.instruments import Counter, Histogram, Registry

BOUNDS = (0.1, 1.0, 10.0)


def counter(labels: tuple[str, ...] = ("rpc", "outcome")) -> Counter:
    return Counter("test_calls", "1", "calls", labels)


def histogram() -> Histogram:
    return Histogram("test_duration", "s", "latency", ("rpc",), bounds=BOUNDS)


def test_counter_sums_by_label_values() -> None:
    calls = counter()

    calls.add(1, {"rpc": "Exchange", "outcome": "ok"})
    calls.add(2, {"rpc": "Exchange", "outcome": "ok"})
    calls.add(1, {"rpc": "Exchange", "outcome": "INVALID_ARGUMENT"})
    calls.add(5, {"rpc": "Validate", "outcome": "ok"})

    assert calls.snapshot() == {
        ("Exchange", "ok"): 3,
        ("Exchange", "INVALID_ARGUMENT"): 1,
        ("Validate", "ok"): 5,
    }


def test_counter_takes_a_missing_label_as_empty() -> None:
    calls = counter()

    calls.add(1, {"rpc": "Exchange"})
    calls.add(1, {"rpc": "Exchange", "outcome": ""})

    assert calls.snapshot() == {("Exchange", ""): 2}


def test_counter_ignores_attributes_that_are_not_its_labels() -> None:
    calls = counter(("rpc",))

    calls.add(1, {"rpc": "Exchange", "subject": "spiffe://a/b"})

    assert calls.snapshot() == {("Exchange",): 1}


def test_up_down_counter_goes_down() -> None:
    in_flight = Registry().up_down_counter("test_in_flight", "1", "calls", ("peer",))

    in_flight.add(1, {"peer": "its"})
    in_flight.add(1, {"peer": "its"})
    in_flight.add(-1, {"peer": "its"})

    assert in_flight.monotonic is False
    assert in_flight.snapshot() == {("its",): 1}


def test_registry_keeps_its_instruments_in_the_order_they_were_made() -> None:
    registry = Registry()

    calls = registry.counter("a", "1", "a", ())
    duration = registry.histogram("b", "s", "b", ())
    in_flight = registry.up_down_counter("c", "1", "c", ())

    assert registry.instruments == [calls, duration, in_flight]
    assert (calls.monotonic, in_flight.monotonic) == (True, False)


@dataclass(frozen=True)
class Placement:
    value: float
    bucket: int


#: Bucket 0 is ``le 0.1``, 1 ``le 1.0``, 2 ``le 10.0``, 3 the overflow.
PLACEMENTS = [
    Placement(-1.0, 0),
    Placement(0.0, 0),
    Placement(0.1, 0),
    Placement(0.10001, 1),
    Placement(0.99999, 1),
    Placement(1.0, 1),
    Placement(1.00001, 2),
    Placement(10.0, 2),
    Placement(10.00001, 3),
    Placement(1e9, 3),
]


@pytest.mark.parametrize("case", PLACEMENTS, ids=lambda c: str(c.value))
def test_histogram_places_a_value_in_the_first_bucket_whose_bound_holds_it(
    case: Placement,
) -> None:
    duration = histogram()

    duration.record(case.value, {"rpc": "Exchange"})

    counts = [0] * (len(BOUNDS) + 1)
    counts[case.bucket] = 1
    assert duration.snapshot()[("Exchange",)].bucket_counts == tuple(counts)


def test_histogram_keeps_count_sum_min_and_max_per_label_set() -> None:
    duration = histogram()

    for value in (0.5, 0.05, 20.0, 2.0):
        duration.record(value, {"rpc": "Exchange"})
    duration.record(3.0, {"rpc": "Validate"})

    exchange = duration.snapshot()[("Exchange",)]
    assert exchange.bucket_counts == (1, 1, 1, 1)
    assert exchange.count == 4
    assert exchange.total == pytest.approx(22.55)
    assert (exchange.minimum, exchange.maximum) == (0.05, 20.0)
    validate = duration.snapshot()[("Validate",)]
    assert (validate.count, validate.minimum, validate.maximum) == (1, 3.0, 3.0)


def test_histogram_minimum_follows_a_first_value_that_was_not_the_least() -> None:
    duration = histogram()

    duration.record(5.0, {"rpc": "Exchange"})
    duration.record(7.0, {"rpc": "Exchange"})
    duration.record(0.2, {"rpc": "Exchange"})

    point = duration.snapshot()[("Exchange",)]
    assert (point.minimum, point.maximum) == (0.2, 7.0)


def test_counter_snapshot_is_not_changed_by_later_adds() -> None:
    calls = counter()
    calls.add(1, {"rpc": "Exchange", "outcome": "ok"})

    earlier = calls.snapshot()
    calls.add(1, {"rpc": "Exchange", "outcome": "ok"})
    calls.add(1, {"rpc": "Validate", "outcome": "ok"})

    assert earlier == {("Exchange", "ok"): 1}


def test_histogram_snapshot_is_not_changed_by_later_records() -> None:
    duration = histogram()
    duration.record(0.5, {"rpc": "Exchange"})

    earlier = duration.snapshot()
    duration.record(0.5, {"rpc": "Exchange"})
    duration.record(50.0, {"rpc": "Exchange"})
    duration.record(0.5, {"rpc": "Validate"})

    assert list(earlier) == [("Exchange",)]
    point = earlier[("Exchange",)]
    assert point.bucket_counts == (0, 1, 0, 0)
    assert (point.count, point.total, point.maximum) == (1, 0.5, 0.5)


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Makes the interpreter switch threads as often as it can, to expose races."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(saved)


THREADS = 8


def run_in_threads(work: Callable[[int], None], rounds: int) -> None:
    """Runs ``work(0)`` to ``work(rounds - 1)`` in each thread, all at once."""
    barrier = threading.Barrier(THREADS)

    def run() -> None:
        barrier.wait()
        for number in range(rounds):
            work(number)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.usefixtures("frequent_thread_switches")
def test_counter_loses_no_add_from_concurrent_threads() -> None:
    calls = counter()

    run_in_threads(lambda _: calls.add(1, {"rpc": "Exchange", "outcome": "ok"}), 20_000)

    assert calls.snapshot() == {("Exchange", "ok"): THREADS * 20_000}


@pytest.mark.usefixtures("frequent_thread_switches")
def test_histogram_loses_no_record_from_concurrent_threads() -> None:
    # Every thread records into the same fresh label sets at the same time,
    # so that two of them may both find a label set new.
    label_sets = 50_000
    duration = histogram()

    run_in_threads(lambda n: duration.record(0.5, {"rpc": str(n)}), label_sets)

    points = duration.snapshot()
    assert len(points) == label_sets
    assert sum(point.count for point in points.values()) == THREADS * label_sets
    assert {point.bucket_counts for point in points.values()} == {(0, THREADS, 0, 0)}
