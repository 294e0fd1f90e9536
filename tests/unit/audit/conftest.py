"""Fixtures shared by the audit tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    """Where a test's audit file goes; it does not exist yet."""
    return tmp_path / "audit.jsonl"
