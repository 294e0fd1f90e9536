"""Static checks of the Dockerfile's companions: compose file and Kubernetes manifests.

They read the files with PyYAML only; nothing is built, started or fetched.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.its.settings import ItsSettings
from services.policy.settings import PolicySettings
from services.sts.settings import StsSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY_YAML = sorted(DEPLOY.rglob("*.yaml"))

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
    "path", [COMPOSE, *DEPLOY_YAML], ids=lambda p: str(p.relative_to(ROOT))
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
