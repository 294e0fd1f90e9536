"""What every fuzz target checks, and how a target runs under atheris.

The contract of the parsers fuzzed here: an input is either accepted or
refused with one of the mesh's documented errors (a
:class:`wif.errors.WifError` subclass named by the target), never with any
other exception, and each input is handled in bounded time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from wif.errors import WifError

#: Seconds one input may take, with room for a loaded machine and for
#: atheris's instrumentation; every parser here needs milliseconds.
SECONDS_PER_INPUT = 2.0

OneInput = Callable[[bytes], None]


class ContractBroken(AssertionError):
    """An input made the code under test break its documented contract."""


def within_contract(
    run: Callable[[], object], documented: tuple[type[WifError], ...]
) -> None:
    """Runs ``run``; a documented refusal is fine, any other exception is not.

    Raises:
        ContractBroken: ``run`` raised a WifError not in ``documented``, or
            took longer than SECONDS_PER_INPUT. Any exception that is not a
            WifError propagates as it is, so that its traceback shows where.
    """
    started = time.perf_counter()
    try:
        run()
    except WifError as error:
        if not isinstance(error, documented):
            raise ContractBroken(f"undocumented refusal {error!r}") from error
    elapsed = time.perf_counter() - started
    if elapsed > SECONDS_PER_INPUT:
        raise ContractBroken(f"one input took {elapsed:.2f} s")


def text_of(data: bytes) -> str:
    """The input as text; undecodable bytes become lone surrogates, as a
    hostile caller could send them through an API that takes any str."""
    return data.decode("utf-8", "surrogateescape")


def fuzz(one_input: OneInput) -> None:
    """Fuzzes ``one_input`` under atheris with this process's arguments.

    Every module already imported (the code under test included) is
    instrumented for coverage first. atheris is imported here only, so that
    the targets can be replayed without it.
    """
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
