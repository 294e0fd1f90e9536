"""Who may call ``/introspect`` (RFC 7662) and ``/revoke`` (RFC 7009).

A caller authenticates with a token the mesh itself issued, sent as
``Authorization: Bearer <mesh token>`` (RFC 6750 section 2.1), so no client
secret exists anywhere. The token is checked like any mesh token (by
:class:`~services.sts.validation.MeshTokenValidator`: signature, issuer,
time, revocation), and its audience must be the STS's own audience alone, the
setting ``token_admin_audience`` (``wif-sts`` by default): a token meant
for another service, or for another service as well, is never accepted
here, since that service could present it. A workload gets such a token
by an ordinary exchange for that audience, which the trust configuration
and its policies must allow.

What a caller may do depends on the scopes of its token:

- ``/introspect`` needs :data:`INTROSPECT_SCOPE`.
- ``/revoke`` needs :data:`REVOKE_SCOPE`, except for a token whose subject
  is the caller's own: a workload may always revoke its own tokens.

The setting ``admin_networks`` is an outer filter checked first: a caller
outside those networks is refused whatever it presents, and one inside
them still needs a valid token. Both must pass.

Refusals, in the order they are checked (``WWW-Authenticate`` is a
``Bearer`` challenge whose ``realm`` is the audience):

- outside ``admin_networks``: 403 ``access_denied``, no challenge;
- no ``Authorization`` header, or another scheme: 401 ``invalid_client``,
  a challenge without ``error``;
- malformed Bearer credentials: 401 ``invalid_client``,
  ``error="invalid_request"``;
- not a valid mesh token for the audience (forged, foreign, expired,
  revoked, meant for another audience, or for another audience as well,
  reason ``AUDIENCE_NOT_EXCLUSIVE``): 401 ``invalid_client``,
  ``error="invalid_token"``;
- a valid token without the scope needed: 403 ``insufficient_scope``,
  ``error="insufficient_scope"`` and the ``scope`` needed.

401 with ``invalid_client`` is RFC 6749 section 5.2's answer to a client
that authenticated through the ``Authorization`` header and failed; the
challenge's ``error`` follows RFC 6750 section 3.1, which leaves it out
when no Bearer credentials were sent at all. The missing scope gets 403
with RFC 6750's ``insufficient_scope`` as the body's error too.

Nothing about the token asked about is read before the caller is known:
an unauthorized caller cannot tell an active token from an inactive one
(RFC 7662 section 4). The one decision that looks at that token, whether
a caller without :data:`REVOKE_SCOPE` is revoking its own, reads the
subject the token's text claims, unverified, which the caller can read
itself: the answer teaches it nothing it did not know.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from services.sts.settings import Networks
from services.sts.validation import MeshTokenValidator
from wif.audit import AuditLog
from wif.errors import InvalidGrant, WifError
from wif.metrics import RPC_CALLS
from wif.tokens import parse_compact

#: The scope a caller's token needs to introspect tokens.
INTROSPECT_SCOPE = "wif.tokens.introspect"
#: The scope a caller's token needs to revoke tokens of another subject.
REVOKE_SCOPE = "wif.tokens.revoke"

# RFC 6750 section 2.1: "Bearer" 1*SP b64token; the scheme is case-insensitive.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*)")


class CallerNotAllowed(WifError):
    """The caller's address is outside the networks allowed to call."""

    oauth_error = "access_denied"
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403
    default_reason = "CALLER_NOT_ALLOWED"


class BearerRefusal(WifError):
    """A refusal answered with an RFC 6750 ``WWW-Authenticate`` challenge."""

    def __init__(
        self, message: str, *, challenge: str, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.challenge = challenge


class InvalidClient(BearerRefusal):
    """The caller sent no usable mesh token (RFC 6749 section 5.2)."""

    oauth_error = "invalid_client"
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401
    default_reason = "MISSING_CREDENTIALS"


class InsufficientScope(BearerRefusal):
    """The caller's token lacks the scope needed (RFC 6750 section 3.1)."""

    oauth_error = "insufficient_scope"
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403
    default_reason = "INSUFFICIENT_SCOPE"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the subject and scopes of its mesh token."""

    subject: str
    token_id: str
    scopes: frozenset[str]


def challenge(realm: str, error: str = "", scope: str = "") -> str:
    """The ``WWW-Authenticate`` value of RFC 6750 section 3."""
    parts = [f'realm="{realm}"']
    if error:
        parts.append(f'error="{error}"')
    if scope:
        parts.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(parts)


def check_network(remote: str | None, allowed: Networks) -> None:
    """Raises ``CallerNotAllowed`` unless ``remote`` is in an allowed network."""
    try:
        address = ipaddress.ip_address((remote or "").split("%", 1)[0])
    except ValueError as exc:
        raise CallerNotAllowed("this caller may not use this endpoint") from exc
    if not any(address in network for network in allowed):
        raise CallerNotAllowed("this caller may not use this endpoint")


def bearer_token(authorization: Sequence[str], realm: str) -> str:
    """The token of the one ``Authorization: Bearer`` header.

    Raises ``InvalidClient``: MISSING_CREDENTIALS without the header,
    UNSUPPORTED_AUTH_SCHEME for another scheme, MALFORMED_CREDENTIALS for
    several headers or a value that is not ``Bearer <b64token>``.
    """
    if not authorization:
        raise InvalidClient(
            "authenticate with a mesh token: Authorization: Bearer <token>",
            challenge=challenge(realm),
        )
    malformed = InvalidClient(
        "the Authorization header must be one Bearer token",
        reason="MALFORMED_CREDENTIALS",
        challenge=challenge(realm, "invalid_request"),
    )
    if len(authorization) > 1:
        raise malformed
    value = authorization[0]
    if value.partition(" ")[0].lower() != "bearer":
        raise InvalidClient(
            "only Bearer mesh tokens authenticate callers here",
            reason="UNSUPPORTED_AUTH_SCHEME",
            challenge=challenge(realm),
        )
    match = _BEARER.fullmatch(value)
    if match is None:
        raise malformed
    return match.group(1)


def scopes_of(claims: dict[str, Any]) -> frozenset[str]:
    """The scopes of a token's space-separated ``scope`` claim."""
    scope = claims.get("scope")
    return frozenset(scope.split()) if isinstance(scope, str) else frozenset()


def only_for(claims: dict[str, Any], audience: str) -> bool:
    """True when the token's ``aud`` names ``audience`` and nothing else."""
    aud = claims.get("aud")
    return aud == audience or aud == [audience]


def claimed_subject(token: str) -> str:
    """The ``sub`` the token's text claims, unverified; empty if it has none."""
    try:
        subject = parse_compact(token).claims.get("sub")
    except InvalidGrant:
        return ""
    return subject if isinstance(subject, str) else ""


class ClientAuthenticator:
    """Authenticates and authorizes the callers of /introspect and /revoke,
    and audits and counts every refusal."""

    def __init__(
        self,
        validator: MeshTokenValidator,
        audience: str,
        networks: Networks,
        audit: AuditLog,
    ) -> None:
        self._validator = validator
        self._audience = audience
        self._networks = networks
        self._audit = audit

    def authenticate(self, remote: str | None, authorization: Sequence[str]) -> Caller:
        """The caller at ``remote`` presenting the ``Authorization`` values.

        Raises ``CallerNotAllowed`` outside ``admin_networks``, then
        ``InvalidClient`` without a valid mesh token for the audience; the
        reason of the latter names the check the token failed.
        """
        check_network(remote, self._networks)

        token = bearer_token(authorization, self._audience)

        try:
            valid = self._validator.validate(token, self._audience)
        except InvalidGrant as error:
            raise InvalidClient(
                f"the caller's token is not accepted: {error.message}",
                reason=error.reason,
                challenge=challenge(self._audience, "invalid_token"),
            ) from error
        if not only_for(valid.claims, self._audience):
            # A token for several audiences reaches the other services too,
            # and any of them could present it here as the caller.
            raise InvalidClient(
                f"the caller's token must be for {self._audience} alone",
                reason="AUDIENCE_NOT_EXCLUSIVE",
                challenge=challenge(self._audience, "invalid_token"),
            )
        return Caller(valid.subject, valid.token_id, scopes_of(valid.claims))

    def check_may_introspect(self, caller: Caller) -> None:
        """Raises ``InsufficientScope`` unless ``caller`` may introspect."""
        self._require(caller, INTROSPECT_SCOPE)

    def revocable_subject(self, caller: Caller, token: str) -> str | None:
        """Whose token ``caller`` may revoke with this request (RFC 7009).

        ``None`` (anyone's) with :data:`REVOKE_SCOPE`; without it the
        caller's own subject, when ``token`` claims that subject. Raises
        ``InsufficientScope`` otherwise.
        """
        if REVOKE_SCOPE in caller.scopes:
            return None
        if claimed_subject(token) == caller.subject:
            return caller.subject
        raise self._insufficient(REVOKE_SCOPE)

    def _require(self, caller: Caller, scope: str) -> None:
        if scope not in caller.scopes:
            raise self._insufficient(scope)

    def _insufficient(self, scope: str) -> InsufficientScope:
        return InsufficientScope(
            f"the caller's token lacks the scope {scope}",
            challenge=challenge(self._audience, "insufficient_scope", scope),
        )

    async def refused(
        self,
        event: str,
        endpoint: str,
        error: WifError,
        source_address: str,
        caller: Caller | None,
    ) -> None:
        """Counts a refused call to ``endpoint`` and audits it as ``event``."""
        outcome = error.grpc_code.name.lower()
        RPC_CALLS.add(1, {"rpc": endpoint, "outcome": outcome, "reason": error.reason})
        # A refusal hands nothing out, and refusals are what a flood of
        # unauthenticated calls makes: none waits for the disk.
        self._audit.record_nowait(
            event,
            "refused",
            reason=error.reason,
            error=error.oauth_error,
            source_address=source_address,
            caller=caller.subject if caller else None,
            caller_token_id=caller.token_id if caller else None,
        )

    @staticmethod
    def served(endpoint: str) -> None:
        """Counts one call to ``endpoint`` that was answered."""
        RPC_CALLS.add(1, {"rpc": endpoint, "outcome": "ok", "reason": ""})
