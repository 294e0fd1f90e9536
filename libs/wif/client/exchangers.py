"""How a token source reaches the STS: gRPC, or the RFC 8693 HTTP endpoint.

Both turn a refusal into :class:`ExchangeFailed` carrying the OAuth error
code and the mesh's reason, and an unreachable STS into
``temporarily_unavailable``, so that a token source can tell a refusal it
should report from an outage it should retry.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Final, Protocol

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from wif.client.errors import ExchangeFailed
from wif.v1 import sts_pb2, sts_pb2_grpc

#: RFC 8693 section 3: the subject token is a JWT.
TOKEN_TYPE_JWT: Final = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_EXCHANGE_GRANT: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
UNAVAILABLE: Final = "temporarily_unavailable"
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
_MAX_RESPONSE_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class ExchangeRequest:
    """What to ask the STS for, besides the subject token itself."""

    audience: tuple[str, ...] = ()
    resource: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    subject_token_type: str = TOKEN_TYPE_JWT


@dataclass(frozen=True, repr=False)
class IssuedToken:
    """A mesh token as the STS returned it (RFC 8693 section 2.2.1)."""

    access_token: str
    expires_in: int
    scopes: tuple[str, ...]
    token_id: str = ""

    def __repr__(self) -> str:
        return f"IssuedToken(token_id={self.token_id!r}, expires_in={self.expires_in})"


class Exchanger(Protocol):
    """One call to the STS's token exchange."""

    def exchange(self, subject_token: str, request: ExchangeRequest) -> IssuedToken:
        """Exchange ``subject_token``; raises :class:`ExchangeFailed`."""
        ...


class GrpcExchanger:
    """``SecurityTokenService.ExchangeToken`` over one long-lived channel."""

    def __init__(
        self,
        address: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """``credentials`` gives TLS; without them the channel is plaintext."""
        if credentials is None:
            self._channel = grpc.insecure_channel(address)
        else:
            self._channel = grpc.secure_channel(address, credentials)
        self._stub = sts_pb2_grpc.SecurityTokenServiceStub(self._channel)
        self._timeout = timeout

    def exchange(self, subject_token: str, request: ExchangeRequest) -> IssuedToken:
        """Raises :class:`ExchangeFailed` when the STS refuses or is unreachable."""
        message = sts_pb2.ExchangeTokenRequest(
            subject_token=subject_token,
            subject_token_type=request.subject_token_type,
            audience=list(request.audience),
            resource=list(request.resource),
            scope=list(request.scopes),
        )
        try:
            reply = self._stub.ExchangeToken(message, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _grpc_failure(exc) from exc
        return IssuedToken(
            reply.access_token,
            int(reply.expires_in),
            tuple(reply.scope),
            reply.token_id,
        )

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


class HttpExchanger:
    """The form-encoded token endpoint (RFC 8693 section 2.1), e.g. ``.../token``."""

    def __init__(self, token_url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        """Raises ValueError when ``token_url`` is not an http(s) URL."""
        if urllib.parse.urlsplit(token_url).scheme not in ("http", "https"):
            raise ValueError("token_url must be an http or https URL")
        self._url = token_url
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    def exchange(self, subject_token: str, request: ExchangeRequest) -> IssuedToken:
        """Raises :class:`ExchangeFailed` when the STS refuses or is unreachable."""
        form = [
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("subject_token", subject_token),
            ("subject_token_type", request.subject_token_type),
            *(("audience", value) for value in request.audience),
            *(("resource", value) for value in request.resource),
        ]
        if request.scopes:
            form.append(("scope", " ".join(request.scopes)))
        body = _post(self._opener, self._url, form, self._timeout)

        try:
            return IssuedToken(
                str(body["access_token"]),
                int(body["expires_in"]),
                tuple(str(body.get("scope", "")).split()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ExchangeFailed(
                "the STS answered without a token", error=UNAVAILABLE
            ) from exc


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(
    opener: urllib.request.OpenerDirector,
    url: str,
    form: list[tuple[str, str]],
    timeout: float,
) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode("ascii")
    # The scheme was checked to be http or https when the exchanger was made.
    request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as response:
            return _json_object(response.read(_MAX_RESPONSE_BYTES))
    except urllib.error.HTTPError as exc:
        body = _json_object(exc.read(_MAX_RESPONSE_BYTES))
        error = str(body.get("error") or UNAVAILABLE)
        message = str(body.get("error_description") or f"HTTP {exc.code}")
        raise ExchangeFailed(message, error=error) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ExchangeFailed("the STS is unreachable", error=UNAVAILABLE) from exc


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _grpc_failure(exc: grpc.RpcError) -> ExchangeFailed:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ExchangeFailed("the STS is unreachable", error=UNAVAILABLE)

    info = _error_info(exc)
    message = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    if info is None:
        return ExchangeFailed(message or "the STS failed", error="server_error")
    error = info.metadata.get("oauthError", "server_error")
    return ExchangeFailed(message, error=error, reason=info.reason)


def _error_info(exc: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    if not isinstance(exc, grpc.Call):
        return None
    status = rpc_status.from_call(exc)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None
