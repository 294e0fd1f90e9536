"""Tests for how wif.audit records reach the disk: unawaited batches,
flushing, write failures and cancelled callers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.audit.chain import GENESIS, assert_linear_chain, read_records
from wif.audit import AuditLog
from wif.audit import log as audit_log

PATIENCE_SECONDS = 5.0
#: An unawaited delay no test could wait out, to show who does not wait for it.
LONG_DELAY_SECONDS = 60.0


@pytest.fixture
def long_unawaited_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_log, "UNAWAITED_DELAY_SECONDS", LONG_DELAY_SECONDS)


def token_ids(path: Path) -> list[str]:
    """The token ids of the complete lines of ``path``, in file order."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line)["token_id"] for line in complete.splitlines()]


async def wait_for_records(path: Path, count: int) -> None:
    """Waits until ``path`` holds ``count`` records; fails after PATIENCE."""
    started = time.monotonic()
    while len(token_ids(path)) < count:
        assert time.monotonic() - started < PATIENCE_SECONDS, "waited too long"
        await asyncio.sleep(0.002)


async def test_record_nowait_returns_before_the_record_is_written(
    audit_path: Path,
) -> None:
    audit = AuditLog("sts", str(audit_path))

    audit.record_nowait("token_validation", "valid", token_id="jti-1")

    assert token_ids(audit_path) == []
    await audit.flush()


async def test_record_nowait_reaches_the_file_soon_after(audit_path: Path) -> None:
    audit = AuditLog("sts", str(audit_path))

    audit.record_nowait("token_validation", "valid", token_id="jti-1")
    audit.record_nowait("token_validation", "refused", token_id="jti-2")
    await wait_for_records(audit_path, 2)

    assert token_ids(audit_path) == ["jti-1", "jti-2"]
    assert_linear_chain(read_records(audit_path), GENESIS)


async def test_awaited_and_unawaited_records_keep_the_order_they_were_made(
    audit_path: Path,
) -> None:
    audit = AuditLog("sts", str(audit_path))

    audit.record_nowait("token_validation", "valid", token_id="v1")
    audit.record_nowait("token_validation", "valid", token_id="v2")
    await audit.record("token_exchange", "issued", token_id="x1")
    on_disk_after_x1 = token_ids(audit_path)
    audit.record_nowait("token_validation", "valid", token_id="v3")
    await asyncio.gather(
        audit.record("token_exchange", "issued", token_id="x2"),
        audit.record("token_exchange", "issued", token_id="x3"),
    )
    audit.record_nowait("token_validation", "valid", token_id="v4")
    await wait_for_records(audit_path, 7)

    assert on_disk_after_x1 == ["v1", "v2", "x1"]
    assert token_ids(audit_path) == ["v1", "v2", "x1", "v3", "x2", "x3", "v4"]
    assert_linear_chain(read_records(audit_path), GENESIS)


@pytest.mark.usefixtures("long_unawaited_delay")
async def test_an_awaited_record_does_not_wait_out_the_unawaited_delay(
    audit_path: Path,
) -> None:
    audit = AuditLog("sts", str(audit_path))
    audit.record_nowait("token_validation", "valid", token_id="v1")
    await asyncio.sleep(0)  # the writer is now waiting for more to join

    started = time.monotonic()
    await asyncio.wait_for(
        audit.record("token_exchange", "issued", token_id="x1"), PATIENCE_SECONDS
    )

    assert time.monotonic() - started < PATIENCE_SECONDS
    assert token_ids(audit_path) == ["v1", "x1"]


@pytest.mark.usefixtures("long_unawaited_delay")
async def test_flush_returns_when_every_record_made_is_on_disk(
    audit_path: Path,
) -> None:
    audit = AuditLog("sts", str(audit_path))
    for number in range(20):
        audit.record_nowait("token_validation", "valid", token_id=f"v{number}")

    await asyncio.wait_for(audit.flush(), PATIENCE_SECONDS)

    assert token_ids(audit_path) == [f"v{number}" for number in range(20)]


async def test_flush_with_nothing_to_write_returns_at_once(audit_path: Path) -> None:
    audit = AuditLog("sts", str(audit_path))
    await audit.record("token_exchange", "issued", token_id="x1")

    await asyncio.wait_for(audit.flush(), PATIENCE_SECONDS)
    await asyncio.wait_for(AuditLog("sts", None).flush(), PATIENCE_SECONDS)


@pytest.mark.usefixtures("long_unawaited_delay")
async def test_a_burst_of_unawaited_records_costs_one_sync(
    audit_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs: list[int] = []
    real_fsync = os.fsync

    def counted_fsync(fd: int) -> None:
        syncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counted_fsync)
    audit = AuditLog("sts", str(audit_path))

    for number in range(100):
        audit.record_nowait("token_validation", "valid", token_id=f"v{number}")
    await audit.flush()

    assert len(token_ids(audit_path)) == 100
    assert len(syncs) == 1


async def test_record_nowait_without_a_path_logs_the_record_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    audit = AuditLog("sts", None)

    with caplog.at_level(logging.INFO, logger="wif.audit"):
        audit.record_nowait("token_validation", "valid", token_id="v1")

    (logged,) = [r for r in caplog.records if r.name == "wif.audit"]
    assert logged.fields["audit"]["token_id"] == "v1"  # type: ignore[attr-defined]


@pytest.fixture
def unwritable_path(tmp_path: Path) -> Path:
    """A path whose folder does not exist, so every write fails."""
    return tmp_path / "missing" / "audit.jsonl"


async def test_record_raises_when_the_record_cannot_be_written(
    unwritable_path: Path,
) -> None:
    audit = AuditLog("its", str(unwritable_path))

    with pytest.raises(FileNotFoundError):
        await audit.record("token_issue", "issued", token_id="x1")


async def test_record_raises_when_its_path_became_a_folder(audit_path: Path) -> None:
    audit = AuditLog("its", str(audit_path))
    await audit.record("token_issue", "issued", token_id="x1")
    audit_path.unlink()
    audit_path.mkdir()

    with pytest.raises(IsADirectoryError):
        await audit.record("token_issue", "issued", token_id="x2")


async def test_record_nowait_logs_a_failed_write_without_raising(
    unwritable_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog("sts", str(unwritable_path))

    with caplog.at_level(logging.ERROR, logger="wif.audit"):
        audit.record_nowait("token_validation", "valid", token_id="v1")
        audit.record_nowait("token_validation", "valid", token_id="v2")
        await audit.flush()

    (logged,) = [r for r in caplog.records if r.name == "wif.audit"]
    assert logged.levelno == logging.ERROR
    assert logged.getMessage().startswith("2 audit records could not be written: ")


@pytest.mark.usefixtures("long_unawaited_delay")
async def test_unawaited_records_lost_with_an_awaited_one_are_logged(
    unwritable_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog("sts", str(unwritable_path))

    with caplog.at_level(logging.ERROR, logger="wif.audit"):
        audit.record_nowait("token_validation", "valid", token_id="v1")
        with pytest.raises(FileNotFoundError):
            await audit.record("token_exchange", "issued", token_id="x1")

    (logged,) = [r for r in caplog.records if r.name == "wif.audit"]
    assert logged.getMessage().startswith("1 audit records could not be written: ")


async def test_records_after_a_failed_write_are_written(audit_path: Path) -> None:
    audit = AuditLog("sts", str(audit_path))
    await audit.record("token_exchange", "issued", token_id="x1")
    audit_path.unlink()
    audit_path.mkdir()
    with pytest.raises(IsADirectoryError):
        await audit.record("token_exchange", "issued", token_id="x2")
    audit_path.rmdir()

    await audit.record("token_exchange", "issued", token_id="x3")
    audit.record_nowait("token_validation", "valid", token_id="v1")
    await audit.flush()

    assert token_ids(audit_path) == ["x3", "v1"]


async def test_a_cancelled_caller_does_not_keep_others_from_their_records(
    audit_path: Path,
) -> None:
    audit = AuditLog("sts", str(audit_path))
    cancelled = asyncio.create_task(
        audit.record("token_exchange", "issued", token_id="x1")
    )
    other = asyncio.create_task(audit.record("token_exchange", "issued", token_id="x2"))
    await asyncio.sleep(0)  # both are in the same batch now

    cancelled.cancel()
    await asyncio.wait_for(other, PATIENCE_SECONDS)
    audit.record_nowait("token_validation", "valid", token_id="v1")
    await asyncio.wait_for(audit.flush(), PATIENCE_SECONDS)

    assert token_ids(audit_path) == ["x1", "x2", "v1"]
    assert_linear_chain(read_records(audit_path), GENESIS)


async def test_a_cancelled_caller_does_not_keep_others_from_a_write_failure(
    unwritable_path: Path,
) -> None:
    audit = AuditLog("sts", str(unwritable_path))
    cancelled = asyncio.create_task(
        audit.record("token_exchange", "issued", token_id="x1")
    )
    other = asyncio.create_task(audit.record("token_exchange", "issued", token_id="x2"))
    await asyncio.sleep(0)

    cancelled.cancel()

    with pytest.raises(FileNotFoundError):
        await asyncio.wait_for(other, PATIENCE_SECONDS)


async def test_a_write_cut_short_by_the_system_goes_on_where_it_stopped(
    audit_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = os.write
    calls = []

    def a_few_bytes_at_a_time(fd: int, data: Any) -> int:
        calls.append(len(data))
        return write(fd, bytes(data[:7]))

    monkeypatch.setattr(audit_log.os, "write", a_few_bytes_at_a_time)
    log = AuditLog("sts", str(audit_path))

    await log.record("token.issued", "ok", token_id="t-1", subject="s" * 200)

    (record,) = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert (record["token_id"], record["subject"]) == ("t-1", "s" * 200)
    assert len(calls) > 30
