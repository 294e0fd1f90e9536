"""Key rotation and revocation across replicas, on a mesh of this module's own.

The mesh here rotates every few seconds, so these tests never touch the
shared session mesh. Beside it run a second ITS replica (the rotation has
one leader between the two) and a second STS replica (it learns about keys
only through the etcd watch). Measured figures are printed; run with ``-s``
to see them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.mesh import REPO_ROOT, refusal
from tests.support.replicas import Replica, start_replica
from wif.dev.mesh import start_mesh, stop_mesh
from wif.store import EtcdStore
from wif.v1 import (
    its_pb2,
    its_pb2_grpc,
    key_admin_pb2,
    key_admin_pb2_grpc,
    sts_pb2,
    sts_pb2_grpc,
)

#: A schedule fast enough to rotate several times within one test.
FAST_SCHEDULE = {
    "WIF_KEY_ROTATION_PERIOD": "2",
    "WIF_KEY_PUBLISH_AHEAD": "1",
    "WIF_JWKS_CACHE_SECONDS": "1",
    "WIF_MAX_TOKEN_LIFETIME": "5",
    "WIF_RETIRED_KEY_RETENTION": "5",
    "WIF_KEY_CHECK_INTERVAL": "0.2",
    "WIF_ITS_LEADER_LEASE": "2",
}
SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"
LOAD_SECONDS = 7.0
LOAD_WORKERS = 4
MAX_LOAD_ROUNDS = 20_000
PROPAGATION_LIMIT_SECONDS = 2.0
WIF = [sys.executable, "-c", "from wif.cli.main import main; main()"]


@dataclass
class Lifecycle:
    """The module's mesh and its extra replicas."""

    endpoints: dict[str, Any]
    state: Path
    its: list[str]
    sts: list[str]
    replicas: list[Replica] = field(default_factory=list)


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lifecycle]:
    state = tmp_path_factory.mktemp("lifecycle-mesh")
    saved = {name: os.environ.get(name) for name in FAST_SCHEDULE}
    os.environ.update(FAST_SCHEDULE)
    try:
        endpoints = start_mesh(state, with_oidc=True)
    except BaseException:
        stop_mesh(state)
        raise
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    mesh = Lifecycle(endpoints, state, [endpoints["its"]["grpc"]], [])
    mesh.sts.append(endpoints["sts"]["grpc"])
    shared = {
        **FAST_SCHEDULE,
        "WIF_ETCD_ENDPOINT": endpoints["etcd"],
        "WIF_KEK_FILE": str(state / "kek"),
        "WIF_ITS_ADDRESS": endpoints["its"]["grpc"],
        "WIF_POLICY_ADDRESS": endpoints["policy"]["grpc"],
    }
    try:
        for service, name, addresses in (
            ("its", "its-2", mesh.its),
            ("sts", "sts-2", mesh.sts),
        ):
            replica = start_replica(service, name, state, shared)
            mesh.replicas.append(replica)
            addresses.append(replica.grpc)
        yield mesh
    finally:
        for replica in mesh.replicas:
            replica.stop()
        stop_mesh(state)


@pytest.fixture(scope="module")
async def channels(lifecycle: Lifecycle) -> AsyncIterator[dict[str, Any]]:
    """Stubs for both ITS replicas, both STS replicas and key administration."""
    opened = [grpc.aio.insecure_channel(a) for a in lifecycle.its + lifecycle.sts]
    its_channels, sts_channels = opened[:2], opened[2:]
    yield {
        "its": [its_pb2_grpc.IdentityTokenServiceStub(c) for c in its_channels],
        "sts": [sts_pb2_grpc.SecurityTokenServiceStub(c) for c in sts_channels],
        "admin": key_admin_pb2_grpc.KeyAdminServiceStub(its_channels[0]),
    }
    for channel in opened:
        await channel.close()


async def issue(its: Any, lifetime: int = 5) -> its_pb2.IssueTokenResponse:
    request = its_pb2.IssueTokenRequest(
        subject=SUBJECT,
        audiences=["payments-api"],
        scopes=["payments.read"],
        lifetime_seconds=lifetime,
    )
    response: its_pb2.IssueTokenResponse = await its.IssueToken(request, timeout=10)
    return response


async def validate(sts: Any, token: str) -> None:
    request = sts_pb2.ValidateTokenRequest(token=token, audience="payments-api")
    await sts.ValidateToken(request, timeout=10)


async def key_states(admin: Any) -> dict[str, int]:
    reply = await admin.ListKeys(key_admin_pb2.ListKeysRequest(), timeout=10)
    return {k.key_id: k.state for k in reply.keys}


@dataclass
class LoadResult:
    """What one run of validation load saw."""

    validations: int = 0
    failures: list[str] = field(default_factory=list)
    first_seen: dict[str, float] = field(default_factory=dict)
    max_pending: int = 0


async def _load_worker(
    channels: dict[str, Any], worker: int, deadline: float, result: LoadResult
) -> None:
    its = itertools.cycle(channels["its"])
    recent: list[tuple[float, str]] = []
    for _ in range(MAX_LOAD_ROUNDS):
        now = time.monotonic()
        if now > deadline:
            return
        issued = await issue(next(its))
        result.first_seen.setdefault(issued.key_id, time.time())
        # A fresh token, and one issued up to three seconds ago (often by the
        # key before), each checked at both STS replicas.
        recent = [(t, k) for t, k in recent if now - t < 3.0]
        recent.append((now, issued.token))
        for token in (issued.token, recent[0][1]):
            for sts in channels["sts"]:
                try:
                    await validate(sts, token)
                    result.validations += 1
                except grpc.aio.AioRpcError as exc:
                    result.failures.append(f"worker {worker}: {refusal(exc)[1]}")


async def _watch_pending(
    channels: dict[str, Any], deadline: float, result: LoadResult
) -> None:
    while time.monotonic() < deadline:
        states = await key_states(channels["admin"])
        pending = sum(s == key_admin_pb2.KEY_STATE_PENDING for s in states.values())
        result.max_pending = max(result.max_pending, pending)
        await asyncio.sleep(0.1)


async def test_rotation_under_validation_load_loses_no_validation(
    lifecycle: Lifecycle, channels: dict[str, Any]
) -> None:
    result = LoadResult()
    started = time.monotonic()
    deadline = started + LOAD_SECONDS

    await asyncio.gather(
        _watch_pending(channels, deadline, result),
        *(_load_worker(channels, n, deadline, result) for n in range(LOAD_WORKERS)),
    )
    elapsed = time.monotonic() - started

    rotations = len(result.first_seen) - 1
    switch = _switch_over_ms(lifecycle, result)
    print(
        f"\nrotation under load: {result.validations} validations in "
        f"{elapsed:.1f}s ({result.validations / elapsed:.0f}/s) across 2 ITS and "
        f"2 STS replicas, {rotations} rotations, {len(result.failures)} failures; "
        f"from the leader's commit to the first token signed by the new key: "
        f"{', '.join(f'{ms:.0f}' for ms in switch)} ms"
    )
    assert result.failures == []
    assert rotations >= 2
    assert result.max_pending <= 1


def _audit(lifecycle: Lifecycle) -> list[dict[str, Any]]:
    logs = [lifecycle.state / "audit-its.jsonl", lifecycle.replicas[0].audit_log]
    return [
        json.loads(line)
        for path in logs
        if path.exists()
        for line in path.read_text().splitlines()
    ]


def _switch_over_ms(lifecycle: Lifecycle, result: LoadResult) -> list[float]:
    activated = {
        r["key_id"]: r["time"]
        for r in _audit(lifecycle)
        if r["event"] == "key.activated"
    }
    return [
        (seen - activated[kid]) * 1000
        for kid, seen in result.first_seen.items()
        if kid in activated
    ]


async def test_exactly_one_its_replica_leads_the_rotation(
    lifecycle: Lifecycle,
) -> None:
    async with EtcdStore(lifecycle.endpoints["etcd"]) as store:
        leader = await store.get("/wif/its/rotation-leader")

    records = _audit(lifecycle)
    created = [r["key_id"] for r in records if r["event"] == "key.created"]
    scheduling = {r["replica"] for r in records if r["event"] == "key.activated"}

    assert leader is not None
    assert len(created) == len(set(created))
    assert scheduling == {leader.decode()}


async def _wait_until_refused(
    sts: Any, token: str, limit: float
) -> tuple[float, grpc.aio.AioRpcError]:
    """Validates ``token`` until refused; the time that took and the refusal."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            await validate(sts, token)
        except grpc.aio.AioRpcError as exc:
            return time.monotonic() - started, exc
        await asyncio.sleep(0.005)
    raise AssertionError(f"the revoked key still verified after {limit}s")


async def test_revoked_key_fails_at_the_second_sts_within_two_seconds(
    lifecycle: Lifecycle, channels: dict[str, Any]
) -> None:
    issued = await issue(channels["its"][0])
    second_sts = channels["sts"][1]
    await validate(second_sts, issued.token)

    started = time.monotonic()
    reply = await channels["admin"].RevokeKey(
        key_admin_pb2.RevokeKeyRequest(key_id=issued.key_id), timeout=10
    )
    revoke_call = time.monotonic() - started
    propagation, refused = await _wait_until_refused(
        second_sts, issued.token, PROPAGATION_LIMIT_SECONDS
    )
    fresh = await issue(channels["its"][1])

    print(
        f"\nrevocation: RevokeKey took {revoke_call * 1000:.0f} ms; the second STS "
        f"refused the key's token {propagation * 1000:.0f} ms after it returned"
    )
    assert refusal(refused)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "UNKNOWN_KEY_ID")
    assert reply.revoked_key.state == key_admin_pb2.KEY_STATE_REVOKED
    assert reply.active_key.key_id not in ("", issued.key_id)
    assert fresh.key_id != issued.key_id
    await validate(second_sts, fresh.token)


def _wif(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WIF, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env={**os.environ, "WIF_ITS_ADDRESS": ""},
    )


def test_cli_lists_rotates_and_refuses_an_unknown_key(lifecycle: Lifecycle) -> None:
    its = lifecycle.its[0]

    listed = _wif("--json", "keys", "--its", its, "list")
    rotated = _wif("--json", "keys", "--its", its, "rotate")
    unknown = _wif("keys", "--its", its, "revoke", "no-such-key")

    assert listed.returncode == 0, listed.stderr
    states = {k["state"] for k in json.loads(listed.stdout)["keys"]}
    assert "active" in states
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["next_key"]["state"] in ("pending", "active")
    assert unknown.returncode == 1
    assert unknown.stderr == (
        "wif: not_found: no signing key has that id (UNKNOWN_KEY)\n"
    )


def test_cli_revoke_withdraws_the_key(lifecycle: Lifecycle) -> None:
    its = lifecycle.its[1]
    listed = json.loads(_wif("--json", "keys", "--its", its, "list").stdout)
    active = next(k["key_id"] for k in listed["keys"] if k["state"] == "active")

    revoked = _wif("--json", "keys", "--its", its, "revoke", active)

    assert revoked.returncode == 0, revoked.stderr
    answer = json.loads(revoked.stdout)
    assert answer["revoked_key"]["key_id"] == active
    assert answer["revoked_key"]["state"] == "revoked"
    assert answer["active_key"]["key_id"] != active


def test_cli_reports_an_unreachable_its_with_exit_code_3(tmp_path: Path) -> None:
    result = _wif("keys", "--its", "127.0.0.1:1", "list")

    assert result.returncode == 3
    assert result.stderr.startswith("wif: the ITS is unavailable")


async def test_every_key_event_is_audited(lifecycle: Lifecycle) -> None:
    def events() -> set[str]:
        return {r["event"] for r in _audit(lifecycle)}

    wanted = {"key.created", "key.activated", "key.retired", "key.revoked"}
    wanted.add("key.deleted")
    for _ in range(100):
        if wanted <= events():
            break
        await asyncio.sleep(0.1)
    assert wanted <= events()


def test_its_refuses_to_start_with_an_overlap_shorter_than_token_lifetime() -> None:
    env = {
        **os.environ,
        "WIF_MAX_TOKEN_LIFETIME": "3h",
        "WIF_RETIRED_KEY_RETENTION": "1h",
        "WIF_KEK": "",
        "WIF_KEK_FILE": "",
    }
    result = subprocess.run(
        [sys.executable, "-m", "services.its.main"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env=env,
    )

    assert result.returncode == 1
    assert (
        "setting retired_key_retention (WIF_RETIRED_KEY_RETENTION): 3600s is "
        "shorter than max_token_lifetime (WIF_MAX_TOKEN_LIFETIME) 10800s"
    ) in result.stderr
