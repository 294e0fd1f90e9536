"""Checking an audit file end to end: every record intact, none removed or moved.

Each record's ``hash`` must be the hash of its own content, and its ``prev``
must be the hash of the complete record before it. An edited record fails
the first check; a removed or reordered one fails the second at the record
that follows it. A line left incomplete by a crash is reported as torn and
tolerated only when the chain continues unbroken over it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from wif.audit.log import GENESIS, record_hash


@dataclass
class Verification:
    """The outcome of checking one file."""

    path: str
    records: int = 0
    problems: list[str] = field(default_factory=list)
    torn_lines: list[int] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """True when no record was edited, removed or reordered."""
        return not self.problems


def verify_file(path: Path) -> Verification:
    """Checks the chain of one audit file."""
    result = Verification(path=str(path))
    previous = GENESIS
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            result.torn_lines.append(number)
            continue
        if not isinstance(record, dict) or "hash" not in record:
            result.problems.append(f"line {number}: not an audit record")
            continue
        if record["hash"] != record_hash(record):
            result.problems.append(f"line {number}: the record was altered")
        if record.get("prev") != previous:
            result.problems.append(
                f"line {number}: the record before it was removed, added or moved"
            )
        previous = record["hash"]
        result.records += 1
    return result
