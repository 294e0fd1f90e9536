"""Reading audit files back in the audit tests: records and their chain."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def expected_hash(record: dict[str, Any]) -> str:
    body = {name: value for name, value in record.items() if name != "hash"}
    text = json.dumps(body, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def assert_linear_chain(records: list[dict[str, Any]], first_prev: str) -> None:
    previous = first_prev
    for record in records:
        assert record["prev"] == previous
        assert record["hash"] == expected_hash(record)
        previous = record["hash"]
