"""Audit records: one JSON line per decision, issuance, refusal or change.

Each record holds the hash of the record before it, so an edited, removed
or reordered line breaks the chain. :meth:`AuditLog.record` returns only
after the line is on disk (``fsync``), so a caller that hands out a token
after recording its issuance never hands out an unrecorded token. Records
hold token ids and hashes, never tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace

log = logging.getLogger("wif.audit")

_GENESIS = "0" * 64
_TAIL_BYTES = 1024 * 1024


def _end_torn_line(path: Path) -> None:
    """Ends a last line cut short by a crash, so the next record stands alone."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) != b"\n":
            handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())


def _last_hash(path: Path) -> str:
    if not path.exists() or path.stat().st_size == 0:
        return _GENESIS
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - _TAIL_BYTES))
        lines = handle.read().splitlines()
    for line in reversed(lines):
        try:
            return str(json.loads(line)["hash"])
        except (ValueError, KeyError):
            continue
    return _GENESIS


class AuditLog:
    """An append-only, hash-chained, synced audit file (or the log alone)."""

    def __init__(self, service: str, path: str | None) -> None:
        self._service = service
        self._path = Path(path) if path else None
        self._lock = asyncio.Lock()
        if self._path is not None:
            _end_torn_line(self._path)
        self._previous = _last_hash(self._path) if self._path else _GENESIS

    async def record(self, event: str, outcome: str, **fields: Any) -> None:
        """Appends one record and waits until it is durable."""
        entry: dict[str, Any] = {
            "time": round(time.time(), 3),
            "service": self._service,
            "event": event,
            "outcome": outcome,
            **fields,
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
        async with self._lock:
            entry["prev"] = self._previous
            body = json.dumps(entry, sort_keys=True, default=str)
            entry["hash"] = hashlib.sha256(body.encode()).hexdigest()
            line = json.dumps(entry, sort_keys=True, default=str)
            if self._path is not None:
                await asyncio.to_thread(self._append, line)
            self._previous = entry["hash"]
        log.info("audit %s %s", event, outcome, extra={"fields": {"audit": entry}})

    def _append(self, line: str) -> None:
        assert self._path is not None
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
