"""Building a large, long-lived structure without long garbage-collector pauses.

CPython's cyclic garbage collector holds the interpreter lock while it runs,
in whichever thread set it off, so a full collection stalls the event loop
even when the allocations that caused it happen in a worker thread. Building
a trust configuration of a hundred thousand documents sets off about ten
full collections, each walking the whole heap, the last ones for more than
half a second each.

:func:`long_lived_build` defers full collections while such a structure is
built (the young generations are still collected, so the short-lived cycles
of the requests served meanwhile are still freed), then moves every object
alive into the collector's permanent generation (:func:`gc.freeze`), which
later full collections do not walk.

The price: an object alive at that moment that later becomes garbage inside
a reference cycle is never freed. A configuration holds no reference cycles
(the one it replaces is freed by reference counting alone), and reloads are
rare, so what can be kept that way is small and bounded per reload.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

# Collections of the middle generation before a full one may run: never,
# for the length of a build.
_NO_FULL_COLLECTIONS = 1_000_000_000

_lock = threading.Lock()
_builds = 0
_built = False
_thresholds = gc.get_threshold()


@contextlib.contextmanager
def long_lived_build() -> Iterator[None]:
    """Defers full collections while the block runs, then freezes what lives.

    Safe to use from several threads at once: full collections resume, and
    the heap is frozen, when the last block ends, provided one of them ended
    without raising (a failed build leaves its garbage to the collector).
    """
    global _builds, _built, _thresholds
    with _lock:
        if _builds == 0:
            _thresholds = gc.get_threshold()
            young, middle, _ = _thresholds
            gc.set_threshold(young, middle, _NO_FULL_COLLECTIONS)
            _built = False
        _builds += 1

    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        with _lock:
            _builds -= 1
            _built = _built or succeeded
            if _builds == 0:
                if _built:
                    gc.freeze()
                gc.set_threshold(*_thresholds)
