"""The RFC 8693 request and response, and the checks that need no token.

Downscoping rule: the issued audiences are exactly the targets asked for,
each allowed by the policy; the issued scopes are those asked for that a
target offers and the policy grants. A scope asked for beyond that is
refused with ``invalid_scope``, unless the request allows trimming (gRPC
``allow_scope_trimming``, HTTP ``allow_scope_trimming=true``), in which case
it is left out, and the answer's ``scope`` says what was granted. Trimming
never grants anything: when no asked-for scope is left, the request is still
refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.sts.checks import echo
from services.sts.subject import TYPE_ACCESS_TOKEN, TYPE_ID_TOKEN, TYPE_JWT
from wif.errors import InvalidRequest, InvalidScope, InvalidTarget, UnsupportedTokenType
from wif.trust.config import TrustConfig
from wif.trust.model import Audience

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"

#: Token types a subject or actor token may have: all of them are JWTs here.
ACCEPTED_TOKEN_TYPES = (TYPE_JWT, TYPE_ID_TOKEN, TYPE_ACCESS_TOKEN)
#: Token types the STS can issue; the issued token is always a JWT access token.
ISSUABLE_TOKEN_TYPES = (TYPE_JWT, TYPE_ACCESS_TOKEN)

MAX_TARGETS = 8
MAX_SCOPES = 32


@dataclass(frozen=True)
class ExchangeRequest:
    """The RFC 8693 section 2.1 parameters, whichever surface they came from."""

    subject_token: str
    subject_token_type: str
    actor_token: str = ""
    actor_token_type: str = ""
    audience: Sequence[str] = ()
    resource: Sequence[str] = ()
    scope: Sequence[str] = ()
    requested_token_type: str = ""
    source_address: str = ""
    allow_scope_trimming: bool = False


@dataclass(frozen=True)
class ExchangeResult:
    """The RFC 8693 section 2.2.1 response."""

    access_token: str
    issued_token_type: str
    expires_in: int
    scope: tuple[str, ...]
    token_id: str
    token_type: str = "Bearer"


def issued_token_type(requested: str) -> str:
    """The ``issued_token_type``: what was asked for, a JWT by default."""
    return requested or TYPE_JWT


def token_type_for(issued_type: str) -> str:
    """RFC 8693 section 2.2.1 ``token_type``: ``Bearer`` for a token usable as
    an access token (every JWT the mesh issues is one), ``N_A`` otherwise."""
    return "Bearer" if issued_type in ISSUABLE_TOKEN_TYPES else "N_A"


def check_request(request: ExchangeRequest) -> None:
    """RFC 8693 section 2.1: required parameters and their combinations."""
    if not request.subject_token:
        raise InvalidRequest(
            "subject_token is required", reason="MISSING_SUBJECT_TOKEN"
        )
    if not request.subject_token_type:
        raise InvalidRequest(
            "subject_token_type is required", reason="MISSING_TOKEN_TYPE"
        )
    if request.subject_token_type not in ACCEPTED_TOKEN_TYPES:
        raise UnsupportedTokenType("subject_token_type is not supported")
    if bool(request.actor_token) != bool(request.actor_token_type):
        raise InvalidRequest(
            "actor_token and actor_token_type go together", reason="ACTOR_TOKEN_TYPE"
        )
    if request.actor_token and request.actor_token_type not in ACCEPTED_TOKEN_TYPES:
        raise UnsupportedTokenType("actor_token_type is not supported")
    if request.requested_token_type not in ("", *ISSUABLE_TOKEN_TYPES):
        raise InvalidRequest(
            "requested_token_type is not one this server issues",
            reason="UNSUPPORTED_REQUESTED_TYPE",
        )
    if len(request.audience) + len(request.resource) > MAX_TARGETS:
        raise InvalidRequest(
            f"at most {MAX_TARGETS} targets", reason="TOO_MANY_TARGETS"
        )
    if len(request.scope) > MAX_SCOPES:
        raise InvalidRequest(f"at most {MAX_SCOPES} scopes", reason="TOO_MANY_SCOPES")


def resolve_targets(request: ExchangeRequest, config: TrustConfig) -> list[Audience]:
    """The audiences named by ``audience`` and ``resource`` (RFC 8693, RFC 8707)."""
    targets: dict[str, Audience] = {}
    for name in request.audience:
        audience = config.audiences.get(name)
        if audience is None:
            raise InvalidTarget(
                "an audience is not known",
                reason="UNKNOWN_AUDIENCE",
                metadata={"audience": echo(name)},
            )
        targets[audience.id] = audience
    for uri in request.resource:
        audience = config.audience_for_resource(uri)
        if audience is None:
            raise InvalidTarget(
                "a resource is not known",
                reason="UNKNOWN_RESOURCE",
                metadata={"resource": echo(uri)},
            )
        targets[audience.id] = audience
    if not targets:
        raise InvalidRequest(
            "name the target with audience or resource", reason="MISSING_TARGET"
        )
    return list(targets.values())


def _kept(
    asked: Sequence[str], allowed: set[str], trim: bool, reason: str, message: str
) -> tuple[str, ...]:
    refused = [s for s in asked if s not in allowed]
    if refused and not trim:
        raise InvalidScope(message, reason=reason, metadata={"scope": echo(refused[0])})
    kept = tuple(dict.fromkeys(s for s in asked if s in allowed))
    if asked and not kept:
        raise InvalidScope(
            "no scope asked for can be granted", reason="NO_SCOPE_GRANTED"
        )
    return kept


def check_scopes(
    scopes: Sequence[str], targets: Sequence[Audience], *, trim: bool = False
) -> tuple[str, ...]:
    """The scopes asked for that a target offers; any other is refused
    (``SCOPE_NOT_OFFERED``) unless ``trim`` leaves it out."""
    offered = {s for audience in targets for s in audience.scopes}
    return _kept(
        scopes,
        offered,
        trim,
        "SCOPE_NOT_OFFERED",
        "a scope is not offered by the target",
    )


def check_granted(
    scopes: Sequence[str], granted: set[str], *, trim: bool = False
) -> tuple[str, ...]:
    """The scopes the policy granted; any other is refused
    (``SCOPE_NOT_GRANTED``) unless ``trim`` leaves it out."""
    return _kept(
        scopes, granted, trim, "SCOPE_NOT_GRANTED", "the policy does not grant a scope"
    )
