"""Audit durability: a killed service loses no record of a token it handed out."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.mesh import audit_records, exchange, job_token
from wif.audit.verify import verify_file
from wif.dev.mesh import start_mesh, stop_mesh

WORKERS = 8
LOAD_SECONDS = 1.5


@pytest.fixture(scope="module")
def own_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A mesh of this module's own, since its STS gets killed."""
    state = tmp_path_factory.mktemp("durable-mesh")
    try:
        yield start_mesh(state, with_oidc=True)
    finally:
        stop_mesh(state)


async def _exchange_until_refused(
    mesh: dict[str, Any], token: str, got: list[str]
) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        try:
            result = await exchange(mesh, token)
        except grpc.aio.AioRpcError:
            return
        got.append(result.token_id)


def _issued_ids(mesh: dict[str, Any], service: str, event: str) -> set[str]:
    return {
        str(r.get("token_id"))
        for r in audit_records(mesh, service)
        if r["event"] == event and r["outcome"] == "ok"
    }


async def test_sigkill_under_load_loses_no_record_of_a_token_a_client_received(
    own_mesh: dict[str, Any],
) -> None:
    token = job_token(own_mesh, "github-payments-deploy")
    received: list[str] = []
    workers = [
        asyncio.create_task(_exchange_until_refused(own_mesh, token, received))
        for _ in range(WORKERS)
    ]

    await asyncio.sleep(LOAD_SECONDS)
    os.kill(own_mesh["pids"]["sts"], signal.SIGKILL)
    await asyncio.wait_for(asyncio.gather(*workers), timeout=40)

    assert len(received) > WORKERS
    assert set(received) <= _issued_ids(own_mesh, "sts", "token.exchange")
    assert set(received) <= _issued_ids(own_mesh, "its", "token.issued")
    assert verify_file(Path(own_mesh["audit_logs"]["sts"])).intact
    print(f"\n{len(received)} tokens received before SIGKILL; every one has its record")
