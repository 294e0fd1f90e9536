"""The Cedar schema of the trust model, and compiling policy documents.

Pools, workloads and audiences are Cedar entities with parents, so
inheritance is Cedar's ``in``. A workload carries its mapped attributes as
entity tags (``principal.getTag("repository")``), because every provider maps
different claims; the enterprise attributes that every workload may have are
typed attributes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cedarpy

from wif.errors import ConfigError
from wif.trust.model import PolicyDocument

#: The Cedar schema every policy is validated against.
SCHEMA_TEXT = """
entity Pool in [Pool];

entity Workload in [Pool] {
  pool: String,
  provider: String,
  workload_type?: String,
  environment_tier?: String,
  security_clearance?: String,
} tags String;

entity Audience in [Audience] {
  scopes: Set<String>,
  max_lifetime_seconds: Long,
};

type RequestContext = {
  scopes: Set<String>,
  actor_chain: Set<String>,
  actor_depth: Long,
  source_address: String,
  now: Long,
  subject_token_age_seconds: Long,
};

action exchange appliesTo {
  principal: [Workload],
  resource: [Audience],
  context: RequestContext,
};

action validate appliesTo {
  principal: [Workload],
  resource: [Audience],
  context: RequestContext,
};
"""

#: Actions a decision may be asked for.
ACTIONS = ("exchange", "validate")

SCHEMA = cedarpy.Schema.from_str(SCHEMA_TEXT)


@dataclass(frozen=True)
class CompiledPolicies:
    """A parsed, validated Cedar policy set whose ids are the documents' ids."""

    policy_set: Any
    ids: tuple[str, ...]


def _statements(policy: PolicyDocument) -> dict[str, Any]:
    try:
        document = json.loads(cedarpy.policies_to_json_str(policy.cedar))
    except ValueError as exc:
        raise ConfigError(f"policies.{policy.id}: {exc}") from exc
    statements = list(document.get("staticPolicies", {}).values())
    if document.get("templates") or not statements:
        raise ConfigError(
            f"policies.{policy.id}: must hold at least one policy and no templates"
        )
    if len(statements) == 1:
        return {policy.id: statements[0]}
    return {f"{policy.id}#{n}": s for n, s in enumerate(statements, start=1)}


def _validate(policy: PolicyDocument) -> None:
    result = cedarpy.validate_policies(policy.cedar, SCHEMA)
    if not result.validation_passed:
        first = str(result.errors[0].error) if result.errors else "invalid"
        raise ConfigError(f"policies.{policy.id}: {first}")


def compile_policies(policies: Sequence[PolicyDocument]) -> CompiledPolicies:
    """Parses and validates ``policies`` against :data:`SCHEMA`.

    Raises ``ConfigError`` naming the first policy that does not parse or
    does not validate, so a bad document never replaces a good set.
    """
    statements: dict[str, Any] = {}
    for policy in policies:
        _validate(policy)
        statements.update(_statements(policy))
    document = {"staticPolicies": statements, "templates": {}, "templateLinks": []}
    try:
        policy_set = cedarpy.PolicySet.from_json_str(json.dumps(document))
    except ValueError as exc:
        raise ConfigError(f"policies: {exc}") from exc
    return CompiledPolicies(policy_set=policy_set, ids=tuple(statements))
