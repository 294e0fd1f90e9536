"""The Kubernetes provider preset, on a mesh of this module's own.

A second OpenID provider instance plays the cluster's service-account
issuer and issues the `k8s-payments-api` job, whose claims have the shape a
projected service-account token has. The trust configuration is the dev one
with config/presets/kubernetes-provider.yaml spliced in.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.mesh import MESH_AUDIENCE, REPO_ROOT, exchange, refusal
from wif.dev.mesh import start_mesh, stop_mesh
from wif.dev.oidc import fetch_job_token, job_credentials, start_oidc_provider
from wif.tokens import parse_compact

PRESET = REPO_ROOT / "config" / "presets" / "kubernetes-provider.yaml"
SUBJECT = "spiffe://acme.example/payments-k8s/ns/payments/sa/payments-api"
PRESET_VARIABLES = ("WIF_K8S_ISSUER", "WIF_K8S_POOL", "WIF_K8S_AUDIENCE")


def _with_preset(trust: str) -> str:
    """The dev configuration with the preset's provider entry added."""
    preset = PRESET.read_text()
    entry = preset[preset.index("providers:\n") + len("providers:\n") :]
    # The test cluster serves discovery over plain HTTP on loopback.
    entry = entry.replace(
        "    jwks: {discovery: true}\n",
        "    jwks: {discovery: true}\n    allow_http_on_loopback: true\n",
    )
    return trust.replace("providers:\n", "providers:\n" + entry, 1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with start_oidc_provider(REPO_ROOT) as provider:
        yield provider.issuer


@pytest.fixture(scope="module")
def k8s_mesh(
    tmp_path_factory: pytest.TempPathFactory, cluster: str
) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("k8s-mesh")
    trust = state / "trust.yaml"
    trust.write_text(_with_preset((REPO_ROOT / "config/dev-trust.yaml").read_text()))
    variables = {
        "WIF_K8S_ISSUER": cluster,
        "WIF_K8S_POOL": "payments-k8s",
        "WIF_K8S_AUDIENCE": MESH_AUDIENCE,
    }
    os.environ.update(variables)
    try:
        endpoints = start_mesh(state, with_oidc=True, trust_config=trust)
    except BaseException:
        stop_mesh(state)
        raise
    finally:
        for name in PRESET_VARIABLES:
            os.environ.pop(name, None)
    endpoints["cluster"] = cluster
    yield endpoints
    stop_mesh(state)


def _pod_token(cluster: str) -> str:
    client_id, secret = job_credentials(REPO_ROOT, "k8s-payments-api")
    return fetch_job_token(cluster, client_id, secret, MESH_AUDIENCE)


async def test_projected_token_exchanges_for_the_service_account_identity(
    k8s_mesh: dict[str, Any],
) -> None:
    token = await asyncio.to_thread(_pod_token, k8s_mesh["cluster"])

    issued = await exchange(k8s_mesh, token, scopes=("payments.read",))
    claims = parse_compact(issued.access_token).claims

    assert claims["sub"] == SUBJECT
    assert {name: claims.get(name) for name in ("namespace", "service_account")} == {
        "namespace": "payments",
        "service_account": "payments-api",
    }
    assert claims["pod"] == "payments-api-7d9f8c6b5-x2k4q"
    assert claims["workload_type"] == "pod"


async def test_a_ci_token_is_not_taken_for_a_cluster_token(
    k8s_mesh: dict[str, Any],
) -> None:
    client_id, secret = job_credentials(REPO_ROOT, "github-payments-deploy")
    ci_token = await asyncio.to_thread(
        fetch_job_token, k8s_mesh["cluster"], client_id, secret, MESH_AUDIENCE
    )

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await exchange(k8s_mesh, ci_token)

    assert refusal(refused.value)[1:] == ("ATTRIBUTE_CONDITION_FAILED", "invalid_grant")


def test_preset_names_every_variable_it_needs() -> None:
    text = Path(PRESET).read_text()

    assert all("${" + name + "}" in text for name in PRESET_VARIABLES)
