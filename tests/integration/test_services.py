"""Health, reflection, tracing and configuration following of the running services."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support.mesh import exchange, job_token, refusal
from tests.support.otlp import OtlpReceiver
from wif.dev.mesh import apply_config
from wif.store import EtcdStore
from wif.trust.config import TRUST_PREFIX
from wif.trust.stored import apply_items, read_items

SERVICES = {
    "its": "wif.v1.IdentityTokenService",
    "policy": "wif.v1.PolicyService",
    "sts": "wif.v1.SecurityTokenService",
}


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_service_reports_serving_and_lists_itself_by_reflection(
    mesh: dict[str, Any], service: str
) -> None:
    async with grpc.aio.insecure_channel(mesh[service]["grpc"]) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICES[service]), timeout=5
        )
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        listed = [
            s.name async for r in stream for s in r.list_services_response.service
        ]

    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert SERVICES[service] in listed
    assert "grpc.health.v1.Health" in listed


#: The spans one exchange must produce: every RPC hop and every step.
TRACE_SPANS = {
    "/wif.v1.SecurityTokenService/ExchangeToken",
    "/wif.v1.PolicyService/Decide",
    "/wif.v1.IdentityTokenService/IssueToken",
    "sts.parse",
    "sts.signature",
    "sts.claims",
    "sts.condition",
    "sts.mapping",
    "sts.decision",
    "policy.evaluate",
    "its.sign",
}


async def test_exchange_is_one_trace_across_sts_policy_and_its(
    mesh: dict[str, Any], otlp_receiver: OtlpReceiver
) -> None:
    trace_id = secrets.token_hex(16)
    parent = secrets.token_hex(8)
    metadata = (("traceparent", f"00-{trace_id}-{parent}-01"),)

    await exchange(mesh, job_token(mesh, "github-payments-deploy"), metadata=metadata)
    spans = await asyncio.to_thread(otlp_receiver.wait_for, trace_id, TRACE_SPANS)

    by_id = {s.span_id: s for s in spans}
    assert {"wif-sts", "wif-policy", "wif-its"} <= {s.service for s in spans}
    assert {s.name for s in spans} >= TRACE_SPANS
    roots = [s for s in spans if s.parent_span_id not in by_id]
    assert [r.parent_span_id for r in roots] == [parent]
    sign = next(s for s in spans if s.name == "its.sign")
    assert all(len(v) < 200 for s in spans for v in s.attributes.values())
    assert sign.attributes["wif.key_id"]


def _grant_ledger(text: str) -> str:
    return (
        text
        + """
  - id: test-ledger-for-ci
    cedar: |
      permit (principal in Pool::"payments-ci", action == Action::"exchange",
              resource == Audience::"ledger-admin");
"""
    )


async def _wait_for_allowed(mesh: dict[str, Any], token: str, allowed: bool) -> None:
    for _ in range(100):
        try:
            await exchange(mesh, token, audience="ledger-admin")
            if allowed:
                return
        except grpc.aio.AioRpcError as exc:
            if not allowed and refusal(exc)[1] == "POLICY_DENIED":
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the change to allowed={allowed} never took effect")


async def test_services_follow_configuration_changes_through_the_watch(
    mesh: dict[str, Any],
) -> None:
    original = Path(mesh["trust_config"])
    changed = original.with_name("trust-ledger.yaml")
    changed.write_text(_grant_ledger(original.read_text()))
    token = job_token(mesh, "github-payments-deploy")

    await apply_config(mesh["etcd"], changed, mesh["config_variables"])
    try:
        await _wait_for_allowed(mesh, token, allowed=True)
    finally:
        await apply_config(mesh["etcd"], original, mesh["config_variables"])
    await _wait_for_allowed(mesh, token, allowed=False)


async def test_invalid_document_in_etcd_leaves_last_good_configuration(
    mesh: dict[str, Any],
) -> None:
    bad_key = TRUST_PREFIX + "policies/broken"
    broken = json.dumps({"id": "broken", "cedar": "permit(;"}).encode()
    async with EtcdStore(mesh["etcd"]) as store:
        good = await read_items(store)
        await apply_items(store, {**good.items, bad_key: broken})
        try:
            await asyncio.sleep(0.5)
            result = await exchange(mesh, job_token(mesh, "github-payments-deploy"))
        finally:
            await apply_items(store, good.items)

    assert result.access_token


def test_each_service_exposes_prometheus_metrics(mesh: dict[str, Any]) -> None:
    import urllib.request

    texts = {}
    for service, url in mesh["metrics"].items():
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            texts[service] = response.read().decode()

    assert 'rpc="ExchangeToken"' in texts["sts"]
    assert 'rpc="IssueToken"' in texts["its"]
    assert 'rpc="Decide"' in texts["policy"]
    assert "wif_rpc_duration" in texts["sts"]


async def test_http_exchange_continues_the_callers_trace(
    mesh: dict[str, Any], otlp_receiver: OtlpReceiver
) -> None:
    import urllib.parse
    import urllib.request

    trace_id = secrets.token_hex(16)
    form = urllib.parse.urlencode(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": job_token(mesh, "github-payments-deploy"),
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "audience": "payments-api",
        }
    ).encode()
    request = urllib.request.Request(mesh["sts"]["http"] + "/token", data=form)  # noqa: S310
    request.add_header("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01")
    await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)

    names = {"POST /token", "/wif.v1.PolicyService/Decide", "its.sign"}
    spans = await asyncio.to_thread(otlp_receiver.wait_for, trace_id, names)

    assert {s.name for s in spans} >= names
