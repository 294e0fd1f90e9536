"""Tests for wif.logs: JSON lines, and when the buffered handler writes them."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from wif import logs
from wif.logs import (
    FLUSH_INTERVAL_SECONDS,
    FLUSH_SIZE,
    MAX_ERROR_CHARS,
    MAX_MESSAGE_CHARS,
    BufferedHandler,
    JsonFormatter,
)

#: How long a test waits for the periodic write before it gives up.
PATIENCE_SECONDS = 5


class RecordingStream:
    """A text stream that remembers each write and the thread that made it."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.writes.append((threading.current_thread().name, text))
        return len(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        with self._lock:
            return "".join(text for _, text in self.writes)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines()]

    def writers(self) -> list[str]:
        with self._lock:
            return [thread for thread, _ in self.writes]


@pytest.fixture
def stream() -> RecordingStream:
    return RecordingStream()


@pytest.fixture
def make_logger() -> Iterator[Callable[[Any], logging.Logger]]:
    """Makes a logger of its own writing through a new BufferedHandler."""
    handlers: list[BufferedHandler] = []

    def make(stream: Any) -> logging.Logger:
        handler = BufferedHandler(stream)
        handler.setFormatter(JsonFormatter("sts"))
        handlers.append(handler)
        logger = logging.getLogger(f"wif.test.logs.{len(handlers)}.{id(handler)}")
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        return logger

    yield make
    for handler in handlers:
        handler.close()


@pytest.fixture
def no_periodic_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps handlers made after it from writing on a timer, within a test."""
    monkeypatch.setattr(logs, "FLUSH_INTERVAL_SECONDS", 3600)


def wait_until(condition: Callable[[], bool]) -> float:
    """Seconds until ``condition`` held; fails after PATIENCE_SECONDS."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < PATIENCE_SECONDS, "waited too long"
        time.sleep(0.005)
    return time.monotonic() - started


def test_an_info_line_is_written_soon_by_the_flush_thread_not_the_caller(
    stream: RecordingStream, make_logger: Callable[[Any], logging.Logger]
) -> None:
    logger = make_logger(stream)

    logger.info("token issued")
    waited = wait_until(lambda: bool(stream.writes))

    assert waited < FLUSH_INTERVAL_SECONDS + 1
    assert stream.writers() == ["wif-log-flush"]
    assert [line["message"] for line in stream.lines()] == ["token issued"]


@pytest.mark.usefixtures("no_periodic_write")
def test_an_info_line_waits_in_the_buffer(
    stream: RecordingStream, make_logger: Callable[[Any], logging.Logger]
) -> None:
    logger = make_logger(stream)

    logger.info("token issued")
    logger.debug("cache hit")

    assert stream.writes == []


@pytest.mark.parametrize("level", [logging.WARNING, logging.ERROR, logging.CRITICAL])
@pytest.mark.usefixtures("no_periodic_write")
def test_a_warning_or_worse_writes_everything_waiting_at_once_in_order(
    level: int, stream: RecordingStream, make_logger: Callable[[Any], logging.Logger]
) -> None:
    logger = make_logger(stream)

    logger.debug("first")
    logger.info("second")
    logger.info("third")
    logger.log(level, "fault")

    assert [line["message"] for line in stream.lines()] == [
        "first",
        "second",
        "third",
        "fault",
    ]
    assert stream.writers() == [threading.current_thread().name]


@pytest.mark.usefixtures("no_periodic_write")
def test_lines_filling_flush_size_are_written_at_once(
    stream: RecordingStream, make_logger: Callable[[Any], logging.Logger]
) -> None:
    logger = make_logger(stream)
    message = "x" * 1000
    record = logger.makeRecord(logger.name, logging.INFO, "", 0, message, (), None)
    line_size = len(JsonFormatter("sts").format(record)) + 1
    lines_below = (FLUSH_SIZE - 1) // line_size
    # A warning first: what it wrote out counts no more towards the size.
    logger.warning(message)

    for _ in range(lines_below):
        logger.info(message)
    assert len(stream.writes) == 1
    logger.info(message)

    assert len(stream.lines()) == 1 + lines_below + 1
    assert len(stream.writes) == 2


@pytest.mark.usefixtures("no_periodic_write")
def test_close_writes_what_is_waiting(
    stream: RecordingStream, make_logger: Callable[[Any], logging.Logger]
) -> None:
    logger = make_logger(stream)
    logger.info("last words")

    logger.handlers[0].close()

    assert [line["message"] for line in stream.lines()] == ["last words"]


def json_line(record: logging.LogRecord, service: str = "sts") -> dict[str, Any]:
    text = JsonFormatter(service).format(record)
    assert "\n" not in text
    line: dict[str, Any] = json.loads(text)
    return line


def make_record(
    message: str = "token issued",
    level: int = logging.INFO,
    args: tuple[Any, ...] = (),
    **extra: Any,
) -> logging.LogRecord:
    return logging.getLogger("wif.sts").makeRecord(
        "wif.sts", level, __file__, 1, message, args, None, extra=extra
    )


def test_a_line_is_one_json_object_with_time_level_service_and_message() -> None:
    line = json_line(make_record("issued %s tokens", logging.WARNING, (3,)))

    assert set(line) == {"time", "level", "service", "logger", "message"}
    assert line["level"] == "warning"
    assert line["service"] == "sts"
    assert line["logger"] == "wif.sts"
    assert line["message"] == "issued 3 tokens"


def test_a_lines_fields_are_members_of_its_object() -> None:
    record = make_record(fields={logs.F_RPC: "ExchangeToken", logs.F_DURATION_MS: 4})

    line = json_line(record)

    assert line[logs.F_RPC] == "ExchangeToken"
    assert line[logs.F_DURATION_MS] == 4


@dataclass(frozen=True)
class Moment:
    created: float
    msecs: float
    text: str


#: Moments in the order they are formatted by one formatter, including a step
#: back into an earlier second.
MOMENTS = [
    Moment(1_700_000_000.123, 123.0, "2023-11-14T22:13:20.123Z"),
    Moment(1_700_000_000.999, 999.0, "2023-11-14T22:13:20.999Z"),
    Moment(1_700_000_001.004, 4.0, "2023-11-14T22:13:21.004Z"),
    Moment(1_700_003_600.0, 0.0, "2023-11-14T23:13:20.000Z"),
    Moment(1_700_000_000.5, 500.0, "2023-11-14T22:13:20.500Z"),
]


def test_a_lines_time_is_iso_utc_to_the_millisecond() -> None:
    formatter = JsonFormatter("sts")
    texts = []

    for moment in MOMENTS:
        record = make_record()
        record.created, record.msecs = moment.created, moment.msecs
        texts.append(json.loads(formatter.format(record))["time"])

    assert texts == [moment.text for moment in MOMENTS]


def test_a_line_inside_a_span_carries_its_trace_and_span_ids() -> None:
    tracer = TracerProvider().get_tracer(__name__)

    with tracer.start_as_current_span("exchange") as span:
        line = json_line(make_record())
    context = span.get_span_context()

    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert len(line["trace_id"]) == 32
    assert len(line["span_id"]) == 16


def test_a_line_outside_a_span_has_no_trace_id() -> None:
    line = json_line(make_record())

    assert "trace_id" not in line
    assert "span_id" not in line


def test_a_line_of_an_exception_carries_its_traceback() -> None:
    try:
        raise RuntimeError("store down")
    except RuntimeError:
        record = logging.getLogger("wif.sts").makeRecord(
            "wif.sts", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )

    line = json_line(record)

    assert "RuntimeError: store down" in line["error"]


#: A mesh token's shape: header, payload and signature, each base64url.
TOKEN = (
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0"
    ".eyJzdWIiOiJzcGlmZmU6Ly9hY21lLmV4YW1wbGUveCJ9"
    ".MEUCIQDx-5_aZ9"
)


def test_a_whole_token_in_a_message_or_traceback_is_redacted() -> None:
    # aiohttp logs a malformed request's header line, Authorization included.
    try:
        raise ValueError(
            f"Invalid header value char: b'Authorization: Bearer {TOKEN}\\x01'"
        )
    except ValueError:
        record = logging.getLogger("aiohttp.server").makeRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "bad %s",
            (TOKEN,),
            sys.exc_info(),
        )

    text = JsonFormatter("sts").format(record)
    line = json.loads(text)

    assert "eyJ" not in text
    assert line["message"] == f"bad {logs.REDACTED_TOKEN}"
    assert f"Bearer {logs.REDACTED_TOKEN}" in line["error"]


def test_an_unsigned_token_is_redacted_but_not_other_text() -> None:
    unsigned = TOKEN.rsplit(".", 1)[0]

    line = json_line(make_record(f"{unsigned} eyJ-alone eyJx. done"))

    assert line["message"] == f"{logs.REDACTED_TOKEN} eyJ-alone eyJx. done"


class FailingStream(RecordingStream):
    """A stream whose first ``failures`` writes raise ``error``."""

    def __init__(self, error: Exception, failures: int = 1_000_000) -> None:
        super().__init__()
        self._error = error
        self._failures = failures

    def write(self, text: str) -> int:
        if self._failures > 0:
            self._failures -= 1
            raise self._error
        return super().write(text)


@dataclass(frozen=True)
class WriteFault:
    name: str
    error: Exception


WRITE_FAULTS = [
    WriteFault("broken pipe", BrokenPipeError(32, "Broken pipe")),
    WriteFault("disk full", OSError(28, "No space left on device")),
    WriteFault("closed stream", ValueError("I/O operation on closed file.")),
]


@pytest.mark.parametrize("fault", WRITE_FAULTS, ids=lambda f: f.name)
@pytest.mark.usefixtures("no_periodic_write")
def test_a_stream_that_fails_to_write_does_not_raise_into_the_caller(
    fault: WriteFault, make_logger: Callable[[Any], logging.Logger]
) -> None:
    logger = make_logger(FailingStream(fault.error))

    logger.info("issued")
    logger.warning("refused")
    logger.error("failed")
    logger.handlers[0].close()


@pytest.mark.parametrize("fault", WRITE_FAULTS, ids=lambda f: f.name)
def test_lines_after_a_failed_write_are_written_again(
    fault: WriteFault, make_logger: Callable[[Any], logging.Logger]
) -> None:
    stream = FailingStream(fault.error, failures=1)
    logger = make_logger(stream)

    logger.warning("lost")
    logger.info("after")
    wait_until(lambda: bool(stream.writes))

    assert [line["message"] for line in stream.lines()][-1:] == ["after"]


def test_a_handler_may_be_closed_twice(
    stream: RecordingStream, make_logger: Callable[[Any], logging.Logger]
) -> None:
    # logging.shutdown closes every handler at exit, closed ones included.
    handler = make_logger(stream).handlers[0]

    handler.close()
    handler.close()


def test_a_long_message_and_error_are_clipped_with_what_was_left_out() -> None:
    formatter = JsonFormatter("sts")
    try:
        raise ValueError("x" * 10_000)
    except ValueError:
        record = logging.LogRecord(
            "aiohttp.server", logging.ERROR, __file__, 1, "%s", ("y" * 5000,), None
        )
        record.exc_info = sys.exc_info()

    entry = json.loads(formatter.format(record))

    assert entry["message"] == "y" * MAX_MESSAGE_CHARS + (
        f"... [{5000 - MAX_MESSAGE_CHARS} characters left out]"
    )
    assert len(entry["error"]) < MAX_ERROR_CHARS + 50
    assert entry["error"].endswith("characters left out]")
