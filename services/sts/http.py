"""The RFC 8693 token endpoint over HTTP, for ordinary OAuth client libraries.

``POST /token`` takes ``application/x-www-form-urlencoded`` parameters
(RFC 8693 section 2.1) and answers JSON (section 2.2), with RFC 6749
section 5.2 error bodies and ``Cache-Control: no-store`` on every answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web

from services.sts.exchange import (
    GRANT_TYPE,
    ExchangeRequest,
    ExchangeResult,
    TokenExchanger,
)
from wif.errors import InternalError, InvalidRequest, WifError

log = logging.getLogger(__name__)

TOKEN_PATH = "/token"
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
    """An RFC 6749 section 5.2 error body."""
    body = {"error": error.oauth_error, "error_description": error.message}
    return web.json_response(body, status=error.http_status, headers=_NO_STORE)


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
    )


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


def build_app(exchanger: TokenExchanger) -> web.Application:
    """The aiohttp application serving the token endpoint."""

    async def token(request: web.Request) -> web.Response:
        try:
            form = await _read_form(request)
            source = request.remote or ""
            result = await exchanger.exchange(exchange_request(form, source))
        except WifError as error:
            return error_response(error)
        return _success(result)

    app = web.Application(client_max_size=MAX_FORM_BYTES, middlewares=[json_errors])
    app.router.add_post(TOKEN_PATH, token)
    return app
