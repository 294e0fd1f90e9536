"""Cedar decisions over the trust configuration's entity hierarchy.

Pools and audiences become Cedar entities with parents once per
configuration version; the principal of each request is added as a
workload entity in its pool, carrying its mapped attributes as tags. A
configuration version and its entities are swapped in together, so each
decision sees one consistent version and reports it.

A decision does not copy the whole hierarchy: its entities are the
principal, its pool's chain of ancestors and the audience's chain, built
once per pool and audience pair and kept with the version. That holds what
``principal in ...`` and ``resource in ...`` need, whatever the number of
pools; an ``in`` between two entity literals of a policy (``Pool::"a" in
Pool::"b"``) is not followed through the hierarchy. When the version holds
a shadow policy set, each decision is evaluated against it too, on the same
entities and context, and both outcomes are returned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from wif.errors import ConfigError
from wif.trust.cedar import ACTIONS, SCHEMA
from wif.trust.config import TrustConfig

#: Principal attributes that have a typed place in the Cedar schema.
TYPED_ATTRIBUTES = ("workload_type", "environment_tier", "security_clearance")


@dataclass(frozen=True)
class Risk:
    """A principal's risk for one request: a score from 0 to 100 and why."""

    score: int = 0
    signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecisionInput:
    """One question: may ``subject`` take ``action`` on ``audience``?"""

    subject: str
    pool_id: str
    provider_id: str
    attributes: Mapping[str, Any]
    action: str
    audience: str
    scopes: Sequence[str]
    context: Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What one policy set answered: allow or deny, and the policies why."""

    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecisionResult:
    """A decision, the policies that determined it, and what it grants.

    ``shadow`` is the shadow policy set's outcome for the same question, or
    None when no shadow set is configured or the question never reached
    the policies; ``evaluated`` tells whether it did. ``quarantine_seconds``
    is how long a deciding forbid policy asks the principal to be
    quarantined for.
    """

    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()
    granted_scopes: tuple[str, ...] = ()
    max_lifetime_seconds: int = 0
    config_revision: int = 0
    risk: Risk = field(default_factory=Risk)
    shadow: Outcome | None = None
    quarantine_seconds: int = 0
    evaluated: bool = False


#: Entity sets for (pool, audience) pairs kept per version before starting over.
MAX_CACHED_ENTITY_SETS = 4096


@dataclass(frozen=True)
class Version:
    """One configuration, its entities, and entity sets per pool and audience."""

    config: TrustConfig
    entities: Mapping[tuple[str, str], dict[str, Any]]
    _bases: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def _chain(self, kind: str, entity_id: str) -> list[dict[str, Any]]:
        chain = []
        node: str | None = entity_id
        while node is not None:
            entity = self.entities[(kind, node)]
            chain.append(entity)
            parents = entity["parents"]
            node = parents[0]["id"] if parents else None
        return chain

    def base_entities(self, pool_id: str, audience_id: str) -> Any:
        """The Cedar entities of a pool's and an audience's ancestry."""
        key = (pool_id, audience_id)
        base = self._bases.get(key)
        if base is None:
            chain = self._chain("Pool", pool_id) + self._chain("Audience", audience_id)
            base = cedarpy.Entities.from_json_str(json.dumps(chain), schema=SCHEMA)
            if len(self._bases) >= MAX_CACHED_ENTITY_SETS:
                self._bases.clear()
            self._bases[key] = base
        return base


def _uid(kind: str, entity_id: str) -> dict[str, str]:
    return {"type": kind, "id": entity_id}


def _base_entities(config: TrustConfig) -> dict[tuple[str, str], dict[str, Any]]:
    """Every pool and audience as a Cedar entity, checked against the schema."""
    entities: list[dict[str, Any]] = []
    for pool in config.pools.values():
        parents = [_uid("Pool", pool.parent)] if pool.parent else []
        entities.append({"uid": _uid("Pool", pool.id), "attrs": {}, "parents": parents})
    for audience in config.audiences.values():
        parents = [_uid("Audience", audience.parent)] if audience.parent else []
        attrs = {
            "scopes": list(audience.scopes),
            "max_lifetime_seconds": audience.max_lifetime_seconds,
        }
        entities.append(
            {"uid": _uid("Audience", audience.id), "attrs": attrs, "parents": parents}
        )
    cedarpy.Entities.from_json_str(json.dumps(entities), schema=SCHEMA)
    return {(e["uid"]["type"], e["uid"]["id"]): e for e in entities}


def _strings(values: Any) -> list[str]:
    if not isinstance(values, list | tuple):
        return []
    return [str(v) for v in values]


def whole_number(value: Any) -> int:
    """A context number as Cedar's Long; anything else, or out of range, is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not -(2**53) <= value <= 2**53:
        return 0
    return int(value)


def request_context(decision: DecisionInput, risk: Risk) -> dict[str, Any]:
    """The Cedar context of a question; absent members get neutral values."""
    given = decision.context
    actors = _strings(given.get("actor_chain", []))
    return {
        "scopes": list(decision.scopes),
        "actor_chain": actors,
        "actor_depth": len(actors),
        "source_address": str(given.get("source_address", "")),
        "now": whole_number(given.get("now")),
        "subject_token_age_seconds": whole_number(
            given.get("subject_token_age_seconds")
        ),
        "risk_score": risk.score,
        "risk_signals": list(risk.signals),
        "http_method": str(given.get("http_method", "")),
        "http_path": str(given.get("http_path", "")),
    }


def _principal(config: TrustConfig, decision: DecisionInput) -> dict[str, Any]:
    tags = {k: str(v) for k, v in decision.attributes.items()}
    path = decision.subject.split("/", 4)[-1]
    registered = config.workloads.get((decision.pool_id, path))
    if registered is not None:
        tags.update(registered.attributes)
    attrs: dict[str, Any] = {
        "pool": decision.pool_id,
        "provider": decision.provider_id,
    }
    attrs.update({k: tags[k] for k in TYPED_ATTRIBUTES if k in tags})
    return {
        "uid": _uid("Workload", decision.subject),
        "attrs": attrs,
        "parents": [_uid("Pool", decision.pool_id)],
        "tags": tags,
    }


def _outcome(result: Any) -> Outcome:
    return Outcome(
        allowed=bool(result.allowed),
        policy_ids=tuple(result.diagnostics.reasons),
        errors=tuple(str(e) for e in result.diagnostics.errors),
    )


def unknown_name(config: TrustConfig, decision: DecisionInput) -> str | None:
    """Why ``decision`` names something the configuration does not know."""
    if decision.action not in ACTIONS:
        return f"unknown action {decision.action!r}"
    if decision.audience not in config.audiences:
        return f"unknown audience {decision.audience!r}"
    if decision.pool_id not in config.pools:
        return f"unknown pool {decision.pool_id!r}"
    return None


class PolicyEngine:
    """Evaluates Cedar policies against the configuration in force."""

    def __init__(self) -> None:
        self._version: Version | None = None

    @property
    def revision(self) -> int:
        """The configuration revision in force, 0 before the first."""
        return self._version.config.revision if self._version else 0

    @property
    def version(self) -> Version | None:
        """The version in force; hold it to answer several questions alike."""
        return self._version

    @staticmethod
    def prepare(config: TrustConfig) -> Version:
        """Builds the entities of ``config``; raises ``ConfigError`` for bad ones.

        Touches nothing in force, so it may run in a worker thread while
        decisions go on; :meth:`install` then puts the result in force.
        """
        try:
            entities = _base_entities(config)
        except ValueError as exc:
            raise ConfigError(f"entities: {exc}") from exc
        return Version(config=config, entities=entities)

    def install(self, version: Version) -> None:
        """Puts a prepared version in force, in one assignment."""
        self._version = version

    def load(self, config: TrustConfig) -> None:
        """Builds the entities of ``config`` and swaps them in with it."""
        self.install(self.prepare(config))

    def decide(
        self,
        decision: DecisionInput,
        risk: Risk | None = None,
        version: Version | None = None,
    ) -> DecisionResult:
        """Answers one question; unknown names deny with an error, never raise.

        ``version`` defaults to the version in force; pass one to answer a
        batch against the same version.
        """
        version = version or self._version
        risk = risk or Risk()
        if version is None:
            return DecisionResult(False, (), ("no configuration loaded",), risk=risk)
        config = version.config
        problem = unknown_name(config, decision)
        if problem:
            return DecisionResult(
                False, (), (problem,), config_revision=config.revision, risk=risk
            )

        principal = _principal(config, decision)
        base = version.base_entities(decision.pool_id, decision.audience)
        entities = base.with_added_json_str(json.dumps([principal]))
        request = {
            "principal": principal["uid"],
            "action": _uid("Action", decision.action),
            "resource": _uid("Audience", decision.audience),
            "context": request_context(decision, risk),
        }
        active = _outcome(
            cedarpy.is_authorized(request, config.compiled.policy_set, entities)
        )
        shadow = None
        if config.shadow is not None:
            shadow = _outcome(
                cedarpy.is_authorized(request, config.shadow.policy_set, entities)
            )
        audience = config.audiences[decision.audience]
        quarantine = config.compiled.quarantine_seconds
        return DecisionResult(
            allowed=active.allowed,
            policy_ids=active.policy_ids,
            errors=active.errors,
            granted_scopes=tuple(
                s for s in decision.scopes if active.allowed and s in audience.scopes
            ),
            max_lifetime_seconds=audience.max_lifetime_seconds,
            config_revision=config.revision,
            risk=risk,
            shadow=shadow,
            quarantine_seconds=0
            if active.allowed
            else max((quarantine.get(p, 0) for p in active.policy_ids), default=0),
            evaluated=True,
        )


__all__ = [
    "DecisionInput",
    "DecisionResult",
    "Outcome",
    "PolicyEngine",
    "Risk",
    "Version",
    "request_context",
    "unknown_name",
    "whole_number",
]
