"""The dev OpenID provider mints platform-shaped job tokens on loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wif.dev.oidc import (
    OidcProvider,
    discovery,
    fetch_job_token,
    job_credentials,
    load_jobs,
    start_oidc_provider,
    verify_with_node_jose,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
AUDIENCE = "https://wif.acme.example"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    handle = start_oidc_provider(REPO_ROOT)
    try:
        yield handle
    finally:
        handle.stop()
    assert handle.process.returncode == 0


def token_for(provider: OidcProvider, client_id: str) -> str:
    return fetch_job_token(
        provider.issuer, *job_credentials(REPO_ROOT, client_id), AUDIENCE
    )


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert isinstance(decoded, dict)
    return decoded


def job(client_id: str) -> dict[str, Any]:
    return next(j for j in load_jobs(REPO_ROOT) if j["client_id"] == client_id)


def test_job_token_carries_ci_claims(provider: OidcProvider) -> None:
    token = token_for(provider, "github-payments-deploy")
    assert len(token.split(".")) == 3
    header, payload = segment(token, 0), segment(token, 1)
    shape = json.loads((REPO_ROOT / "dev/claims/github-actions.json").read_text())
    for claim in ("repository", "ref", "workflow", "sub", "environment"):
        assert payload[claim] == shape[claim]
    assert payload["iss"] == provider.issuer
    assert payload["aud"] == AUDIENCE
    assert (
        payload["exp"] - payload["iat"] == job("github-payments-deploy")["ttl_seconds"]
    )
    assert payload["nbf"] == payload["iat"]
    assert payload["jti"] != shape["jti"]
    assert "client_id" not in payload
    assert "scope" not in payload
    assert header["alg"] == "ES256"
    assert header["typ"] == "JWT"
    assert header["kid"]


def test_rs256_job_gets_rs256(provider: OidcProvider) -> None:
    token = token_for(provider, "github-payments-deploy-rs256")
    assert segment(token, 0)["alg"] == "RS256"
    assert segment(token, 1)["repository"] == "acme-corp/payments-api"


def test_untrusted_branch_overrides_shape(provider: OidcProvider) -> None:
    payload = segment(token_for(provider, "github-untrusted-branch"), 1)
    assert payload["ref"] == "refs/heads/feature-x"
    assert payload["sub"] == "repo:acme-corp/payments-api:ref:refs/heads/feature-x"
    assert "environment" not in payload


@pytest.mark.parametrize("client_id", [j["client_id"] for j in load_jobs(REPO_ROOT)])
def test_job_token_lives_its_ttl(provider: OidcProvider, client_id: str) -> None:
    payload = segment(token_for(provider, client_id), 1)
    assert payload["exp"] - payload["iat"] == job(client_id)["ttl_seconds"]


def test_k8s_job_has_nested_service_account(provider: OidcProvider) -> None:
    token = token_for(provider, "k8s-payments-api")
    payload = segment(token, 1)
    assert payload["kubernetes.io"]["serviceaccount"]["name"] == "payments-api"
    assert payload["sub"] == "system:serviceaccount:payments:payments-api"
    assert payload["aud"] == AUDIENCE
    assert segment(token, 0)["typ"] == "at+jwt"


def test_wrong_secret_is_invalid_client(provider: OidcProvider) -> None:
    with pytest.raises(RuntimeError, match="invalid_client"):
        fetch_job_token(
            provider.issuer, "github-payments-deploy", "nope-wrong", AUDIENCE
        )


def test_node_jose_verifies_against_jwks(provider: OidcProvider) -> None:
    jwks_uri = str(discovery(provider.issuer)["jwks_uri"])
    for client_id in ("github-payments-deploy", "github-payments-deploy-rs256"):
        token = token_for(provider, client_id)
        payload = verify_with_node_jose(
            REPO_ROOT, token, jwks_uri, provider.issuer, AUDIENCE
        )
        assert payload["repository"] == "acme-corp/payments-api"


def test_node_jose_rejects_wrong_audience(provider: OidcProvider) -> None:
    jwks_uri = str(discovery(provider.issuer)["jwks_uri"])
    token = token_for(provider, "github-payments-deploy")
    with pytest.raises(RuntimeError, match="ERR_JWT_CLAIM_VALIDATION_FAILED"):
        verify_with_node_jose(
            REPO_ROOT, token, jwks_uri, provider.issuer, "https://other.example"
        )
