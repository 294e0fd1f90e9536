"""Audit records: one JSON line per decision, issuance, refusal or change.

Each record holds the hash of the record before it, so an edited, removed
or reordered line breaks the chain (:mod:`wif.audit.verify` finds it).
:meth:`AuditLog.record` returns only after the line is on disk: records that
arrive together are written and synced together (group commit), so a
caller that hands out a token after recording its issuance never hands out
an unrecorded token, and a burst costs one ``fsync``, not one per record.
Records hold token ids and hashes, never tokens. Without an audit file the
records go to the service log instead (logger ``wif.audit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace

log = logging.getLogger("wif.audit")

#: The ``prev`` of the first record of a file.
GENESIS = "0" * 64
#: Seconds a batch holding only unawaited records waits for more to join it.
#: A record someone waits for is written at once, with whatever is waiting.
UNAWAITED_DELAY_SECONDS = 0.01
_TAIL_BYTES = 1024 * 1024


def _body_text(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, default=str, separators=(",", ":"))


def record_hash(entry: dict[str, Any]) -> str:
    """The chain hash of a record: SHA-256 of its JSON without ``hash``."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(_body_text(body).encode()).hexdigest()


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
        return GENESIS
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - _TAIL_BYTES))
        lines = handle.read().splitlines()
    for line in reversed(lines):
        try:
            return str(json.loads(line)["hash"])
        except (ValueError, KeyError, TypeError):
            continue
    return GENESIS


class AuditLog:
    """An append-only, hash-chained, synced audit file (or the log alone)."""

    def __init__(self, service: str, path: str | None) -> None:
        self._service = service
        self._path = Path(path) if path else None
        self._pending: list[tuple[bytes, asyncio.Future[None] | None]] = []
        self._awaited = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        if self._path is not None:
            _end_torn_line(self._path)
        self._previous = _last_hash(self._path) if self._path else GENESIS

    async def record(self, event: str, outcome: str, **fields: Any) -> None:
        """Appends one record and waits until it is durable."""
        done = self._append(event, outcome, fields, awaited=True)
        if done is not None:
            await done

    def record_nowait(self, event: str, outcome: str, **fields: Any) -> None:
        """Appends one record that is written with the next batch, unawaited.

        For high-volume events that hand nothing out (validations): the
        record takes its place in the chain at once and reaches the disk with
        the next group commit, at most :data:`UNAWAITED_DELAY_SECONDS` later
        (so that a burst of validations costs one ``fsync``), but the caller
        does not wait for it. A failed write is logged as an error.
        """
        self._append(event, outcome, fields, awaited=False)

    def _append(
        self, event: str, outcome: str, fields: dict[str, Any], awaited: bool
    ) -> asyncio.Future[None] | None:
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
        # No await from here to the enqueue: the chain order is the file order.
        entry["prev"] = self._previous
        body = _body_text(entry)
        digest = hashlib.sha256(body.encode()).hexdigest()
        self._previous = digest
        if self._path is None:
            # No audit file: the service log is where the record goes.
            entry["hash"] = digest
            log.info("audit %s %s", event, outcome, extra={"fields": {"audit": entry}})
            return None
        # The body is already the record's JSON; the hash joins it as the
        # last member (readers parse the line, so member order is free).
        line = f'{body[:-1]},"hash":"{digest}"}}\n'.encode()
        return self._enqueue(line, awaited)

    def _enqueue(self, line: bytes, awaited: bool) -> asyncio.Future[None] | None:
        done = asyncio.get_running_loop().create_future() if awaited else None
        self._pending.append((line, done))
        if awaited:
            self._awaited.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        return done

    async def _write_pending(self) -> None:
        while self._pending:
            if not self._awaited.is_set():
                # Only unawaited records: let more join, unless one that is
                # awaited arrives first.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._awaited.wait(), UNAWAITED_DELAY_SECONDS
                    )
            batch, self._pending = self._pending, []
            self._awaited.clear()
            try:
                await asyncio.to_thread(
                    self._write, b"".join(line for line, _ in batch)
                )
            except OSError as exc:
                self._failed(batch, exc)
                continue
            for _, done in batch:
                # A caller cancelled meanwhile (an RPC past its deadline) has
                # cancelled its future; the others must still hear.
                if done is not None and not done.done():
                    done.set_result(None)

    @staticmethod
    def _failed(
        batch: list[tuple[bytes, asyncio.Future[None] | None]], error: OSError
    ) -> None:
        unawaited = 0
        for _, done in batch:
            if done is None:
                unawaited += 1
            elif not done.done():
                done.set_exception(error)
        # Those who await a record hear of the failure; the others only here.
        if unawaited:
            log.error("%d audit records could not be written: %s", unawaited, error)

    async def flush(self) -> None:
        """Waits until every record appended so far is on disk (at shutdown)."""
        while self._writer is not None and not self._writer.done():
            self._awaited.set()
            await asyncio.shield(self._writer)

    def _write(self, data: bytes) -> None:
        assert self._path is not None
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # os.write may write less than asked (a signal, a full disk
            # nearly): go on from where it stopped.
            rest = memoryview(data)
            while rest:
                rest = rest[os.write(fd, rest) :]
            os.fsync(fd)
        finally:
            os.close(fd)
