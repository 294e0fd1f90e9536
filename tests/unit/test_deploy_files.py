"""Static checks of the Dockerfile's companions: compose file and Kubernetes manifests.

They read the files with PyYAML, and validate every manifest against the
Kubernetes schemas the ``kubernetes-validate`` package ships, after building
each kustomization with ``kubectl kustomize`` when kubectl is installed
(otherwise the manifests are read file by file). Nothing is started or
fetched.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.its.settings import ItsSettings
from services.policy.settings import PolicySettings
from services.sts.settings import StsSettings
from wif.client.environment import (
    ENV_AUDIENCE,
    ENV_STS_ADDRESS,
    ENV_SUBJECT_TOKEN_FILE,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
ALL_DEPLOY_YAML = sorted(DEPLOY.rglob("*.yaml"))
#: The example workload that calls the mesh; not a part of the mesh itself.
WORKLOAD = DEPLOY / "overlays" / "example" / "workload"
DEPLOY_YAML = [path for path in ALL_DEPLOY_YAML if WORKLOAD not in path.parents]
KUSTOMIZATIONS = sorted(path.parent for path in DEPLOY.rglob("kustomization.yaml"))
#: The Kubernetes release the manifests are checked against.
KUBERNETES_VERSION = "1.30.0"
MESH_AUDIENCE = "https://wif.acme.example"

SETTINGS_BY_COMMAND = {
    "wif-its": ItsSettings,
    "wif-sts": StsSettings,
    "wif-policy": PolicySettings,
}


def env_names(settings: type) -> set[str]:
    return {f.metadata["env"] for f in dataclasses.fields(settings)}


ALL_SETTINGS_ENV = set().union(*map(env_names, SETTINGS_BY_COMMAND.values()))


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests(kind: str) -> list[dict[str, Any]]:
    docs = [doc for path in DEPLOY_YAML for doc in load_all(path)]
    return [doc for doc in docs if doc.get("kind") == kind]


def compose_services() -> dict[str, dict[str, Any]]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def wif_names(names: Iterable[str]) -> set[str]:
    return {name for name in names if name.startswith("WIF_")}


def test_deploy_files_exist() -> None:
    assert COMPOSE.is_file()
    assert len(DEPLOY_YAML) >= 2


@pytest.mark.parametrize(
    "path", [COMPOSE, *ALL_DEPLOY_YAML], ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_yaml_file_parses(path: Path) -> None:
    assert load_all(path)


def test_deployment_commands_are_project_entry_points() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts = set(pyproject["project"]["scripts"])
    deployments = manifests("Deployment")
    assert len(deployments) == 3
    for deployment in deployments:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["command"][0] in scripts


def test_deployment_env_is_declared_by_that_service() -> None:
    for deployment in manifests("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            declared = env_names(SETTINGS_BY_COMMAND[container["command"][0]])
            used = wif_names(item["name"] for item in container.get("env", []))
            assert used <= declared


def test_deployments_run_non_root_on_a_read_only_root() -> None:
    for deployment in manifests("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert (
                container["readinessProbe"]["grpc"]["port"]
                == (container["livenessProbe"]["grpc"]["port"])
            )


def test_configmap_holds_only_declared_settings() -> None:
    (configmap,) = [
        c for c in manifests("ConfigMap") if c["metadata"]["name"] == "wif-mesh"
    ]
    used = wif_names(configmap["data"])
    assert "WIF_ETCD_ENDPOINT" in used
    assert used <= ALL_SETTINGS_ENV


def test_compose_services_use_only_their_own_settings() -> None:
    services = compose_services()
    for command, settings in SETTINGS_BY_COMMAND.items():
        (service,) = [s for s in services.values() if s.get("command") == [command]]
        assert wif_names(service["environment"]) <= env_names(settings)


def test_compose_config_job_sets_only_trust_file_variables() -> None:
    job = compose_services()["config"]
    assert job["command"][:3] == ["wif", "config", "apply"]
    trust_file = (ROOT / "config" / "dev-trust.yaml").read_text()
    variables = set(re.findall(r"\$\{(\w+)\}", trust_file))
    assert wif_names(job["environment"]) <= {"WIF_ETCD_ENDPOINT", *variables}


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, service in compose_services().items():
        for port in service.get("ports", []):
            assert isinstance(port, str), name
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


@pytest.mark.parametrize(
    "kustomization",
    sorted(DEPLOY.rglob("kustomization.yaml")),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_kustomization_resources_exist(kustomization: Path) -> None:
    resources = yaml.safe_load(kustomization.read_text())["resources"]
    for resource in resources:
        target = kustomization.parent / resource
        assert target.is_file() or (target / "kustomization.yaml").is_file(), resource


def built(kustomization: Path) -> list[dict[str, Any]]:
    """The resources of a kustomization: built by kubectl, else read as listed."""
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        result = subprocess.run(
            [kubectl, "kustomize", str(kustomization)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    listed = yaml.safe_load((kustomization / "kustomization.yaml").read_text())
    docs = []
    for resource in listed["resources"]:
        target = kustomization / resource
        docs += built(target) if target.is_dir() else load_all(target)
    return docs


@pytest.mark.parametrize(
    "kustomization", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_every_manifest_matches_the_kubernetes_schema(kustomization: Path) -> None:
    docs = built(kustomization)

    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            problems.append(f"{name}: {error.message} at {list(error.path)}")

    assert docs
    assert problems == []


def test_schema_validation_refuses_an_unknown_field() -> None:
    (deployment, *_) = [
        doc for doc in built(DEPLOY / "base") if doc["kind"] == "Deployment"
    ]
    deployment["spec"]["replica"] = 2

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_example_workload_presents_its_projected_token_for_the_mesh() -> None:
    docs = built(WORKLOAD)
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "projected" in v]
    (source,) = volume["projected"]["sources"]
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    env = {item["name"]: item["value"] for item in container["env"]}
    client_settings = {ENV_SUBJECT_TOKEN_FILE, ENV_STS_ADDRESS, ENV_AUDIENCE}

    assert pod["serviceAccountName"] in {
        doc["metadata"]["name"] for doc in docs if doc["kind"] == "ServiceAccount"
    }
    assert source["serviceAccountToken"]["audience"] == MESH_AUDIENCE
    token_path = f"{mount['mountPath']}/{source['serviceAccountToken']['path']}"
    assert client_settings <= set(env)
    assert env[ENV_SUBJECT_TOKEN_FILE] == token_path
    assert env[ENV_STS_ADDRESS].startswith("wif-sts.")
