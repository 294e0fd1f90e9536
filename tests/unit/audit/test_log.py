"""Tests for wif.audit: the hash chain, durability and the log-only mode."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from tests.unit.audit.chain import (
    GENESIS,
    assert_linear_chain,
    expected_hash,
    read_records,
)
from wif.audit import AuditLog


def last_record(path: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(path.read_text().splitlines()[-1])
    return record


def read_raw(path: Path) -> bytes:
    return path.read_bytes()


async def test_record_writes_the_event_outcome_service_and_fields(
    audit_path: Path,
) -> None:
    audit = AuditLog("sts", str(audit_path))

    await audit.record("token_exchange", "issued", token_id="jti-1", audience="api")

    (record,) = read_records(audit_path)
    assert record["service"] == "sts"
    assert record["event"] == "token_exchange"
    assert record["outcome"] == "issued"
    assert record["token_id"] == "jti-1"
    assert record["audience"] == "api"
    assert isinstance(record["time"], float)


async def test_records_chain_each_prev_to_the_hash_before_it(audit_path: Path) -> None:
    audit = AuditLog("sts", str(audit_path))

    for number in range(3):
        await audit.record("token_exchange", "issued", token_id=f"jti-{number}")

    records = read_records(audit_path)
    assert len(records) == 3
    assert records[0]["prev"] == GENESIS
    assert_linear_chain(records, GENESIS)


async def test_record_hashes_values_json_cannot_hold_as_their_text(
    audit_path: Path,
) -> None:
    audit = AuditLog("its", str(audit_path))

    await audit.record("key_rotation", "done", where=Path("/keys/k1"))

    (record,) = read_records(audit_path)
    assert record["where"] == "/keys/k1"
    assert record["hash"] == expected_hash(record)


async def test_a_new_log_on_the_same_file_continues_the_chain(
    audit_path: Path,
) -> None:
    first = AuditLog("sts", str(audit_path))
    await first.record("token_exchange", "issued", token_id="jti-1")
    await first.record("token_exchange", "refused", reason="POLICY_DENIED")

    second = AuditLog("sts", str(audit_path))
    await second.record("token_exchange", "issued", token_id="jti-2")

    records = read_records(audit_path)
    assert len(records) == 3
    assert records[2]["prev"] == records[1]["hash"]
    assert_linear_chain(records, GENESIS)


async def test_a_new_log_skips_a_last_line_that_is_no_record(
    audit_path: Path,
) -> None:
    first = AuditLog("sts", str(audit_path))
    await first.record("token_exchange", "issued", token_id="jti-1")
    last_hash = read_records(audit_path)[0]["hash"]
    with audit_path.open("a") as handle:
        handle.write('{"event": "token_exch\n')

    second = AuditLog("sts", str(audit_path))
    await second.record("token_exchange", "issued", token_id="jti-2")

    assert last_record(audit_path)["prev"] == last_hash


@pytest.fixture
def empty_audit_path(audit_path: Path) -> Path:
    audit_path.touch()
    return audit_path


async def test_a_new_log_on_an_empty_file_starts_from_genesis(
    empty_audit_path: Path,
) -> None:
    audit = AuditLog("sts", str(empty_audit_path))

    await audit.record("token_exchange", "issued")

    assert read_records(empty_audit_path)[0]["prev"] == GENESIS


async def test_record_creates_the_file_readable_by_its_owner_only(
    audit_path: Path,
) -> None:
    audit = AuditLog("its", str(audit_path))

    await audit.record("token_issue", "issued")

    assert stat.S_IMODE(os.stat(audit_path).st_mode) == 0o600


async def test_record_is_on_disk_when_record_returns(audit_path: Path) -> None:
    audit = AuditLog("its", str(audit_path))

    await audit.record("token_issue", "issued", token_id="jti-1")
    on_disk = read_raw(audit_path)

    assert on_disk.endswith(b"\n")
    assert json.loads(on_disk)["token_id"] == "jti-1"


async def test_concurrent_records_keep_one_linear_chain(audit_path: Path) -> None:
    audit = AuditLog("sts", str(audit_path))

    await asyncio.gather(
        *(
            audit.record("token_exchange", "issued", token_id=f"jti-{number}")
            for number in range(50)
        )
    )

    records = read_records(audit_path)
    assert len(records) == 50
    assert {r["token_id"] for r in records} == {f"jti-{n}" for n in range(50)}
    assert len({r["hash"] for r in records}) == 50
    assert_linear_chain(records, GENESIS)


async def test_record_holds_the_trace_id_of_the_current_span(
    audit_path: Path,
) -> None:
    audit = AuditLog("sts", str(audit_path))
    tracer = TracerProvider().get_tracer(__name__)

    with tracer.start_as_current_span("exchange") as span:
        await audit.record("token_exchange", "issued")
        trace_id = format(span.get_span_context().trace_id, "032x")

    (record,) = read_records(audit_path)
    assert record["trace_id"] == trace_id


async def test_record_without_a_span_has_no_trace_id(audit_path: Path) -> None:
    audit = AuditLog("sts", str(audit_path))

    await audit.record("token_exchange", "issued")

    assert "trace_id" not in read_records(audit_path)[0]


async def test_record_without_a_path_writes_no_file_but_logs_the_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog("policy", None)

    with caplog.at_level(logging.INFO, logger="wif.audit"):
        await audit.record("decision", "deny", policy_id="p1")
        await audit.record("decision", "allow", policy_id="p2")

    assert os.listdir(tmp_path) == []
    logged = [r for r in caplog.records if r.name == "wif.audit"]
    assert [r.getMessage() for r in logged] == [
        "audit decision deny",
        "audit decision allow",
    ]
    entries = [r.fields["audit"] for r in logged]  # type: ignore[attr-defined]
    assert entries[0]["policy_id"] == "p1"
    assert entries[0]["prev"] == GENESIS
    assert entries[1]["prev"] == entries[0]["hash"]


async def test_record_with_a_path_goes_to_the_file_not_the_service_log(
    audit_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog("sts", str(audit_path))

    with caplog.at_level(logging.INFO, logger="wif.audit"):
        await audit.record("token_exchange", "issued", token_id="jti-1")

    assert [r for r in caplog.records if r.name == "wif.audit"] == []
    assert read_records(audit_path)[0]["token_id"] == "jti-1"


#: How long a test waits for a record written in the background.
