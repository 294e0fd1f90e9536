"""Cedar decisions over the trust configuration's entity hierarchy.

Pools and audiences become Cedar entities with parents once per
configuration version; the principal of each request is added as a
workload entity in its pool, carrying its mapped attributes as tags. A
configuration version and its entities are swapped in together, so each
decision sees one consistent version and reports it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cedarpy

from wif.errors import ConfigError
from wif.trust.cedar import ACTIONS, SCHEMA
from wif.trust.config import TrustConfig

#: Principal attributes that have a typed place in the Cedar schema.
TYPED_ATTRIBUTES = ("workload_type", "environment_tier", "security_clearance")


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
class DecisionResult:
    """A decision, the policies that determined it, and what it grants."""

    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()
    granted_scopes: tuple[str, ...] = ()
    max_lifetime_seconds: int = 0
    config_revision: int = 0


@dataclass(frozen=True)
class _Version:
    config: TrustConfig
    entities: Any


def _uid(kind: str, entity_id: str) -> dict[str, str]:
    return {"type": kind, "id": entity_id}


def _base_entities(config: TrustConfig) -> Any:
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
    return cedarpy.Entities.from_json_str(json.dumps(entities), schema=SCHEMA)


def _request_context(decision: DecisionInput) -> dict[str, Any]:
    given = decision.context
    actors = [str(a) for a in given.get("actor_chain", [])]
    return {
        "scopes": list(decision.scopes),
        "actor_chain": actors,
        "actor_depth": len(actors),
        "source_address": str(given.get("source_address", "")),
        "now": int(given.get("now", 0)),
        "subject_token_age_seconds": int(given.get("subject_token_age_seconds", 0)),
    }


class PolicyEngine:
    """Evaluates Cedar policies against the configuration in force."""

    def __init__(self) -> None:
        self._version: _Version | None = None

    @property
    def revision(self) -> int:
        """The configuration revision in force, 0 before the first."""
        return self._version.config.revision if self._version else 0

    def load(self, config: TrustConfig) -> None:
        """Builds the entities of ``config`` and swaps them in with it."""
        try:
            entities = _base_entities(config)
        except ValueError as exc:
            raise ConfigError(f"entities: {exc}") from exc
        self._version = _Version(config=config, entities=entities)

    def _principal(
        self, config: TrustConfig, decision: DecisionInput
    ) -> dict[str, Any]:
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

    def decide(self, decision: DecisionInput) -> DecisionResult:
        """Answers one question; unknown names deny with an error, never raise."""
        version = self._version
        if version is None:
            return DecisionResult(False, (), ("no configuration loaded",))
        config = version.config
        problem = self._unknown_name(config, decision)
        if problem:
            return DecisionResult(
                False, (), (problem,), config_revision=config.revision
            )

        principal = self._principal(config, decision)
        entities = version.entities.with_added_json_str(json.dumps([principal]))
        request = {
            "principal": principal["uid"],
            "action": _uid("Action", decision.action),
            "resource": _uid("Audience", decision.audience),
            "context": _request_context(decision),
        }
        result = cedarpy.is_authorized(request, config.compiled.policy_set, entities)
        audience = config.audiences[decision.audience]
        return DecisionResult(
            allowed=result.allowed,
            policy_ids=tuple(result.diagnostics.reasons),
            errors=tuple(str(e) for e in result.diagnostics.errors),
            granted_scopes=tuple(
                s for s in decision.scopes if result.allowed and s in audience.scopes
            ),
            max_lifetime_seconds=audience.max_lifetime_seconds,
            config_revision=config.revision,
        )

    @staticmethod
    def _unknown_name(config: TrustConfig, decision: DecisionInput) -> str | None:
        if decision.action not in ACTIONS:
            return f"unknown action {decision.action!r}"
        if decision.audience not in config.audiences:
            return f"unknown audience {decision.audience!r}"
        if decision.pool_id not in config.pools:
            return f"unknown pool {decision.pool_id!r}"
        return None


__all__ = ["DecisionInput", "DecisionResult", "PolicyEngine"]
