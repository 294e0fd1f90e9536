"""Tests for wif.store.transaction_problem: what etcd would refuse."""

from __future__ import annotations

from wif.store import DEFAULT_MAX_TXN_OPS, transaction_problem


def test_a_small_configuration_fits() -> None:
    assert transaction_problem({"/wif/trust/a": b"{}"}) is None


def test_too_many_documents_are_reported() -> None:
    items = {f"/wif/trust/a{i}": b"{}" for i in range(DEFAULT_MAX_TXN_OPS + 1)}

    problem = transaction_problem(items)

    assert problem is not None
    assert f"limit of {DEFAULT_MAX_TXN_OPS} operations" in problem


def test_too_many_bytes_are_reported() -> None:
    problem = transaction_problem({"/wif/trust/a": b"x" * 2000}, max_bytes=1000)

    assert problem is not None
    assert "limit of 1000 bytes" in problem
