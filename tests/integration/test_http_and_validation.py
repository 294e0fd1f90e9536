"""The RFC 8693 HTTP form endpoint and ValidateToken against the running mesh."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import grpc
import pytest

from tests.support.mesh import (
    TOKEN_EXCHANGE,
    TYPE_JWT,
    audit_records,
    exchange,
    job_token,
    refusal,
    sts_stub,
)
from wif.v1 import sts_pb2


def _post_form(
    mesh: dict[str, Any], fields: list[tuple[str, str]], path: str = "/token"
) -> tuple[int, dict[str, str], dict[str, Any]]:
    body = urllib.parse.urlencode(fields).encode()
    url = mesh["sts"]["http"] + path
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_http_token_endpoint_exchanges_a_job_token(mesh: dict[str, Any]) -> None:
    status, headers, body = _post_form(
        mesh,
        [
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", job_token(mesh, "github-payments-deploy")),
            ("subject_token_type", TYPE_JWT),
            ("resource", "https://payments.acme.example"),
            ("scope", "payments.read"),
        ],
    )

    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "Bearer"
    assert body["issued_token_type"] == TYPE_JWT
    assert body["scope"] == "payments.read"
    assert body["expires_in"] > 0


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        ([("grant_type", "client_credentials")], 400, "unsupported_grant_type"),
        (
            [("grant_type", TOKEN_EXCHANGE), ("subject_token_type", TYPE_JWT)],
            400,
            "invalid_request",
        ),
        (
            [
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", "a.b.c"),
                ("subject_token_type", "urn:example:saml"),
            ],
            400,
            "unsupported_token_type",
        ),
        (
            [("grant_type", TOKEN_EXCHANGE), ("grant_type", TOKEN_EXCHANGE)],
            400,
            "invalid_request",
        ),
        (
            [
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", "not-a-jwt"),
                ("subject_token_type", TYPE_JWT),
                ("audience", "payments-api"),
            ],
            400,
            "invalid_grant",
        ),
    ],
)
def test_http_token_endpoint_refusals_use_rfc_error_bodies(
    mesh: dict[str, Any], fields: list[tuple[str, str]], status: int, error: str
) -> None:
    got_status, headers, body = _post_form(mesh, fields)

    assert (got_status, body["error"]) == (status, error)
    assert body["error_description"]
    assert headers["Cache-Control"] == "no-store"


def test_http_token_endpoint_refuses_scope_not_offered(mesh: dict[str, Any]) -> None:
    status, _, body = _post_form(
        mesh,
        [
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", job_token(mesh, "github-payments-deploy")),
            ("subject_token_type", TYPE_JWT),
            ("audience", "payments-api"),
            ("scope", "payments.read ledger.admin"),
        ],
    )

    assert (status, body["error"]) == (400, "invalid_scope")


async def _validate(
    mesh: dict[str, Any], token: str, audience: str = ""
) -> sts_pb2.ValidateTokenResponse:
    channel, stub = sts_stub(mesh)
    async with channel:
        return await stub.ValidateToken(
            sts_pb2.ValidateTokenRequest(token=token, audience=audience), timeout=10
        )


async def test_validate_token_accepts_an_issued_token(mesh: dict[str, Any]) -> None:
    issued = await exchange(mesh, job_token(mesh, "github-payments-deploy"))

    valid = await _validate(mesh, issued.access_token, "payments-api")

    assert valid.subject == "spiffe://acme.example/payments-ci/acme-corp/payments-api"
    assert valid.token_id == issued.token_id
    assert valid.claims["aud"] == "payments-api"


async def test_validate_token_refuses_wrong_audience_and_foreign_tokens(
    mesh: dict[str, Any],
) -> None:
    issued = await exchange(mesh, job_token(mesh, "github-payments-deploy"))

    with pytest.raises(grpc.aio.AioRpcError) as wrong_audience:
        await _validate(mesh, issued.access_token, "search-api")
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await _validate(mesh, job_token(mesh, "github-payments-deploy"))

    assert refusal(wrong_audience.value) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "AUDIENCE_MISMATCH",
        "invalid_token",
    )
    assert refusal(foreign.value)[1] in {"UNKNOWN_KEY_ID", "ISSUER_MISMATCH"}


def test_http_explain_names_the_failed_check_and_issues_nothing(
    mesh: dict[str, Any],
) -> None:
    issued_before = len(audit_records(mesh, "its", "token.issued"))
    status, headers, body = _post_form(
        mesh,
        [
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", job_token(mesh, "github-untrusted-branch")),
            ("subject_token_type", TYPE_JWT),
            ("audience", "payments-api"),
        ],
        path="/token/explain",
    )

    outcomes = {check["name"]: check["outcome"] for check in body["checks"]}
    assert (status, headers["Cache-Control"]) == (200, "no-store")
    assert body["would_issue"] is False
    assert (body["error"], body["reason"]) == (
        "invalid_grant",
        "ATTRIBUTE_CONDITION_FAILED",
    )
    assert outcomes["signature"] == "passed"
    assert outcomes["condition"] == "failed"
    assert "access_token" not in body
    assert len(audit_records(mesh, "its", "token.issued")) == issued_before


async def test_validations_and_configuration_changes_are_audited(
    mesh: dict[str, Any],
) -> None:
    issued = await exchange(mesh, job_token(mesh, "github-payments-deploy"))

    await _validate(mesh, issued.access_token, "payments-api")
    with pytest.raises(grpc.aio.AioRpcError):
        await _validate(mesh, issued.access_token, "search-api")
    await asyncio.sleep(0.2)  # validations are written with the next batch

    records = audit_records(mesh, "sts")
    validated = [r for r in records if r["event"] == "token.validated"]
    assert {"ok", "refused"} <= {r["outcome"] for r in validated}
    assert any(r.get("token_id") == issued.token_id for r in validated)
    assert any(r["event"] == "config.changed" for r in records)
