"""Fixtures of the ITS unit tests: a SoftHSM2 token and a real etcd."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from services.its.pkcs11 import Pkcs11Token
from tests.support.softhsm import SoftHsmToken, init_token
from wif.dev.etcd import EtcdServer, start_etcd
from wif.store import EtcdStore


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    """One SoftHSM2 token for the session (its module loads only once)."""
    token = init_token(tmp_path_factory.mktemp("softhsm"))
    os.environ["SOFTHSM2_CONF"] = str(token.conf)
    return token


@pytest.fixture(scope="session")
def hsm_token(softhsm: SoftHsmToken) -> Iterator[Pkcs11Token]:
    """A logged-in session on the SoftHSM2 token."""
    token = Pkcs11Token(softhsm.module, softhsm.label, softhsm.pin, "wif-its-test")
    yield token
    token.close()


@pytest.fixture(scope="module")
def etcd_server() -> Iterator[EtcdServer]:
    with start_etcd() as server:
        yield server


@pytest.fixture
async def store(etcd_server: EtcdServer) -> AsyncIterator[EtcdStore]:
    async with EtcdStore(etcd_server.endpoint) as connected:
        yield connected
