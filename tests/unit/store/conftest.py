"""One real etcd server for the store tests, and a fresh store per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from wif.dev.etcd import EtcdServer, start_etcd
from wif.store import EtcdStore


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    with start_etcd() as server:
        yield server


@pytest.fixture
async def store(etcd_server: EtcdServer) -> AsyncIterator[EtcdStore]:
    async with EtcdStore(etcd_server.endpoint) as connected:
        yield connected


@pytest.fixture
def prefix() -> str:
    """A prefix no other test writes under."""
    return f"/test/{uuid.uuid4().hex}/"
