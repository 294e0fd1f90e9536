"""The ITS's HTTP surface: JWKS and OpenID discovery for relying parties."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from wif.keyring import SIGNING_ALGORITHMS
from wif.telemetry import http_tracing

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"

#: How long relying parties may cache the JWKS and discovery document, unless
#: the ITS is told otherwise; new keys are published at least this long ahead.
CACHE_SECONDS = 300


def discovery_document(issuer: str) -> dict[str, Any]:
    """The OpenID provider metadata that lets standard libraries trust the issuer."""
    return {
        "issuer": issuer,
        "jwks_uri": issuer + JWKS_PATH,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "scope",
            "act",
            "workload_type",
            "environment_tier",
            "security_clearance",
        ],
    }


def _cached_json(
    request: web.Request, body: dict[str, Any], max_age: int
) -> web.Response:
    data = json.dumps(body, sort_keys=True).encode()
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": etag}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, content_type="application/json", headers=headers)


def build_app(
    jwks: Callable[[], dict[str, Any]],
    issuer: Callable[[], str | None],
    cache_seconds: float = CACHE_SECONDS,
) -> web.Application:
    """The aiohttp application; ``jwks`` and ``issuer`` read the current state."""
    max_age = int(cache_seconds)

    async def get_jwks(request: web.Request) -> web.Response:
        return _cached_json(request, jwks(), max_age)

    async def get_discovery(request: web.Request) -> web.Response:
        current = issuer()
        if current is None:
            return web.json_response({"error": "temporarily_unavailable"}, status=503)
        return _cached_json(request, discovery_document(current), max_age)

    app = web.Application(client_max_size=16 * 1024, middlewares=[http_tracing])
    app.router.add_get(JWKS_PATH, get_jwks)
    app.router.add_get(DISCOVERY_PATH, get_discovery)
    return app
