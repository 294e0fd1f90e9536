"""Tests for wif.store.chunk_items and oversized_document: fitting etcd's caps."""

from __future__ import annotations

import pytest

from wif.store import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
    chunk_items,
    oversized_document,
)


def test_a_small_configuration_is_one_chunk() -> None:
    items = {"/wif/trust/a": b"{}"}

    assert oversized_document(items) is None
    assert chunk_items(items) == [items]


def test_many_documents_are_split_by_operations() -> None:
    items = {f"/wif/trust/a{i:04d}": b"{}" for i in range(2 * DEFAULT_MAX_TXN_OPS + 1)}

    chunks = chunk_items(items)

    assert [len(chunk) for chunk in chunks] == [128, 128, 1]
    assert {k: v for chunk in chunks for k, v in chunk.items()} == items


def test_large_documents_are_split_by_bytes() -> None:
    items = {f"/wif/trust/a{i}": b"x" * 400_000 for i in range(8)}

    chunks = chunk_items(items)

    sizes = [sum(len(k) + len(v) for k, v in chunk.items()) for chunk in chunks]
    assert len(chunks) == 3
    assert all(size < DEFAULT_MAX_REQUEST_BYTES for size in sizes)


def test_a_document_larger_than_one_request_is_reported() -> None:
    items = {"/wif/trust/a": b"{}", "/wif/trust/huge": b"x" * 2000}

    problem = oversized_document(items, max_bytes=5000)

    assert problem is not None
    assert "the document /wif/trust/huge takes 2031 bytes" in problem
    assert "limit of 904 bytes" in problem
    with pytest.raises(ValueError, match="/wif/trust/huge"):
        chunk_items(items, max_bytes=5000)


def test_chunk_items_refuses_a_cap_below_one_operation() -> None:
    with pytest.raises(ValueError, match="max_ops must be at least 1"):
        chunk_items({"/wif/trust/a": b"{}"}, max_ops=0)
