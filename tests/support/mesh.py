"""Helpers that talk to the running test mesh the way a workload would."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from services.its.custody import SealedCustody
from services.sts.client_auth import INTROSPECT_SCOPE, REVOKE_SCOPE
from wif.dev.mesh import dev_channel
from wif.dev.oidc import fetch_job_token, job_credentials
from wif.envelope import KeyEncryptionKey
from wif.grpc_errors import error_info
from wif.keyring import KEYS_PREFIX, KeyState, parse_records
from wif.store import EtcdStore
from wif.v1 import sts_pb2, sts_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
MESH_AUDIENCE = "https://wif.acme.example"
TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
#: The STS's own audience (its default token_admin_audience): the audience of
#: the tokens that authenticate callers of /introspect and /revoke.
STS_AUDIENCE = "wif-sts"
#: The dev job whose exchange may carry both token administration scopes.
OPERATIONS_JOB = "github-mesh-operations"
TOKEN_ADMIN_SCOPES = (INTROSPECT_SCOPE, REVOKE_SCOPE)


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


def audit_records(
    mesh: dict[str, Any], service: str, event: str | None = None
) -> list[dict[str, Any]]:
    """Every audit record one service has written so far, of ``event`` if given.

    Records that hand nothing out (validations, configuration changes) reach
    the file a few milliseconds late, so a test counting records before and
    after a call names the event it counts.
    """
    path = Path(mesh["audit_logs"][service])
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [r for r in records if event is None or r["event"] == event]


async def caller_token(
    mesh: dict[str, Any],
    job: str = OPERATIONS_JOB,
    scopes: tuple[str, ...] = TOKEN_ADMIN_SCOPES,
) -> str:
    """A mesh token for the STS itself, from an ordinary exchange of ``job``'s
    platform token: what authenticates a caller of /introspect and /revoke."""
    platform = await asyncio.to_thread(job_token, mesh, job)
    issued = await exchange(mesh, platform, audience=STS_AUDIENCE, scopes=scopes)
    return issued.access_token


def post_to_sts(
    mesh: dict[str, Any],
    path: str,
    fields: list[tuple[str, str]],
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """POSTs a form to the STS's HTTP ``path``: status, headers and JSON body."""
    body = urllib.parse.urlencode(fields).encode()
    url = mesh["sts"]["http"] + path
    request = urllib.request.Request(  # noqa: S310
        url, data=body, method="POST", headers=dict(headers or {})
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header presenting ``token``."""
    return {"Authorization": f"Bearer {token}"}


async def mesh_signed(mesh: dict[str, Any], claims: dict[str, Any]) -> str:
    """``claims`` signed with the mesh's active key, opened with the dev
    mesh's key-encryption key: for mesh tokens no exchange hands out, such as
    an expired one."""
    kek = KeyEncryptionKey.from_file(Path(mesh["state_dir"]) / "kek")
    async with EtcdStore(mesh["etcd"]) as store:
        snapshot = await store.get_prefix(KEYS_PREFIX)
    records = parse_records(snapshot.items)
    active = next(r for r in records if r.state == KeyState.ACTIVE)
    return SealedCustody(kek).load(active).sign(claims)
