"""wif.audit.verify finds every edited, removed and reordered record."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from wif.audit import AuditLog
from wif.audit.verify import verify_file


async def _write_log(path: Path, count: int = 5) -> list[bytes]:
    audit = AuditLog("test", str(path))
    for n in range(count):
        await audit.record("token.issued", "ok", token_id=f"t{n}")
    return path.read_bytes().splitlines()


@dataclass(frozen=True)
class Tamper:
    name: str
    change: Callable[[list[bytes]], list[bytes]]
    problem: str


def _edit(lines: list[bytes]) -> list[bytes]:
    record = json.loads(lines[2])
    record["outcome"] = "refused"
    return [*lines[:2], json.dumps(record).encode(), *lines[3:]]


TAMPERS = [
    Tamper("edited", _edit, "line 3: the record was altered"),
    Tamper(
        "removed",
        lambda ls: ls[:2] + ls[3:],
        "line 3: the record before it was removed",
    ),
    Tamper(
        "reordered", lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], "line 2: the record"
    ),
    Tamper(
        "first dropped", lambda ls: ls[1:], "line 1: the record before it was removed"
    ),
]


async def test_an_untouched_log_is_intact(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _write_log(path)

    result = verify_file(path)

    assert (result.intact, result.records, result.torn_lines) == (True, 5, [])


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda t: t.name)
async def test_tampering_is_found(tmp_path: Path, tamper: Tamper) -> None:
    path = tmp_path / "audit.jsonl"
    lines = await _write_log(path)
    path.write_bytes(b"\n".join(tamper.change(lines)) + b"\n")

    result = verify_file(path)

    assert not result.intact
    assert result.problems[0].startswith(tamper.problem)


async def test_a_line_torn_by_a_crash_is_tolerated_when_the_chain_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    await _write_log(path, count=2)
    with path.open("ab") as handle:
        handle.write(b'{"time": 1, "even')  # the process died mid-write
    audit = AuditLog("test", str(path))
    await audit.record("token.issued", "ok", token_id="after-crash")

    result = verify_file(path)

    assert result.intact
    assert (result.records, result.torn_lines) == (3, [3])


async def test_a_garbled_record_that_breaks_the_chain_is_not_excused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    lines = await _write_log(path)
    path.write_bytes(b"\n".join([*lines[:2], b"garbage", *lines[3:]]) + b"\n")

    result = verify_file(path)

    assert not result.intact
    assert result.torn_lines == [3]


async def _write_mixed_log(path: Path) -> list[bytes]:
    audit = AuditLog("test", str(path))
    for n in range(6):
        if n % 2:
            await audit.record("token.issued", "ok", token_id=f"t{n}")
        else:
            audit.record_nowait("token.validated", "ok", token_id=f"t{n}")
    await audit.flush()
    return path.read_bytes().splitlines()


async def test_a_log_of_awaited_and_unawaited_records_is_intact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    await _write_mixed_log(path)

    result = verify_file(path)

    assert (result.intact, result.records, result.torn_lines) == (True, 6, [])


async def test_a_record_is_written_with_its_hash_last(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = await _write_mixed_log(path)

    members = [list(json.loads(line)) for line in lines]

    assert all(names[-1] == "hash" for names in members)
    assert all(names[:-1] == sorted(names[:-1]) for names in members)


@dataclass(frozen=True)
class Edit:
    name: str
    old: bytes
    new: bytes


EDITS = [
    Edit("outcome", b'"outcome":"ok"', b'"outcome":"no"'),
    Edit("token id", b'"token_id":"t3"', b'"token_id":"t9"'),
    Edit("event", b'"event":"token.issued"', b'"event":"token.revoked"'),
]


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: e.name)
async def test_an_edited_line_of_a_written_log_is_found(
    tmp_path: Path, edit: Edit
) -> None:
    path = tmp_path / "audit.jsonl"
    lines = await _write_mixed_log(path)
    assert edit.old in lines[3]
    lines[3] = lines[3].replace(edit.old, edit.new)
    path.write_bytes(b"\n".join(lines) + b"\n")

    result = verify_file(path)

    assert result.problems == ["line 4: the record was altered"]
