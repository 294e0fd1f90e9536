"""The STS over HTTP, for ordinary OAuth client libraries and relying parties.

Every endpoint takes ``application/x-www-form-urlencoded`` parameters and
answers JSON with ``Cache-Control: no-store``; errors are RFC 6749 section
5.2 bodies.

- ``POST /token``: token exchange (RFC 8693 section 2). The extension
  parameter ``allow_scope_trimming=true`` lets the exchange leave out scopes
  it cannot grant instead of refusing (see :mod:`services.sts.request`).
- ``POST /introspect``: introspection of mesh tokens (RFC 7662), parameter
  ``token``.
- ``POST /revoke``: revocation of mesh tokens (RFC 7009), parameter
  ``token``; ``token_type_hint`` is accepted and ignored.

Every endpoint is rate limited per caller (remote address) when the STS's
rate limit is on: a refused request gets 429 with the RFC 6749 error
``temporarily_unavailable`` (the server is overloaded by this caller; retry
later, which ``slow_down`` of RFC 8628 would only say to device-flow clients)
and a ``Retry-After`` header in seconds.

Callers of ``/introspect`` and ``/revoke`` authenticate with a mesh token
of their own for the STS's audience, sent as ``Authorization: Bearer``, and
need a scope for what they ask; the setting ``admin_networks`` (loopback by
default) is an outer filter before that. :mod:`services.sts.client_auth`
has the rules and the refusals, each of which is audited and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestPayloadError

from services.sts.admission import Admission
from services.sts.client_auth import BearerRefusal, Caller, ClientAuthenticator
from services.sts.exchange import (
    GRANT_TYPE,
    ExchangeRequest,
    ExchangeResult,
    Explanation,
    TokenExchanger,
)
from services.sts.revocation import TokenAdministration
from wif.errors import InternalError, InvalidRequest, WifError
from wif.ratelimit import RateLimited
from wif.telemetry import http_tracing

log = logging.getLogger(__name__)

TOKEN_PATH = "/token"
INTROSPECT_PATH = "/introspect"
REVOKE_PATH = "/revoke"
#: The same form as TOKEN_PATH; answers each check's outcome, issues nothing.
EXPLAIN_PATH = "/token/explain"
MAX_FORM_BYTES = 64 * 1024
#: Seconds a client has to send the whole body once its headers arrived.
BODY_TIMEOUT_SECONDS = 5.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REPEATABLE = frozenset({"audience", "resource"})
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class UnsupportedGrantType(InvalidRequest):
    """The grant_type is not token exchange (RFC 6749 section 5.2)."""

    oauth_error = "unsupported_grant_type"
    default_reason = "UNSUPPORTED_GRANT_TYPE"


def error_response(error: WifError) -> web.Response:
    """An RFC 6749 section 5.2 error body, with ``Retry-After`` when limited
    and ``WWW-Authenticate`` when the caller must authenticate (RFC 6750)."""
    body = {"error": error.oauth_error, "error_description": error.message}
    headers = dict(_NO_STORE)
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if isinstance(error, BearerRefusal):
        headers["WWW-Authenticate"] = error.challenge
    return web.json_response(body, status=error.http_status, headers=headers)


def parse_form(body: bytes) -> dict[str, list[str]]:
    """Decodes the form strictly: UTF-8, and no parameter repeated but targets."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            errors="strict",
            max_num_fields=64,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(
            "the form body cannot be decoded", reason="MALFORMED_FORM"
        ) from exc
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        if not value:
            continue  # RFC 6749 section 3.2: a parameter without a value is omitted
        form.setdefault(name, []).append(value)
        if len(form[name]) > 1 and name not in _REPEATABLE:
            raise InvalidRequest(
                f"parameter {name!r} is repeated", reason="REPEATED_PARAMETER"
            )
    return form


def exchange_request(form: dict[str, list[str]], source: str) -> ExchangeRequest:
    """Maps form parameters onto an :class:`ExchangeRequest`."""

    def one(name: str) -> str:
        return form.get(name, [""])[0]

    if one("grant_type") != GRANT_TYPE:
        raise UnsupportedGrantType("grant_type must be token exchange")
    return ExchangeRequest(
        subject_token=one("subject_token"),
        subject_token_type=one("subject_token_type"),
        actor_token=one("actor_token"),
        actor_token_type=one("actor_token_type"),
        audience=form.get("audience", []),
        resource=form.get("resource", []),
        scope=list(dict.fromkeys(s for s in one("scope").split(" ") if s)),
        requested_token_type=one("requested_token_type"),
        source_address=source,
        allow_scope_trimming=_flag(one("allow_scope_trimming")),
    )


def _flag(value: str) -> bool:
    if value not in ("", "true", "false"):
        raise InvalidRequest(
            "allow_scope_trimming must be true or false", reason="INVALID_PARAMETER"
        )
    return value == "true"


def _token_parameter(form: dict[str, list[str]]) -> str:
    token = form.get("token", [""])[0]
    if not token:
        raise InvalidRequest("token is required", reason="MISSING_TOKEN")
    return token


async def _read_form(request: web.Request) -> dict[str, list[str]]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be form-encoded", reason="CONTENT_TYPE")
    if (request.charset or "utf-8").lower() != "utf-8":
        raise InvalidRequest("the body must be UTF-8", reason="CONTENT_TYPE")
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            body = await request.read()
    except TimeoutError as exc:
        raise InvalidRequest("the body arrived too slowly", reason="SLOW_BODY") from exc
    except web.HTTPRequestEntityTooLarge as exc:
        raise InvalidRequest("the body is too large", reason="BODY_TOO_LARGE") from exc
    except RequestPayloadError as exc:
        # A body that does not decode as its Content-Encoding says, or a
        # chunked body that breaks off: the client's fault, not the server's.
        raise InvalidRequest(
            "the body cannot be decoded", reason="MALFORMED_BODY"
        ) from exc
    return parse_form(body)


def _success(result: ExchangeResult) -> web.Response:
    body: dict[str, object] = {
        "access_token": result.access_token,
        "issued_token_type": result.issued_token_type,
        "token_type": result.token_type,
        "expires_in": result.expires_in,
    }
    if result.scope:
        body["scope"] = " ".join(result.scope)
    return web.json_response(body, headers=_NO_STORE)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers every failure as an RFC 6749 JSON error, never a bare page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        body = {"error": "invalid_request", "error_description": exc.reason}
        return web.json_response(body, status=exc.status, headers=_NO_STORE)
    except Exception:
        log.exception("the token endpoint failed")
        return error_response(InternalError("internal error", reason="INTERNAL"))


def rate_limit(admission: Admission) -> Middleware:
    """A middleware refusing callers over their rate with 429."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            await admission.admit(request.remote or "", "http", request.path)
        except RateLimited as refused:
            return error_response(refused)
        return await handler(request)

    return middleware


def explanation_body(explanation: Explanation) -> dict[str, object]:
    """The JSON answer of the explain endpoint: every check and the verdict."""
    refusal = explanation.refusal
    return {
        "would_issue": refusal is None,
        "error": refusal.oauth_error if refusal else None,
        "reason": refusal.reason if refusal else None,
        "subject": explanation.subject or None,
        "audience": list(explanation.audiences),
        "scope": " ".join(explanation.scopes),
        "checks": [
            {
                "name": check.name,
                "outcome": check.outcome.value,
                "reason": check.reason,
                "detail": check.detail,
            }
            for check in explanation.checks
        ],
    }


def _add_token_administration(
    app: web.Application, admin: TokenAdministration, clients: ClientAuthenticator
) -> None:
    """Routes /introspect and /revoke, each behind client authentication."""

    async def authenticated(
        request: web.Request, event: str, answer: Callable[[Caller], Awaitable[Any]]
    ) -> web.Response:
        endpoint = f"{request.method} {request.path}"
        caller = None
        try:
            # The caller is known before anything of the request is read.
            caller = clients.authenticate(
                request.remote, request.headers.getall(hdrs.AUTHORIZATION, [])
            )
            body = await answer(caller)
        except WifError as error:
            source = request.remote or ""
            await clients.refused(event, endpoint, error, source, caller)
            return error_response(error)
        clients.served(endpoint)
        return web.json_response(body, headers=_NO_STORE)

    async def introspect(request: web.Request) -> web.Response:
        async def answer(caller: Caller) -> dict[str, Any]:
            clients.check_may_introspect(caller)
            token = _token_parameter(await _read_form(request))
            return await admin.introspect(token, caller.subject)

        return await authenticated(request, "token.introspect", answer)

    async def revoke(request: web.Request) -> web.Response:
        async def answer(caller: Caller) -> dict[str, Any]:
            token = _token_parameter(await _read_form(request))
            owner = clients.revocable_subject(caller, token)
            await admin.revoke(token, caller.subject, owner)
            return {}

        return await authenticated(request, "token.revoke", answer)

    app.router.add_post(INTROSPECT_PATH, introspect)
    app.router.add_post(REVOKE_PATH, revoke)


def build_app(
    exchanger: TokenExchanger,
    admin: TokenAdministration | None = None,
    clients: ClientAuthenticator | None = None,
    admission: Admission | None = None,
) -> web.Application:
    """The aiohttp application serving the token, introspection and
    revocation endpoints (the latter two only given ``admin``, whose callers
    ``clients`` authenticates), rate limited per caller given ``admission``.

    Raises ``ValueError`` given ``admin`` without ``clients``.
    """

    async def token(request: web.Request) -> web.Response:
        try:
            form = await _read_form(request)
            source = request.remote or ""
            result = await exchanger.exchange(exchange_request(form, source))
        except WifError as error:
            return error_response(error)
        return _success(result)

    async def explain(request: web.Request) -> web.Response:
        try:
            form = await _read_form(request)
            explanation = await exchanger.explain(
                exchange_request(form, request.remote or "")
            )
        except WifError as error:
            return error_response(error)
        return web.json_response(explanation_body(explanation), headers=_NO_STORE)

    middlewares: list[Middleware] = [http_tracing, json_errors]
    if admission is not None:
        middlewares.append(rate_limit(admission))
    app = web.Application(client_max_size=MAX_FORM_BYTES, middlewares=middlewares)
    app.router.add_post(TOKEN_PATH, token)
    app.router.add_post(EXPLAIN_PATH, explain)
    if admin is not None:
        if clients is None:
            raise ValueError("introspection and revocation need client authentication")
        _add_token_administration(app, admin, clients)
    return app
