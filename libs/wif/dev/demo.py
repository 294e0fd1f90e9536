"""The end-to-end demo behind ``make demo``: a real exchange and real refusals.

It starts the local mesh with the OpenID provider, takes a CI job token from
that provider, exchanges it over gRPC and over the HTTP token endpoint,
checks the issued token with an independent verifier (the npm ``jose``
package) against the ITS's published JWKS, shows two refusals with their
reasons, and stops everything it started, also when interrupted.
"""

from __future__ import annotations

import asyncio
import json
import signal
import textwrap
import urllib.parse
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

import grpc

from wif.dev.mesh import dev_channel, repo_root, start_mesh, stop_mesh
from wif.dev.oidc import fetch_job_token, job_credentials, verify_with_node_jose
from wif.grpc_errors import error_info
from wif.tokens import parse_compact
from wif.v1 import its_pb2, its_pb2_grpc, sts_pb2, sts_pb2_grpc

MESH_AUDIENCE = "https://wif.acme.example"
TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
JOB_CLAIMS = ("sub", "repository", "ref", "workflow", "aud", "jti")
ISSUED_CLAIMS = ("iss", "sub", "aud", "scope", "workload_type", "repository")


def say(step: str, text: str = "") -> None:
    """Prints one step of the demo in plain words."""
    print(f"\n== {step}")
    if text:
        print(textwrap.indent(text.strip(), "   "))


def _job_token(issuer: str, job: str) -> str:
    client_id, secret = job_credentials(repo_root(), job)
    return fetch_job_token(issuer, client_id, secret, MESH_AUDIENCE)


def _claims_summary(token: str, names: tuple[str, ...]) -> str:
    claims = parse_compact(token).claims
    return "\n".join(f"{name}: {claims.get(name)}" for name in names)


async def _exchange(
    endpoints: dict[str, Any], token: str, audience: str, scopes: list[str]
) -> Any:
    async with dev_channel(endpoints, "sts", identity=None) as channel:
        stub = sts_pb2_grpc.SecurityTokenServiceStub(channel)
        request = sts_pb2.ExchangeTokenRequest(
            subject_token=token,
            subject_token_type=TYPE_JWT,
            audience=[audience],
            scope=scopes,
        )
        return await stub.ExchangeToken(request, timeout=10)


async def _validate(endpoints: dict[str, Any], token: str, audience: str) -> Any:
    async with dev_channel(endpoints, "sts", identity=None) as channel:
        stub = sts_pb2_grpc.SecurityTokenServiceStub(channel)
        request = sts_pb2.ValidateTokenRequest(token=token, audience=audience)
        return await stub.ValidateToken(request, timeout=10)


def _describe(exc: grpc.aio.AioRpcError) -> str:
    info = error_info(exc)
    reason = info.reason if info else "?"
    oauth = info.metadata.get("oauthError", "?") if info else "?"
    return f"refused: {exc.code().name}, {oauth} ({reason}): {exc.details()}"


def _refusal(endpoints: dict[str, Any], token: str, audience: str) -> str:
    try:
        asyncio.run(_exchange(endpoints, token, audience, []))
    except grpc.aio.AioRpcError as exc:
        return _describe(exc)
    return "NOT refused (unexpected)"


async def _sign_as_operator(endpoints: dict[str, Any], trust_domain: str) -> str:
    """Asks the ITS to sign directly, with a certificate that is not the STS's."""
    async with dev_channel(endpoints, "its", identity="operator") as channel:
        stub = its_pb2_grpc.IdentityTokenServiceStub(channel)
        request = its_pb2.IssueTokenRequest(
            subject=f"spiffe://{trust_domain}/payments-ci/forged",
            audiences=["ledger-admin"],
            lifetime_seconds=3600,
        )
        try:
            await stub.IssueToken(request, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return _describe(exc)
    return "NOT refused (unexpected)"


def _http_exchange(url: str, token: str) -> dict[str, Any]:
    form = urllib.parse.urlencode(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": token,
            "subject_token_type": TYPE_JWT,
            "resource": "https://payments.acme.example",
            "scope": "payments.read",
        }
    ).encode()
    request = urllib.request.Request(url + "/token", data=form, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        result: dict[str, Any] = json.loads(response.read())
    return result


def show(*lines: str) -> None:
    """Prints the details of a step, indented under it."""
    for line in lines:
        print(textwrap.indent(line, "   "))


def _steps(endpoints: dict[str, Any]) -> None:
    issuer = endpoints["oidc"]["issuer"]

    say("1. A CI job asks its platform's OpenID provider for a job token")
    job_token = _job_token(issuer, "github-payments-deploy")
    show(f"provider: {issuer}", _claims_summary(job_token, JOB_CLAIMS))

    say("2. The job exchanges it at the STS over gRPC for the payments API")
    result = asyncio.run(
        _exchange(endpoints, job_token, "payments-api", ["payments.read"])
    )
    show(
        f"issued token id {result.token_id}, expires in {result.expires_in} s",
        _claims_summary(result.access_token, ISSUED_CLAIMS),
    )

    say("3. An independent verifier (npm jose) checks it against the ITS's JWKS")
    jwks_url = endpoints["its"]["http"] + "/.well-known/jwks.json"
    verified = verify_with_node_jose(
        repo_root(), result.access_token, jwks_url, endpoints["issuer"], "payments-api"
    )
    show(f"verified: sub={verified['sub']} aud={verified['aud']}")

    say("4. The payments API asks the STS to validate the token (ValidateToken)")
    valid = asyncio.run(_validate(endpoints, result.access_token, "payments-api"))
    show(f"valid: subject {valid.subject}, token id {valid.token_id}")

    say("5. The same exchange through the standard HTTP token endpoint (RFC 8693)")
    body = _http_exchange(
        endpoints["sts"]["http"], _job_token(issuer, "github-payments-deploy")
    )
    show(
        f"{body['token_type']} token of type {body['issued_token_type']}",
        f"expires_in {body['expires_in']}, scope {body.get('scope')}",
    )

    say("6. Refused: a job on an unprotected branch fails the provider's condition")
    untrusted = _job_token(issuer, "github-untrusted-branch")
    show(_refusal(endpoints, untrusted, "payments-api"))

    say("7. Refused: the trusted job asks for an audience no policy grants it")
    show(_refusal(endpoints, job_token, "ledger-admin"))

    say("8. Refused: a caller that is not the STS asks the ITS to sign (mTLS)")
    show(asyncio.run(_sign_as_operator(endpoints, "acme.example")))


def run_demo(state: Path) -> int:
    """Runs the demo; returns the exit code. Stops the mesh in every case."""

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        say("0. Starting etcd, the ITS, Policy and STS (mTLS), and an OIDC provider")
        endpoints = start_mesh(state, with_oidc=True, tls=True)
        print(f"   endpoints written to {state / 'endpoints.json'}")
        _steps(endpoints)
        say(
            "Done: a real exchange, checked independently, and three explained refusals"
        )
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted")
        return 130
    finally:
        stopped = stop_mesh(state)
        say("Stopped everything the demo started", ", ".join(stopped))
