"""Tests for wif.collector: deferring full collections while a build runs."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from wif.collector import long_lived_build


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_a_build_defers_full_collections_and_then_restores_them(
    thresholds: tuple[int, int, int],
) -> None:
    with long_lived_build():
        during = gc.get_threshold()

    assert during[:2] == thresholds[:2]
    assert during[2] > 1_000_000
    assert gc.get_threshold() == thresholds


def test_what_a_build_leaves_alive_is_frozen() -> None:
    frozen = gc.get_freeze_count()

    with long_lived_build():
        built = [[n] for n in range(1000)]

    assert gc.get_freeze_count() >= frozen + len(built)


def test_a_failed_build_freezes_nothing(thresholds: tuple[int, int, int]) -> None:
    frozen = gc.get_freeze_count()

    with pytest.raises(ValueError, match="refused"), long_lived_build():
        raise ValueError("refused")

    assert gc.get_freeze_count() == frozen
    assert gc.get_threshold() == thresholds


def test_overlapping_builds_restore_collections_when_the_last_ends(
    thresholds: tuple[int, int, int],
) -> None:
    first_inside = threading.Event()
    first_may_end = threading.Event()

    def first() -> None:
        with long_lived_build():
            first_inside.set()
            first_may_end.wait(10)

    other = threading.Thread(target=first)
    other.start()
    first_inside.wait(10)
    with long_lived_build():
        first_may_end.set()
        other.join(10)
        after_first = gc.get_threshold()

    assert after_first[2] > 1_000_000
    assert gc.get_threshold() == thresholds
