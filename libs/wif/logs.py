"""Structured logging: one JSON object a line, with the trace id on every line.

Log fields are passed with ``extra={"fields": {...}}`` using the snake_case
keys defined here once, so that every service names the same fact the same
way.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

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


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object with its trace and span ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "info") -> None:
    """Sends every log line of this process to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
