"""Helpers that talk to the running test mesh the way a workload would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc

from wif.dev.mesh import dev_channel
from wif.dev.oidc import fetch_job_token, job_credentials
from wif.grpc_errors import error_info
from wif.v1 import sts_pb2, sts_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
MESH_AUDIENCE = "https://wif.acme.example"
TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def job_token(mesh: dict[str, Any], job: str, audience: str = MESH_AUDIENCE) -> str:
    """A fresh token for ``job`` from the test OpenID provider."""
    client_id, secret = job_credentials(REPO_ROOT, job)
    return fetch_job_token(mesh["oidc"]["issuer"], client_id, secret, audience)


def mesh_channel(
    mesh: dict[str, Any], service: str, identity: str | None = "operator"
) -> grpc.aio.Channel:
    """A channel to one of the mesh's services (see ``wif.dev.mesh.dev_channel``)."""
    return dev_channel(mesh, service, identity)


def sts_stub(
    mesh: dict[str, Any],
) -> tuple[grpc.aio.Channel, sts_pb2_grpc.SecurityTokenServiceStub]:
    """A channel and stub for the STS, as a workload calls it (no certificate)."""
    channel = mesh_channel(mesh, "sts", identity=None)
    return channel, sts_pb2_grpc.SecurityTokenServiceStub(channel)


async def exchange(
    mesh: dict[str, Any],
    token: str,
    audience: str = "payments-api",
    scopes: tuple[str, ...] = (),
    metadata: tuple[tuple[str, str], ...] = (),
) -> sts_pb2.ExchangeTokenResponse:
    """Runs one ExchangeToken call."""
    channel, stub = sts_stub(mesh)
    async with channel:
        request = sts_pb2.ExchangeTokenRequest(
            subject_token=token,
            subject_token_type=TYPE_JWT,
            audience=[audience],
            scope=list(scopes),
        )
        return await stub.ExchangeToken(request, timeout=10, metadata=metadata)


def refusal(exc: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, str]:
    """The status code, ErrorInfo reason and OAuth error of a refused call."""
    info = error_info(exc)
    assert info is not None, "a refusal must carry an ErrorInfo"
    return exc.code(), info.reason, info.metadata["oauthError"]


def audit_records(mesh: dict[str, Any], service: str) -> list[dict[str, Any]]:
    """Every audit record one service has written so far."""
    path = Path(mesh["audit_logs"][service])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]
