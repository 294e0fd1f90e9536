"""Structured logging: one JSON object a line, with the trace id on every line.

Log fields are passed with ``extra={"fields": {...}}`` using the snake_case
keys defined here once, so that every service names the same fact the same
way.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import re
import sys
import threading
import time
from typing import Any, TextIO

from opentelemetry import trace

# Field names shared by every service's log lines.
F_RPC = "rpc"
F_OUTCOME = "outcome"
F_REASON = "reason"
F_DURATION_MS = "duration_ms"
F_TOKEN_ID = "token_id"
F_KEY_ID = "key_id"
F_ISSUER = "issuer"
F_SUBJECT = "subject"
F_AUDIENCE = "audience"
F_REVISION = "config_revision"

#: A compact JWS (a JWT): a JSON header, a payload and, mostly, a signature.
_COMPACT_TOKEN = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
#: What a line holds in place of a token.
REDACTED_TOKEN = "[token redacted]"

#: Longest message and longest error text kept in a line. Libraries quote
#: what a client sent in their messages (aiohttp a malformed request line,
#: OpenTelemetry a bad trace header), so a client could otherwise fill the
#: log with its own text at warning level, which is written at once.
MAX_MESSAGE_CHARS = 1024
MAX_ERROR_CHARS = 4096

#: Seconds a line may wait in the buffer before it is written out.
FLUSH_INTERVAL_SECONDS = 0.2
#: Buffered characters that make the handler write out at once.
FLUSH_SIZE = 64 * 1024


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object with its trace and span ids.

    Anything shaped like a compact JWS (``eyJ...`` header, payload,
    signature) in the line is replaced by :data:`REDACTED_TOKEN`, wherever
    it came from.
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service
        self._second = -1
        self._second_text = ""

    def _time(self, record: logging.LogRecord) -> str:
        # strftime costs more than the rest of a short line; a second's
        # text is made once.
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": _clipped(record.getMessage(), MAX_MESSAGE_CHARS),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            error = self.formatException(record.exc_info)
            entry["error"] = _clipped(error, MAX_ERROR_CHARS)
        line = json.dumps(entry, default=str)
        # The mesh logs token ids only, but text it does not write can hold a
        # whole token: aiohttp's message for a malformed request quotes the
        # offending header line, an Authorization header included.
        if "eyJ" in line:
            line = _COMPACT_TOKEN.sub(REDACTED_TOKEN, line)
        return line


def _clipped(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} characters left out]"


class BufferedHandler(logging.Handler):
    """Writes lines in batches: at once for warnings and errors, else soon.

    One write per line cost a system call on every RPC. Lines of level
    INFO and below wait up to :data:`FLUSH_INTERVAL_SECONDS` (a thread
    writes them out) or until :data:`FLUSH_SIZE` characters are waiting; a
    warning or an error writes everything out with it, so the lines that
    explain a fault are never the ones still waiting. The audit file, not
    this log, is the durable record.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._waiting: list[str] = []
        self._size = 0
        # Not "_closed": logging.Handler sets that to True when it closes.
        self._stopping = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_periodically, name="wif-log-flush", daemon=True
        )
        self._flusher.start()
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        with self.lock:  # type: ignore[union-attr]
            self._waiting.append(line)
            self._size += len(line)
            urgent = record.levelno >= logging.WARNING or self._size >= FLUSH_SIZE
        if urgent:
            self.flush()

    def flush(self) -> None:
        """Writes out every waiting line."""
        with self.lock:  # type: ignore[union-attr]
            if not self._waiting:
                return
            text, self._waiting, self._size = "".join(self._waiting), [], 0
            # A closed or broken stream leaves nowhere to write, and a log
            # line must never raise into the code that logs.
            with contextlib.suppress(Exception):
                self._stream.write(text)
                self._stream.flush()

    def close(self) -> None:
        self._stopping.set()
        self.flush()
        super().close()

    def _flush_periodically(self) -> None:
        while not self._stopping.wait(FLUSH_INTERVAL_SECONDS):
            self.flush()


def configure_logging(service: str, level: str = "info") -> None:
    """Sends every log line of this process to stderr as JSON."""
    # The lines carry neither source file, thread nor process: skip the
    # stack walk and lookups that would find them (the logging HOWTO's
    # "Optimization" section names these switches).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BufferedHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for previous in root.handlers:
        if isinstance(previous, BufferedHandler):
            previous.close()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
