"""The trust configuration: pools, providers, audiences, workloads, policies.

Each kind of document is a frozen dataclass built by a ``parse_*`` function
that validates every field and raises ``ConfigError`` naming the first bad
one. :mod:`wif.trust.config` assembles them into one checked whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from wif.errors import ConfigError
from wif.trust.expressions import Expression, compile_expression
from wif.trust.fields import Fields

#: Names of pools, providers, audiences and policies.
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")

#: Algorithms a provider may accept; HMAC and ``none`` never are.
PROVIDER_ALGORITHMS = ("ES256", "ES384", "RS256", "RS384", "RS512")

#: The hard upper bound on a provider's clock skew.
MAX_CLOCK_SKEW_SECONDS = 300

#: Issued token lifetimes, in seconds: one to three hours by policy.
MIN_LIFETIME_SECONDS = 3600
MAX_LIFETIME_SECONDS = 10800

#: Claims the ITS sets itself, which a mapping may not produce.
RESERVED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "act", "cnf", "may_act"}
)

_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def check_id(value: str, where: str) -> str:
    """Returns ``value`` if it is a valid document id."""
    if not ID_PATTERN.fullmatch(value):
        raise ConfigError(
            f"{where}: {value!r} must be lower-case letters, digits, '.', '-' "
            "or '_', starting with a letter or digit, at most 63 characters"
        )
    return value


@dataclass(frozen=True)
class Pool:
    """A group of providers; pools nest (organisation, unit, team)."""

    id: str
    parent: str | None = None
    description: str = ""


@dataclass(frozen=True)
class JwksSource:
    """Where a provider's verification keys come from: exactly one source."""

    discovery: bool = True
    uri: str | None = None
    keys: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class AttributeMapping:
    """CEL expressions that turn a foreign token's claims into a principal."""

    subject: Expression
    attributes: Mapping[str, Expression] = field(default_factory=dict)


@dataclass(frozen=True)
class Provider:
    """A trusted external identity provider inside a pool."""

    id: str
    pool: str
    issuer: str
    jwks: JwksSource
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    condition: Expression | None
    mapping: AttributeMapping
    max_token_age_seconds: int = 3600
    clock_skew_seconds: int = 30
    bound_to_subject_expiry: bool = False
    #: Each subject token (by ``jti``) may be exchanged once, mesh-wide.
    one_time_use: bool = False


@dataclass(frozen=True)
class Audience:
    """A service tokens may be exchanged for, with its scopes and lifetime."""

    id: str
    parent: str | None = None
    resources: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    max_lifetime_seconds: int = MIN_LIFETIME_SECONDS


@dataclass(frozen=True)
class Workload:
    """A registered workload: a SPIFFE path in a pool, with attributes."""

    path: str
    pool: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyDocument:
    """Cedar policy text under an id that decisions report."""

    id: str
    cedar: str
    description: str = ""


def _check_url(url: str, where: str, *, allow_http_loopback: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    loopback = parts.hostname in _LOOPBACK_HOSTS
    if parts.scheme == "http" and loopback and allow_http_loopback:
        return url
    raise ConfigError(f"{where}: must be an https URL (http only on loopback)")


def parse_pool(doc: Any, where: str) -> Pool:
    """Builds a :class:`Pool` from its document."""
    fields = Fields(doc, where)
    pool = Pool(
        id=check_id(fields.string("id"), fields.path("id")),
        parent=fields.optional_string("parent"),
        description=fields.raw("description") or "",
    )
    fields.done()
    return pool


def _parse_jwks(doc: Mapping[str, Any], where: str, loopback: bool) -> JwksSource:
    fields = Fields(doc, where)
    uri = fields.optional_string("uri")
    keys = fields.raw("keys")
    discovery = fields.boolean("discovery", default=uri is None and keys is None)
    fields.done()
    if sum((discovery, uri is not None, keys is not None)) != 1:
        raise ConfigError(f"{where}: give exactly one of discovery, uri or keys")
    if uri is not None:
        _check_url(uri, f"{where}.uri", allow_http_loopback=loopback)
    if keys is not None and not (
        isinstance(keys, list) and keys and all(isinstance(k, Mapping) for k in keys)
    ):
        raise ConfigError(f"{where}.keys: must be a non-empty list of JWKs")
    return JwksSource(discovery=discovery, uri=uri, keys=tuple(keys or ()))


def _parse_mapping(doc: Mapping[str, Any], where: str) -> AttributeMapping:
    fields = Fields(doc, where)
    subject = compile_expression(fields.string("subject"), fields.path("subject"))
    attributes = {}
    for name, source in fields.mapping("attributes").items():
        check_id(str(name), f"{where}.attributes")
        if name in RESERVED_CLAIMS:
            raise ConfigError(f"{where}.attributes.{name}: a claim the ITS sets itself")
        attributes[name] = compile_expression(source, f"{where}.attributes.{name}")
    fields.done()
    return AttributeMapping(subject=subject, attributes=attributes)


def _parse_condition(fields: Fields) -> Expression | None:
    source = fields.optional_string("condition")
    accept_all = fields.boolean("accept_all_tokens_from_issuer", default=False)
    if source is None and not accept_all:
        raise ConfigError(
            f"{fields.path('condition')}: a provider needs an attribute condition, "
            "or accept_all_tokens_from_issuer: true to trust every token "
            "its issuer signs"
        )
    if source is not None and accept_all:
        raise ConfigError(
            f"{fields.path('condition')}: give a condition or "
            "accept_all_tokens_from_issuer, not both"
        )
    return (
        None if source is None else compile_expression(source, fields.path("condition"))
    )


def parse_provider(doc: Any, where: str) -> Provider:
    """Builds a :class:`Provider` from its document."""
    fields = Fields(doc, where)
    loopback = fields.boolean("allow_http_on_loopback", default=False)
    issuer = fields.string("issuer")
    _check_url(issuer, fields.path("issuer"), allow_http_loopback=loopback)
    algorithms = fields.strings("algorithms") or ("ES256", "RS256")
    bad = sorted(set(algorithms) - set(PROVIDER_ALGORITHMS))
    if bad:
        raise ConfigError(f"{fields.path('algorithms')}: {bad[0]!r} is not allowed")

    provider = Provider(
        id=check_id(fields.string("id"), fields.path("id")),
        pool=fields.string("pool"),
        issuer=issuer,
        jwks=_parse_jwks(fields.mapping("jwks"), fields.path("jwks"), loopback),
        audiences=fields.strings("audiences", required=True),
        algorithms=algorithms,
        condition=_parse_condition(fields),
        mapping=_parse_mapping(fields.mapping("mapping"), fields.path("mapping")),
        max_token_age_seconds=fields.integer("max_token_age_seconds", 3600, 1, 86400),
        clock_skew_seconds=fields.integer(
            "clock_skew_seconds", 30, 0, MAX_CLOCK_SKEW_SECONDS
        ),
        bound_to_subject_expiry=fields.boolean("bound_to_subject_expiry", False),
        one_time_use=fields.boolean("one_time_use", False),
    )
    fields.done()
    return provider


def parse_audience(doc: Any, where: str) -> Audience:
    """Builds an :class:`Audience` from its document."""
    fields = Fields(doc, where)
    audience = Audience(
        id=check_id(fields.string("id"), fields.path("id")),
        parent=fields.optional_string("parent"),
        resources=fields.strings("resources"),
        scopes=fields.strings("scopes"),
        max_lifetime_seconds=fields.integer(
            "max_lifetime_seconds",
            MIN_LIFETIME_SECONDS,
            MIN_LIFETIME_SECONDS,
            MAX_LIFETIME_SECONDS,
        ),
    )
    fields.done()
    for resource in audience.resources:
        _check_url(resource, fields.path("resources"), allow_http_loopback=True)
    return audience


def parse_workload(doc: Any, where: str) -> Workload:
    """Builds a :class:`Workload` from its document."""
    fields = Fields(doc, where)
    attributes = fields.mapping("attributes")
    if not all(isinstance(v, str) for v in attributes.values()):
        raise ConfigError(f"{fields.path('attributes')}: values must be strings")
    workload = Workload(
        path=fields.string("path"),
        pool=fields.string("pool"),
        attributes=dict(attributes),
    )
    fields.done()
    return workload


def parse_policy(doc: Any, where: str) -> PolicyDocument:
    """Builds a :class:`PolicyDocument` from its document."""
    fields = Fields(doc, where)
    policy = PolicyDocument(
        id=check_id(fields.string("id"), fields.path("id")),
        cedar=fields.string("cedar"),
        description=fields.raw("description") or "",
    )
    fields.done()
    return policy
