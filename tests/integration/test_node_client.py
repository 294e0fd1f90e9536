"""Interop: the Node.js client generated with buf against the real services.

clients/node/exchange-and-validate.mjs exchanges a CI job's token at the
shared mesh's STS over gRPC (connect-node's gRPC transport, HTTP/2) and
validates the issued token there; it prints only ids and claims.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.support.mesh import REPO_ROOT, job_token

SCRIPT = REPO_ROOT / "clients" / "node" / "exchange-and-validate.mjs"
CI_SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"


def _run_node(request: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the interop test"
    result = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


@pytest.mark.parametrize("scopes", [[], ["payments.read"]])
async def test_node_client_exchanges_and_validates_over_grpc(
    mesh: dict[str, Any], scopes: list[str]
) -> None:
    token = await asyncio.to_thread(job_token, mesh, "github-payments-deploy")
    request = {
        "sts": mesh["sts"]["grpc"],
        "subject_token": token,
        "audience": "payments-api",
        "scopes": scopes,
    }

    answer = await asyncio.to_thread(_run_node, request)

    assert "error" not in answer, answer
    exchanged, validated = answer["exchanged"], answer["validated"]
    assert exchanged["tokenType"] == "Bearer"
    assert exchanged["scope"] == scopes
    assert 0 < exchanged["expiresIn"] <= 3600
    assert validated["tokenId"] == exchanged["tokenId"]
    assert validated["subject"] == CI_SUBJECT
    assert validated["audience"] == "payments-api"


async def test_node_client_sees_the_mesh_refusal(mesh: dict[str, Any]) -> None:
    token = await asyncio.to_thread(job_token, mesh, "github-untrusted-branch")
    request = {
        "sts": mesh["sts"]["grpc"],
        "subject_token": token,
        "audience": "payments-api",
    }

    answer = await asyncio.to_thread(_run_node, request)

    assert answer["error"]["code"] == "Unauthenticated"
