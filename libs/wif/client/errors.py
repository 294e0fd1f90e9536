"""Errors of the client library; a refused token is :class:`wif.errors.InvalidToken`."""

from __future__ import annotations


class ClientError(Exception):
    """Root of the errors the client library raises about the mesh's answers."""


class ExchangeFailed(ClientError):
    """The STS did not issue a token.

    ``error`` is the OAuth error code (RFC 6749 section 5.2, RFC 8693
    section 2.2.2), or ``temporarily_unavailable`` when the STS could not be
    reached; ``reason`` is the mesh's UPPER_SNAKE reason when it gave one.
    """

    def __init__(self, message: str, *, error: str, reason: str = "") -> None:
        super().__init__(message)
        self.error = error
        self.reason = reason


class JwksUnavailable(ClientError):
    """The ITS's key set could not be fetched and no usable copy is cached."""
