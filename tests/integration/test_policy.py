"""The Policy service on its own real mesh: batches, reloads, shadow, quarantine, Envoy.

The module starts its own mesh (etcd, the three services, the OpenID
provider) so that it can change the trust configuration freely; each test
puts the configuration it changed back.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import (
    attribute_context_pb2,
    external_auth_pb2,
    external_auth_pb2_grpc,
)
from google.protobuf import struct_pb2
from google.rpc import code_pb2

from tests.support.mesh import REPO_ROOT, audit_records, exchange, job_token
from wif.dev.mesh import apply_config, start_mesh, stop_mesh
from wif.store import EtcdStore
from wif.tokens import base64url
from wif.trust.config import TRUST_PREFIX
from wif.trust.stored import apply_items, read_items
from wif.v1 import policy_pb2, policy_pb2_grpc

DOMAIN = "acme.example"
CI_SUBJECT = f"spiffe://{DOMAIN}/payments-ci/acme-corp/payments-api"
PAYMENTS_HOST = "payments.acme.example"

#: A forbid this module's configuration adds: the admin paths of every API.
ADMIN_PATHS = """
  - id: no-admin-paths
    cedar: |
      forbid (principal, action == Action::"access", resource)
      when { context.http_path like "/admin/*" };
"""

AttributeContext = attribute_context_pb2.AttributeContext


@pytest.fixture(scope="module")
def own_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A mesh of this module's own, whose configuration the tests may change."""
    state = tmp_path_factory.mktemp("policy-mesh")
    trust = state / "trust.yaml"
    trust.write_text(
        (REPO_ROOT / "config" / "dev-trust.yaml").read_text() + ADMIN_PATHS
    )
    try:
        endpoints = start_mesh(state, with_oidc=True, trust_config=trust)
    except BaseException:
        stop_mesh(state)
        raise
    yield endpoints
    stop_mesh(state)


@pytest.fixture
async def policy(
    own_mesh: dict[str, Any],
) -> AsyncIterator[policy_pb2_grpc.PolicyServiceStub]:
    async with grpc.aio.insecure_channel(own_mesh["policy"]["grpc"]) as channel:
        yield policy_pb2_grpc.PolicyServiceStub(channel)


@pytest.fixture
async def envoy(
    own_mesh: dict[str, Any],
) -> AsyncIterator[external_auth_pb2_grpc.AuthorizationStub]:
    async with grpc.aio.insecure_channel(own_mesh["policy"]["grpc"]) as channel:
        yield external_auth_pb2_grpc.AuthorizationStub(channel)


@pytest.fixture
async def restore_config(
    own_mesh: dict[str, Any], policy: policy_pb2_grpc.PolicyServiceStub
) -> AsyncIterator[None]:
    """Puts the module's trust configuration back after the test, in force."""
    yield
    revision = await apply_config(
        own_mesh["etcd"], Path(own_mesh["trust_config"]), own_mesh["config_variables"]
    )
    await wait_for_revision(policy, revision)


def ask(
    pool: str,
    path: str = "acme-corp/payments-api",
    audience: str = "payments-api",
    action: str = "exchange",
) -> policy_pb2.DecideRequest:
    context = struct_pb2.Struct()
    context.update({"source_address": "127.0.0.1", "now": int(time.time())})
    return policy_pb2.DecideRequest(
        principal=policy_pb2.Principal(
            subject=f"spiffe://{DOMAIN}/{pool}/{path}", pool_id=pool, provider_id="ci"
        ),
        action=action,
        audience=audience,
        context=context,
    )


def with_policies(mesh: dict[str, Any], name: str, extra: str) -> Path:
    """The module's configuration with ``extra`` YAML appended, as a file."""
    original = Path(mesh["trust_config"])
    changed = original.with_name(name)
    changed.write_text(original.read_text() + extra)
    return changed


async def apply(mesh: dict[str, Any], path: Path) -> int:
    return await apply_config(mesh["etcd"], path, mesh["config_variables"])


async def wait_for_revision(
    policy: policy_pb2_grpc.PolicyServiceStub, revision: int
) -> None:
    for _ in range(100):
        answer = await policy.Decide(ask("payments-ci"), timeout=5)
        if answer.config_revision >= revision:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"revision {revision} never took effect")


def check_request(
    token: str | None,
    path: str = "/v1/balance",
    host: str = PAYMENTS_HOST,
    extensions: dict[str, str] | None = None,
) -> external_auth_pb2.CheckRequest:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    http = AttributeContext.HttpRequest(
        method="GET", path=path, host=host, headers=headers
    )
    return external_auth_pb2.CheckRequest(
        attributes=AttributeContext(
            request=AttributeContext.Request(http=http),
            context_extensions=extensions or {},
        )
    )


def answer_headers(response: external_auth_pb2.CheckResponse) -> dict[str, str]:
    which = response.WhichOneof("http_response")
    options = getattr(response, which).headers if which else []
    return {o.header.key: o.header.value for o in options}


async def test_decide_batch_answers_in_order_at_one_revision_and_audits_each(
    own_mesh: dict[str, Any], policy: policy_pb2_grpc.PolicyServiceStub
) -> None:
    requests = [
        ask("payments-ci"),
        ask("search", path="acme-corp/search"),
        ask("payments-ci", audience="nosuch"),
    ]
    before = len(audit_records(own_mesh, "policy", "policy.decision"))

    answer = await policy.DecideBatch(
        policy_pb2.DecideBatchRequest(requests=requests), timeout=5
    )

    assert [r.decision for r in answer.responses] == [
        policy_pb2.DECISION_ALLOW,
        policy_pb2.DECISION_DENY,
        policy_pb2.DECISION_DENY,
    ]
    assert [list(r.policy_ids) for r in answer.responses] == [
        ["payments-reach-internal-payments"],
        ["search-is-isolated"],
        [],
    ]
    assert list(answer.responses[2].errors) == ["unknown audience 'nosuch'"]
    assert {r.config_revision for r in answer.responses} == {answer.config_revision}
    records = audit_records(own_mesh, "policy", "policy.decision")[before:]
    assert [(r["audience"], r["outcome"], r["policy_ids"]) for r in records] == [
        ("payments-api", "allow", ["payments-reach-internal-payments"]),
        ("payments-api", "deny", ["search-is-isolated"]),
        ("nosuch", "deny", []),
    ]
    assert all(r["config_revision"] == answer.config_revision for r in records)


async def test_decide_batch_refuses_more_than_a_hundred_questions(
    policy: policy_pb2_grpc.PolicyServiceStub,
) -> None:
    batch = policy_pb2.DecideBatchRequest(requests=[ask("payments-ci")] * 101)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await policy.DecideBatch(batch, timeout=5)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def _log_mentions(path: Path, text: str) -> bool:
    for _ in range(100):
        if text in path.read_text(errors="replace"):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("cedar", "why"),
    [
        ("permit(;", "Policy parse error"),
        (
            "permit (principal, action, resource) when { principal.nosuch };",
            "attribute `nosuch` on entity type `Workload` not found",
        ),
    ],
)
async def test_a_bad_policy_in_etcd_leaves_the_active_set_in_force(
    own_mesh: dict[str, Any],
    policy: policy_pb2_grpc.PolicyServiceStub,
    cedar: str,
    why: str,
) -> None:
    log = Path(own_mesh["state_dir"]) / "logs" / "policy.log"
    async with EtcdStore(own_mesh["etcd"]) as store:
        key = TRUST_PREFIX + "policies/broken"
        good = await read_items(store)
        # Reloads happen off the request path: wait until the version in etcd
        # is the one in force (an earlier test may have just restored it).
        await wait_for_revision(policy, good.revision)
        before = await policy.Decide(ask("search", path="acme-corp/search"), timeout=5)
        broken = json.dumps({"id": "broken", "cedar": cedar}).encode()
        applied = await apply_items(store, {**good.items, key: broken})
        try:
            refused = await _log_mentions(
                log, f"revision {applied.revision} is invalid"
            )
            after = await policy.Decide(
                ask("search", path="acme-corp/search"), timeout=5
            )
        finally:
            restored = await apply_items(store, good.items)
            await wait_for_revision(policy, restored.revision)

    assert refused, "the Policy service never reported the bad revision"
    assert f"policies.broken: {why}" in log.read_text(errors="replace")
    assert after.decision == policy_pb2.DECISION_DENY
    assert list(after.policy_ids) == ["search-is-isolated"]
    assert after.config_revision == before.config_revision


async def test_concurrent_decisions_during_reloads_each_see_one_version(
    own_mesh: dict[str, Any],
    policy: policy_pb2_grpc.PolicyServiceStub,
    restore_config: None,
) -> None:
    grant = """
  - id: reload-{0}
    cedar: |
      permit (principal in Pool::"payments", action == Action::"exchange",
              resource == Audience::"ledger-admin");
"""
    files = [with_policies(own_mesh, f"trust-{n}.yaml", grant.format(n)) for n in "ab"]
    base = await policy.Decide(ask("payments-ci", audience="ledger-admin"), timeout=5)
    expected = {base.config_revision: []}
    answers: list[policy_pb2.DecideResponse] = []
    done = asyncio.Event()

    async def keep_asking() -> None:
        for _ in range(2000):
            if done.is_set():
                return
            answers.append(
                await policy.Decide(
                    ask("payments-ci", audience="ledger-admin"), timeout=5
                )
            )

    askers = [asyncio.create_task(keep_asking()) for _ in range(4)]
    for n in range(6):
        revision = await apply(own_mesh, files[n % 2])
        expected[revision] = [f"reload-{'ab'[n % 2]}"]
        await asyncio.sleep(0.1)
    done.set()
    await asyncio.gather(*askers)

    seen = {a.config_revision for a in answers}
    assert len(seen) >= 3, "the reloads did not overlap the decisions"
    assert seen <= set(expected)
    for answer in answers:
        assert list(answer.policy_ids) == expected[answer.config_revision]
        allowed = answer.decision == policy_pb2.DECISION_ALLOW
        assert allowed == bool(expected[answer.config_revision])


SHADOW = """
shadow_policies:
  - id: payments-reach-internal-payments
    cedar: |
      permit (principal in Pool::"payments-ci", action == Action::"exchange",
              resource == Audience::"payments-api");
  - id: search-reaches-search
    cedar: |
      permit (principal in Pool::"search", action == Action::"exchange",
              resource == Audience::"search-api");
"""


def _run_wif(mesh: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "wif"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "WIF_ETCD_ENDPOINT": mesh["etcd"]},
        check=False,
    )


async def test_shadow_evaluation_reports_exactly_the_differing_decisions(
    own_mesh: dict[str, Any],
    policy: policy_pb2_grpc.PolicyServiceStub,
    restore_config: None,
) -> None:
    revision = await apply(
        own_mesh, with_policies(own_mesh, "trust-shadow.yaml", SHADOW)
    )
    await wait_for_revision(policy, revision)
    questions = [
        ask("payments-ci"),  # allowed by both
        ask("payments-k8s", path="payments-api"),  # allowed, the shadow set denies
        ask("search", path="acme-corp/search"),  # denied by both
        ask("search", path="acme-corp/search", audience="search-api"),  # the reverse
        ask("payments-k8s", path="payments-api", audience="ledger-admin"),  # both deny
    ]

    answers = [await policy.Decide(q, timeout=5) for q in questions]
    report = await policy.GetShadowReport(
        policy_pb2.GetShadowReportRequest(), timeout=5
    )
    cli = await asyncio.to_thread(
        _run_wif,
        own_mesh,
        "policy",
        "shadow-report",
        "--policy",
        own_mesh["policy"]["grpc"],
        "--json",
    )

    assert [a.decision for a in answers] == [
        policy_pb2.DECISION_ALLOW,
        policy_pb2.DECISION_ALLOW,
        policy_pb2.DECISION_DENY,
        policy_pb2.DECISION_DENY,
        policy_pb2.DECISION_DENY,
    ]
    assert report.shadow_configured
    assert report.evaluated >= len(questions)
    assert [
        (d.subject, d.audience, d.active_decision, d.shadow_decision)
        for d in report.differences
    ] == [
        (
            f"spiffe://{DOMAIN}/payments-k8s/payments-api",
            "payments-api",
            policy_pb2.DECISION_ALLOW,
            policy_pb2.DECISION_DENY,
        ),
        (
            f"spiffe://{DOMAIN}/search/acme-corp/search",
            "search-api",
            policy_pb2.DECISION_DENY,
            policy_pb2.DECISION_ALLOW,
        ),
    ]
    assert list(report.differences[1].shadow_policy_ids) == ["search-reaches-search"]
    assert report.differing == 2
    assert cli.returncode == 0, cli.stderr
    assert len(json.loads(cli.stdout)["differences"]) == 2


async def _decide_until(
    policy: policy_pb2_grpc.PolicyServiceStub,
    request: policy_pb2.DecideRequest,
    decision: policy_pb2.Decision.ValueType,
) -> policy_pb2.DecideResponse:
    for _ in range(100):
        answer = await policy.Decide(request, timeout=5)
        if answer.decision == decision:
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"the decision never became {decision}")


async def test_a_quarantine_from_the_cli_denies_everything_until_released(
    own_mesh: dict[str, Any],
    policy: policy_pb2_grpc.PolicyServiceStub,
    envoy: external_auth_pb2_grpc.AuthorizationStub,
) -> None:
    token = (
        await exchange(own_mesh, job_token(own_mesh, "github-payments-deploy"))
    ).access_token

    imposed = await asyncio.to_thread(
        _run_wif,
        own_mesh,
        "policy",
        "quarantine",
        CI_SUBJECT,
        "--for",
        "10m",
        "--reason",
        "incident 7",
    )
    try:
        denied = await _decide_until(
            policy, ask("payments-ci"), policy_pb2.DECISION_DENY
        )
        check = await envoy.Check(check_request(token), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await exchange(own_mesh, job_token(own_mesh, "github-payments-deploy"))
    finally:
        released = await asyncio.to_thread(
            _run_wif, own_mesh, "policy", "release", CI_SUBJECT
        )
    allowed = await _decide_until(policy, ask("payments-ci"), policy_pb2.DECISION_ALLOW)

    assert imposed.returncode == 0, imposed.stderr
    assert "quarantined until" in imposed.stdout
    assert list(denied.policy_ids) == []
    assert denied.errors[0].startswith("quarantined until ")
    assert denied.errors[0].endswith(": incident 7")
    assert check.status.code == code_pb2.PERMISSION_DENIED
    assert "quarantined until" in answer_headers(check)["x-wif-reason"]
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "quarantined until" in (refused.value.details() or "")
    assert released.returncode == 0, released.stderr
    assert list(allowed.policy_ids) == ["payments-reach-internal-payments"]


async def test_a_quarantine_policy_quarantines_the_principal_it_denies(
    own_mesh: dict[str, Any],
    policy: policy_pb2_grpc.PolicyServiceStub,
    restore_config: None,
) -> None:
    trap = """
  - id: ledger-probes-are-quarantined
    cedar: |
      @quarantine("1m")
      forbid (principal in Pool::"payments-k8s", action,
              resource == Audience::"ledger-admin");
"""
    revision = await apply(own_mesh, with_policies(own_mesh, "trust-trap.yaml", trap))
    await wait_for_revision(policy, revision)
    probe = ask("payments-k8s", path="probe", audience="ledger-admin")
    key = "/wif/quarantine/" + base64url.encode(probe.principal.subject.encode())

    async with EtcdStore(own_mesh["etcd"]) as store:
        trapped = await policy.Decide(probe, timeout=5)
        try:
            after = await policy.Decide(ask("payments-k8s", path="probe"), timeout=5)
            record = await store.get(key)
        finally:
            await store.delete(key)

    assert list(trapped.policy_ids) == ["ledger-probes-are-quarantined"]
    assert record is not None
    assert json.loads(record)["reason"] == "denied by ledger-probes-are-quarantined"
    assert after.decision == policy_pb2.DECISION_DENY
    assert after.errors[0].startswith("quarantined until ")


async def test_envoy_check_allows_a_granted_route_and_explains_each_refusal(
    own_mesh: dict[str, Any], envoy: external_auth_pb2_grpc.AuthorizationStub
) -> None:
    issued = await exchange(
        own_mesh,
        job_token(own_mesh, "github-payments-deploy"),
        scopes=("payments.read",),
    )
    token = issued.access_token

    ok = await envoy.Check(check_request(token, path="/v1/balance?x=1"), timeout=5)
    admin = await envoy.Check(check_request(token, path="/admin/keys"), timeout=5)
    other = await envoy.Check(
        check_request(token, extensions={"wif_audience": "search-api"}), timeout=5
    )
    unknown_route = await envoy.Check(check_request(token, host="x.example"), timeout=5)
    anonymous = await envoy.Check(check_request(None), timeout=5)
    forged = await envoy.Check(check_request(token[:-4] + "AAAA"), timeout=5)

    assert ok.status.code == code_pb2.OK
    assert ok.WhichOneof("http_response") == "ok_response"
    assert answer_headers(ok) == {
        "x-wif-subject": CI_SUBJECT,
        "x-wif-policy-ids": "payments-access-payments-api",
    }
    assert admin.status.code == code_pb2.PERMISSION_DENIED
    assert admin.denied_response.status.code == 403
    assert (
        answer_headers(admin)["x-wif-reason"]
        == "POLICY_DENIED: denied by no-admin-paths"
    )
    assert other.status.code == code_pb2.UNAUTHENTICATED
    assert answer_headers(other)["x-wif-reason"].startswith("AUDIENCE_MISMATCH")
    assert unknown_route.status.code == code_pb2.PERMISSION_DENIED
    assert answer_headers(unknown_route)["x-wif-reason"].startswith("NO_AUDIENCE")
    assert anonymous.denied_response.status.code == 401
    assert answer_headers(anonymous)["x-wif-reason"].startswith("MISSING_BEARER_TOKEN")
    assert forged.denied_response.status.code == 401
    assert answer_headers(forged)["x-wif-reason"].startswith("BAD_SIGNATURE")
    records = [
        r for r in audit_records(own_mesh, "policy") if r.get("action") == "access"
    ]
    assert {"allow", "deny"} <= {r["outcome"] for r in records}


@pytest.mark.parametrize("revoke", ["jti", "sub"])
async def test_envoy_cache_never_outlives_a_revocation(
    own_mesh: dict[str, Any],
    envoy: external_auth_pb2_grpc.AuthorizationStub,
    revoke: str,
) -> None:
    issued = await exchange(own_mesh, job_token(own_mesh, "github-payments-deploy"))
    request = check_request(issued.access_token)
    first = await envoy.Check(request, timeout=5)
    cached = await envoy.Check(request, timeout=5)
    name = issued.token_id if revoke == "jti" else base64url.encode(CI_SUBJECT.encode())
    key = f"/wif/revocations/{revoke}/{name}"

    async with EtcdStore(own_mesh["etcd"]) as store:
        await store.put(key, b"{}")
        try:
            for _ in range(100):
                answer = await envoy.Check(request, timeout=5)
                if answer.status.code != code_pb2.OK:
                    break
                await asyncio.sleep(0.02)
        finally:
            await store.delete(key)

    assert first.status.code == cached.status.code == code_pb2.OK
    assert answer.status.code == code_pb2.UNAUTHENTICATED
    assert answer_headers(answer)["x-wif-reason"].startswith("TOKEN_REVOKED")


async def test_policy_report_lists_reach_and_unused_grants(
    own_mesh: dict[str, Any], policy: policy_pb2_grpc.PolicyServiceStub
) -> None:
    await policy.Decide(ask("payments-ci"), timeout=5)

    report = await asyncio.to_thread(
        _run_wif, own_mesh, "policy", "report", "--policy", own_mesh["policy"]["grpc"]
    )
    data = await asyncio.to_thread(
        _run_wif,
        own_mesh,
        "--json",
        "policy",
        "report",
        "--policy",
        own_mesh["policy"]["grpc"],
    )

    assert report.returncode == 0, report.stderr
    assert f"{CI_SUBJECT} (seen): exchange payments-api" in report.stdout
    assert "grants wider than their use:" in report.stdout
    grants = {g["policy_id"]: g for g in json.loads(data.stdout)["grants"]}
    assert int(grants["payments-reach-internal-payments"]["decisions"]) >= 1


async def test_the_envoy_authorizer_reports_serving_on_the_health_service(
    own_mesh: dict[str, Any],
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(own_mesh["policy"]["grpc"]) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(
                service="envoy.service.auth.v3.Authorization"
            ),
            timeout=5,
        )

    assert health.status == health_pb2.HealthCheckResponse.SERVING
