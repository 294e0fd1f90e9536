"""Fixtures shared by the unit tests: the dev trust configuration and claims."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wif.trust.config import TrustConfig, load_file
from wif.trust.source import expand_variables, parse_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_TRUST_FILE = REPO_ROOT / "config" / "dev-trust.yaml"
DEV_CLAIMS_DIR = REPO_ROOT / "dev" / "claims"

#: Loopback values for the variables the dev configuration leaves open.
DEV_ENVIRON = {
    "WIF_ISSUER": "http://127.0.0.1:1",
    "WIF_DEV_OIDC_ISSUER": "http://127.0.0.1:2",
}


@pytest.fixture(scope="session")
def dev_trust_file() -> Path:
    """The path of the dev trust configuration template."""
    return DEV_TRUST_FILE


@pytest.fixture
def dev_environ() -> dict[str, str]:
    """A copy of the variables the dev configuration needs, set to loopback."""
    return dict(DEV_ENVIRON)


@pytest.fixture(scope="session")
def dev_config() -> TrustConfig:
    """The dev trust configuration, loaded the way `wif config apply` does."""
    return load_file(DEV_TRUST_FILE, environ=DEV_ENVIRON)


@pytest.fixture
def dev_raw() -> dict[str, Any]:
    """A fresh copy of the expanded dev configuration document, to edit."""
    text = DEV_TRUST_FILE.read_text(encoding="utf-8")
    raw: dict[str, Any] = expand_variables(parse_yaml(text, "dev"), DEV_ENVIRON)
    return raw


@pytest.fixture
def github_claims() -> dict[str, Any]:
    """The claims of a GitHub Actions job token, as the platform shapes them."""
    text = (DEV_CLAIMS_DIR / "github-actions.json").read_text(encoding="utf-8")
    claims: dict[str, Any] = json.loads(text)
    return claims
