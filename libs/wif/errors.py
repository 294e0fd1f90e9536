"""The mesh's error hierarchy.

Every failure a caller can see is a :class:`WifError`. Each class carries the
OAuth error code (RFC 6749 section 5.2, RFC 8693 section 2.2.2) that the HTTP
surface returns and the gRPC status code the gRPC surface returns; each
instance carries an UPPER_SNAKE ``reason`` that names the exact check that
failed. The translation into a gRPC status happens in one place,
:mod:`wif.grpc_errors`.
"""

from __future__ import annotations

from typing import ClassVar

import grpc

#: The ``domain`` of every ``google.rpc.ErrorInfo`` the mesh returns.
ERROR_DOMAIN = "wif.mesh"


class WifError(Exception):
    """Root of every error the mesh reports to a caller.

    ``message`` is safe to show the caller: it never holds a token, a key or
    another tenant's configuration. ``metadata`` holds short lowerCamel facts
    (a claim name, a key id) that help the caller fix the request.
    """

    oauth_error: ClassVar[str] = "server_error"
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    http_status: ClassVar[int] = 500
    default_reason: ClassVar[str] = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})


class InvalidRequest(WifError):
    """A parameter is missing, repeated, malformed or unsupported."""

    oauth_error = "invalid_request"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400
    default_reason = "INVALID_REQUEST"


class InvalidGrant(WifError):
    """The subject or actor token is invalid, expired or not trusted."""

    oauth_error = "invalid_grant"
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 400
    default_reason = "INVALID_TOKEN"


class InvalidToken(InvalidGrant):
    """A token presented for validation failed a check (RFC 6750 naming)."""

    oauth_error = "invalid_token"
    http_status = 401


class UnsupportedTokenType(WifError):
    """The token type is one the mesh does not accept here (RFC 8693)."""

    oauth_error = "unsupported_token_type"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400
    default_reason = "UNSUPPORTED_TOKEN_TYPE"


class InvalidTarget(WifError):
    """The audience or resource is unknown or not allowed (RFC 8707)."""

    oauth_error = "invalid_target"
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 400
    default_reason = "INVALID_TARGET"


class InvalidScope(WifError):
    """A scope asked for is unknown or wider than what is granted."""

    oauth_error = "invalid_scope"
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 400
    default_reason = "INVALID_SCOPE"


class AccessDenied(InvalidTarget):
    """The policy refused the request for a target (RFC 8693 invalid_target)."""

    default_reason = "POLICY_DENIED"


class TemporarilyUnavailable(WifError):
    """A dependency (etcd, a peer service, a foreign issuer) cannot answer."""

    oauth_error = "temporarily_unavailable"
    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503
    default_reason = "DEPENDENCY_UNAVAILABLE"


class ConfigError(WifError):
    """A trust configuration document failed validation."""

    oauth_error = "invalid_request"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 400
    default_reason = "INVALID_CONFIGURATION"


class NotFound(WifError):
    """An administrative call names something that does not exist."""

    oauth_error = "invalid_request"
    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404
    default_reason = "NOT_FOUND"


class CallerNotAllowed(WifError):
    """The caller's mesh identity (its certificate's SPIFFE ID) may not call the RPC.

    RFC 6749 section 5.2 ``unauthorized_client``: the client is known but not
    authorised for what it asks.
    """

    oauth_error = "unauthorized_client"
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403
    default_reason = "CALLER_NOT_ALLOWED"


class InternalError(WifError):
    """A fault inside the mesh; the caller sees no detail."""
