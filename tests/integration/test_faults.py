"""Faults: etcd down, a peer hung or dead, a foreign JWKS failing or hanging.

The module runs a mesh of its own (its own etcd, services and a loopback
foreign issuer), since its tests stop, hang and kill parts of it. The STS of
this mesh has short deadlines and JWKS limits so that each fault shows
within seconds; the figures each test measures are printed (run with -s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from tests.support.faulty_issuer import FaultyIssuer
from tests.support.mesh import (
    MESH_AUDIENCE,
    REPO_ROOT,
    exchange,
    job_token,
    refusal,
    sts_stub,
)
from wif.dev.etcd import EtcdServer, start_etcd
from wif.dev.mesh import apply_config, restart_service, start_mesh, stop_mesh
from wif.store import DEFAULT_MAX_REQUEST_BYTES, EtcdStore, StoreRefused
from wif.trust.config import TRUST_PREFIX
from wif.trust.expressions import MAX_CEL_INPUT_DEPTH
from wif.trust.stored import apply_items, read_items
from wif.v1 import sts_pb2

#: How long etcd stays down: a minute, as the issue asks, well past the point
#: where the followers' reconnect backoff tops out (5 s).
ETCD_OUTAGE_SECONDS = 60.0
#: The STS's deadline for each Policy and ITS call in this mesh.
PEER_TIMEOUT_SECONDS = 1.0
BREAKER_FAILURES = 3
BREAKER_COOLDOWN_SECONDS = 0.5
#: Calls to one peer the STS lets wait at once in this mesh.
PEER_MAX_IN_FLIGHT = 8
JWKS_FETCH_TIMEOUT_SECONDS = 1.0
JWKS_MAX_STALE_SECONDS = 4.0
#: Overlapping exchanges sent at a hung or dead peer.
BURST = 20
#: What the STS may add to the deadline: its own work, loopback, scheduling.
#: Generous, so a loaded 2-core CI machine does not fail the test; the figures
#: measured are printed, and these bounds only catch gross regressions (such
#: as waiting out gRPC's own reconnect backoff, which runs to minutes).
SLACK_SECONDS = 2.0
#: A peer's return to the STS's first success: the issue asks for a second;
#: the bound leaves room for a loaded machine and the figure is printed.
RECOVERY_SECONDS = 3.0
#: Upper bound of every wait loop in this module.
WAIT_SECONDS = 20.0

JOB = "github-payments-deploy"
NEW_AUDIENCE = "outage-api"


@dataclass
class FaultMesh:
    endpoints: dict[str, Any]
    etcd: EtcdServer
    issuer: FaultyIssuer
    base_config: Path
    changed_config: Path


def _provider_block(issuer: str) -> str:
    return f"""
  - id: fault-issuer
    pool: payments-k8s
    issuer: {issuer}
    allow_http_on_loopback: true
    jwks: {{uri: "{issuer}/jwks"}}
    audiences: ["{MESH_AUDIENCE}"]
    algorithms: [ES256]
    condition: assertion.sub.startsWith('fault-')
    mapping:
      subject: assertion.sub
    max_token_age_seconds: 900
    clock_skew_seconds: 5
"""


_NEW_AUDIENCE_BLOCK = f"""
  - id: {NEW_AUDIENCE}
    parent: internal
    scopes: []
"""

_NEW_POLICY_BLOCK = f"""
  - id: payments-reach-outage-api
    description: Added while the mesh runs, after an etcd outage.
    cedar: |
      permit (
        principal in Pool::"payments",
        action == Action::"exchange",
        resource == Audience::"{NEW_AUDIENCE}"
      );
"""


def _configs(state: Path, issuer: str) -> tuple[Path, Path]:
    text = (REPO_ROOT / "config" / "dev-trust.yaml").read_text()
    text = text.replace("\naudiences:", _provider_block(issuer) + "\naudiences:", 1)
    base = state / "trust.yaml"
    base.write_text(text)
    changed = state / "trust-changed.yaml"
    changed.write_text(
        text.replace("\npolicies:", _NEW_AUDIENCE_BLOCK + "\npolicies:", 1)
        + _NEW_POLICY_BLOCK
    )
    return base, changed


@pytest.fixture(scope="module")
def fault_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultMesh]:
    """A mesh of this module's own, with its own etcd and foreign issuer."""
    state = tmp_path_factory.mktemp("fault-mesh")
    issuer = FaultyIssuer()
    issuer.start()
    base, changed = _configs(state, issuer.url)
    (state / "logs").mkdir()
    etcd = start_etcd(state / "etcd", log_file=state / "logs" / "etcd.log")
    settings = {
        "WIF_STS_PEER_TIMEOUT_SECONDS": str(PEER_TIMEOUT_SECONDS),
        "WIF_STS_BREAKER_FAILURES": str(BREAKER_FAILURES),
        "WIF_STS_BREAKER_COOLDOWN_SECONDS": str(BREAKER_COOLDOWN_SECONDS),
        "WIF_STS_PEER_MAX_IN_FLIGHT": str(PEER_MAX_IN_FLIGHT),
        "WIF_STS_JWKS_FETCH_TIMEOUT_SECONDS": str(JWKS_FETCH_TIMEOUT_SECONDS),
        "WIF_STS_JWKS_MIN_TTL_SECONDS": "1",
        "WIF_STS_JWKS_MAX_STALE_SECONDS": str(JWKS_MAX_STALE_SECONDS),
    }
    try:
        endpoints = start_mesh(
            state, trust_config=base, etcd=etcd, service_env=settings
        )
        yield FaultMesh(endpoints, etcd, issuer, base, changed)
    finally:
        for pid in _stopped_pids(state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        stop_mesh(state)
        etcd.close()
        issuer.stop()


def _stopped_pids(state: Path) -> list[int]:
    try:
        from wif.dev.mesh import read_endpoints

        return list(read_endpoints(state)["pids"].values())
    except (FileNotFoundError, KeyError, ValueError):
        return []


@pytest.fixture
async def ci_token(fault_mesh: FaultMesh) -> str:
    return await asyncio.to_thread(job_token, fault_mesh.endpoints, JOB)


async def _timed(call: Awaitable[Any]) -> tuple[float, BaseException | None]:
    started = time.perf_counter()
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return time.perf_counter() - started, exc
    return time.perf_counter() - started, None


async def _until_success(
    make_call: Callable[[], Awaitable[Any]], since: float
) -> float:
    """Seconds from ``since`` until ``make_call`` first succeeds."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await make_call()
            return time.monotonic() - since
        await asyncio.sleep(0.01)
    raise AssertionError(f"no success within {WAIT_SECONDS} s")


_IN_FLIGHT = re.compile(
    r'^wif_peer_calls_in_flight\S*\{[^}]*peer="([^"]+)"[^}]*\} (\S+)'
)


async def _in_flight(session: aiohttp.ClientSession, url: str, peer: str) -> float:
    async with session.get(url) as response:
        text = await response.text()
    for line in text.splitlines():
        match = _IN_FLIGHT.match(line)
        if match and match.group(1) == peer:
            return float(match.group(2))
    return 0.0


@contextlib.asynccontextmanager
async def _in_flight_watch(
    mesh: dict[str, Any], peer: str, seen: list[float]
) -> AsyncIterator[None]:
    """Polls the STS's metrics every 20 ms, appending each in-flight count."""

    async def poll() -> None:
        async with aiohttp.ClientSession(trust_env=False) as session:
            for _ in range(int(WAIT_SECONDS / 0.02)):
                seen.append(await _in_flight(session, mesh["metrics"]["sts"], peer))
                await asyncio.sleep(0.02)

    task = asyncio.create_task(poll())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _burst(
    mesh: dict[str, Any], token: str
) -> list[tuple[float, BaseException | None]]:
    """BURST exchanges started 10 ms apart, so that they overlap at a hung
    peer but not at a healthy one before it."""

    async def one(delay: float) -> tuple[float, BaseException | None]:
        await asyncio.sleep(delay)
        return await _timed(exchange(mesh, token))

    return await asyncio.gather(*(one(i * 0.01) for i in range(BURST)))


def _reason_of(exc: BaseException | None) -> tuple[grpc.StatusCode, str, str]:
    assert isinstance(exc, grpc.aio.AioRpcError), "the call must be refused"
    return refusal(exc)


# -- etcd ------------------------------------------------------------------


async def _validate(mesh: dict[str, Any], token: str) -> None:
    channel, stub = sts_stub(mesh)
    async with channel:
        await stub.ValidateToken(
            sts_pb2.ValidateTokenRequest(token=token, audience="payments-api"),
            timeout=10,
        )


async def test_services_serve_through_an_etcd_outage_and_follow_a_later_change(
    fault_mesh: FaultMesh, ci_token: str
) -> None:
    mesh = fault_mesh.endpoints
    issued = await exchange(mesh, ci_token)
    foreign = fault_mesh.issuer.token("fault-outage", MESH_AUDIENCE)

    fault_mesh.etcd.stop()
    served = 0
    try:
        deadline = time.monotonic() + ETCD_OUTAGE_SECONDS
        while time.monotonic() < deadline:
            await exchange(mesh, ci_token)
            await exchange(mesh, foreign)
            await _validate(mesh, issued.access_token)
            served += 1
            await asyncio.sleep(0.5)
    finally:
        fault_mesh.etcd.restart()

    variables = mesh["config_variables"]
    await apply_config(fault_mesh.etcd.endpoint, fault_mesh.changed_config, variables)
    changed_at = time.monotonic()
    seen_after = await _until_success(
        lambda: exchange(mesh, ci_token, audience=NEW_AUDIENCE), changed_at
    )
    await apply_config(fault_mesh.etcd.endpoint, fault_mesh.base_config, variables)

    assert served >= ETCD_OUTAGE_SECONDS / 1.0
    print(
        f"\netcd down {ETCD_OUTAGE_SECONDS:.0f} s: {served} rounds of exchange "
        f"(two providers) and validation served; a change after its return was "
        f"in force on the STS, Policy and ITS after {seen_after * 1000:.0f} ms"
    )


# -- peers -----------------------------------------------------------------


PEERS = {
    "policy": ("policy service", "POLICY_SERVICE_UNAVAILABLE"),
    "its": ("identity token service", "IDENTITY_TOKEN_SERVICE_UNAVAILABLE"),
}


@pytest.mark.parametrize("service", ["policy", "its"])
async def test_a_hung_peer_fails_closed_within_the_deadline_and_recovers(
    fault_mesh: FaultMesh, ci_token: str, service: str
) -> None:
    mesh = fault_mesh.endpoints
    peer, reason = PEERS[service]
    await exchange(mesh, ci_token)
    pid = mesh["pids"][service]
    in_flight: list[float] = []

    os.kill(pid, signal.SIGSTOP)
    try:
        async with _in_flight_watch(mesh, peer, in_flight):
            burst = await _burst(mesh, ci_token)
            after = [await _timed(exchange(mesh, ci_token)) for _ in range(5)]
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    recovery = await _until_success(lambda: exchange(mesh, ci_token), resumed)

    expected = (grpc.StatusCode.UNAVAILABLE, reason, "temporarily_unavailable")
    assert {_reason_of(exc) for _, exc in burst + after} == {expected}
    slowest = max(elapsed for elapsed, _ in burst)
    assert slowest < PEER_TIMEOUT_SECONDS + SLACK_SECONDS
    open_cost = max(elapsed for elapsed, _ in after)
    assert open_cost < SLACK_SECONDS / 5
    assert max(in_flight) <= PEER_MAX_IN_FLIGHT
    assert recovery < RECOVERY_SECONDS
    print(
        f"\nhung {service}: burst of {BURST} refused in at most {slowest * 1000:.0f}"
        f" ms (deadline {PEER_TIMEOUT_SECONDS * 1000:.0f} ms), then "
        f"{open_cost * 1000:.1f} ms with the circuit open; at most "
        f"{max(in_flight):.0f} calls in flight; first success "
        f"{recovery * 1000:.0f} ms after SIGCONT"
    )


def _end(pid: int, sig: signal.Signals) -> None:
    """Signals a service (a child of this process) and reaps it."""
    os.kill(pid, sig)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@pytest.mark.parametrize(
    ("service", "sig"),
    [("policy", signal.SIGKILL), ("its", signal.SIGTERM)],
    ids=["policy-sigkill", "its-sigterm"],
)
async def test_a_dead_peer_fails_closed_at_once_and_recovers_on_return(
    fault_mesh: FaultMesh, ci_token: str, service: str, sig: signal.Signals
) -> None:
    mesh = fault_mesh.endpoints
    _, reason = PEERS[service]
    await exchange(mesh, ci_token)

    await asyncio.to_thread(_end, mesh["pids"][service], sig)
    burst = await _burst(mesh, ci_token)
    await asyncio.to_thread(restart_service, mesh, service)
    returned = time.monotonic()
    recovery = await _until_success(lambda: exchange(mesh, ci_token), returned)

    expected = (grpc.StatusCode.UNAVAILABLE, reason, "temporarily_unavailable")
    assert all(_reason_of(exc) == expected for _, exc in burst)
    slowest = max(elapsed for elapsed, _ in burst)
    assert slowest < SLACK_SECONDS
    assert recovery < RECOVERY_SECONDS
    print(
        f"\ndead {service} ({sig.name}): burst of {BURST} refused in at most "
        f"{slowest * 1000:.0f} ms; first success {recovery * 1000:.0f} ms after "
        "the restarted service was ready"
    )


# -- a foreign issuer's JWKS -----------------------------------------------


@pytest.mark.parametrize("mode", ["fail", "hang"])
async def test_cached_foreign_keys_serve_for_a_bounded_time_then_fail_closed(
    fault_mesh: FaultMesh, mode: str
) -> None:
    mesh, issuer = fault_mesh.endpoints, fault_mesh.issuer
    issuer.mode = "ok"
    token = issuer.token(f"fault-jwks-{mode}", MESH_AUDIENCE)
    await exchange(mesh, token)

    issuer.mode = mode
    broke_at = time.monotonic()
    try:
        served, refused = 0, None
        while time.monotonic() - broke_at < WAIT_SECONDS and refused is None:
            _, refused = await _timed(exchange(mesh, token))
            served += refused is None
            await asyncio.sleep(0.2)
        stale_for = time.monotonic() - broke_at
    finally:
        issuer.mode = "ok"

    assert served > 0
    assert _reason_of(refused) == (
        grpc.StatusCode.UNAVAILABLE,
        "JWKS_UNAVAILABLE",
        "temporarily_unavailable",
    )
    bound = JWKS_MAX_STALE_SECONDS + JWKS_FETCH_TIMEOUT_SECONDS + SLACK_SECONDS
    assert JWKS_MAX_STALE_SECONDS - 1.0 < stale_for < bound
    await _until_success(lambda: exchange(mesh, token), time.monotonic())
    print(
        f"\nJWKS {mode}: cached keys served {served} exchanges, then refused "
        f"{stale_for:.1f} s after the issuer broke (limit {JWKS_MAX_STALE_SECONDS} s)"
    )


# -- CEL evaluation cost ----------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    claim: dict[str, Any] = {"leaf": "x"}
    for _ in range(depth - 1):
        claim = {"next": claim}
    return claim


@pytest.mark.parametrize(
    "extra",
    [{"deep": _nested(MAX_CEL_INPUT_DEPTH + 1)}, {"wide": list(range(600))}],
    ids=["deep", "wide"],
)
async def test_claims_too_complex_for_cel_are_refused_before_evaluation(
    fault_mesh: FaultMesh, extra: dict[str, Any]
) -> None:
    mesh, issuer = fault_mesh.endpoints, fault_mesh.issuer
    issuer.mode = "ok"
    token = issuer.token("fault-complex", MESH_AUDIENCE, extra=extra)

    _, refused = await _timed(exchange(mesh, token))

    assert _reason_of(refused) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "CLAIMS_TOO_COMPLEX",
        "invalid_grant",
    )


# -- configuration that etcd refuses ---------------------------------------


def _huge_document(items: Mapping[str, bytes]) -> dict[str, bytes]:
    # etcd's default request limit is 1.5 MiB; its gRPC limit 2 MiB.
    return {**items, f"{TRUST_PREFIX}audiences/huge": b"x" * (1700 * 1024)}


@pytest.mark.parametrize(
    "max_request_bytes",
    [DEFAULT_MAX_REQUEST_BYTES, 3 * 1024 * 1024],
    ids=["refused-before-writing", "refused-by-etcd"],
)
async def test_a_configuration_etcd_refuses_leaves_the_one_in_force(
    fault_mesh: FaultMesh, max_request_bytes: int
) -> None:
    endpoint = fault_mesh.etcd.endpoint
    async with EtcdStore(endpoint, max_request_bytes=max_request_bytes) as store:
        before = await read_items(store)
        stored_before = await store.get_prefix(TRUST_PREFIX)
        with pytest.raises(StoreRefused):
            await apply_items(store, _huge_document(before.items))
        after = await read_items(store)
        stored_after = await store.get_prefix(TRUST_PREFIX)

    assert dict(after.items) == dict(before.items)
    assert after.revision == before.revision
    assert set(stored_after.items) == set(stored_before.items)


def _config_validate(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "WIF_ISSUER": "http://127.0.0.1:1",
        "WIF_DEV_OIDC_ISSUER": "http://127.0.0.1:2",
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from wif.cli.main import main; main()",
            *("config", "validate", str(path), *options),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env=env,
    )


def test_config_validate_accepts_more_documents_than_one_transaction_holds(
    tmp_path: Path,
) -> None:
    text = (REPO_ROOT / "config" / "dev-trust.yaml").read_text()
    many = "".join(
        f"\n  - id: bulk-{i:03d}\n    parent: internal\n    scopes: []\n"
        for i in range(130)
    )
    big = tmp_path / "big.yaml"
    big.write_text(text.replace("\npolicies:", many + "\npolicies:", 1))

    result = _config_validate(big)

    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_config_validate_reports_a_document_larger_than_one_request() -> None:
    result = _config_validate(
        REPO_ROOT / "config" / "dev-trust.yaml", "--max-request-bytes", "4200"
    )

    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert "cannot be applied: the document /wif/trust/" in line
    assert "over the store's limit of 104 bytes for one document" in line
