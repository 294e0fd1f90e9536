"""The Cedar schema of the trust model, and compiling policy documents.

Pools, workloads and audiences are Cedar entities with parents, so
inheritance is Cedar's ``in``. A workload carries its mapped attributes as
entity tags (``principal.getTag("repository")``), because every provider maps
different claims; the enterprise attributes that every workload may have are
typed attributes.

A forbid policy may carry ``@quarantine("10m")``: when it decides a denial,
the Policy service quarantines the principal for that long on every replica.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from wif.durations import parse_duration
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
  risk_score: Long,
  risk_signals: Set<String>,
  http_method: String,
  http_path: String,
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

action access appliesTo {
  principal: [Workload],
  resource: [Audience],
  context: RequestContext,
};
"""

#: Actions a decision may be asked for. ``access`` is a request through an
#: enforcement point (an Envoy sidecar) to the audience a route belongs to.
ACTIONS = ("exchange", "validate", "access")

#: The annotation that makes a forbid policy quarantine the principal it denies.
QUARANTINE_ANNOTATION = "quarantine"

SCHEMA = cedarpy.Schema.from_str(SCHEMA_TEXT)

# Cedar names the policies of a text policy0, policy1, ... in its messages.
_CEDAR_POLICY_NAME = re.compile(r"(?:for )?policy `policy(\d+)`,?\s*")

#: At most this many validation errors are quoted for one document.
_MAX_QUOTED_ERRORS = 3


@dataclass(frozen=True)
class CompiledPolicies:
    """A parsed, validated Cedar policy set whose ids are the documents' ids.

    ``quarantine_seconds`` maps the id of each forbid policy annotated with
    ``@quarantine`` to its duration; ``permits`` lists the permit policies,
    the grants a least-privilege report accounts for.
    """

    policy_set: Any
    ids: tuple[str, ...]
    quarantine_seconds: Mapping[str, int] = field(default_factory=dict)
    permits: tuple[str, ...] = ()


def _statement_ids(document_id: str, count: int) -> list[str]:
    if count == 1:
        return [document_id]
    return [f"{document_id}#{n}" for n in range(1, count + 1)]


def _name_policies(message: str, ids: Sequence[str], section: str) -> str:
    """Replaces Cedar's ``policy0`` names with the statement's own id."""
    match = _CEDAR_POLICY_NAME.search(message)
    if match is None:
        return f"{section}.{ids[0].split('#')[0]}: {message}"
    index = int(match.group(1))
    name = ids[index] if index < len(ids) else ids[0].split("#")[0]
    rest = (message[: match.start()] + message[match.end() :]).strip()
    return f"{section}.{name}: {rest}"


def _statements(policy: PolicyDocument, where: str) -> dict[str, Any]:
    try:
        document = json.loads(cedarpy.policies_to_json_str(policy.cedar))
    except ValueError as exc:
        raise ConfigError(f"{where}: Policy parse error: {exc}") from exc
    statements = list(document.get("staticPolicies", {}).values())
    if document.get("templates") or not statements:
        raise ConfigError(f"{where}: must hold at least one policy and no templates")
    ids = _statement_ids(policy.id, len(statements))
    return dict(zip(ids, statements, strict=True))


def _validate(policy: PolicyDocument, ids: Sequence[str], section: str) -> None:
    result = cedarpy.validate_policies(policy.cedar, SCHEMA)
    if result.validation_passed:
        return
    where = f"{section}.{policy.id}"
    messages: list[str] = []
    for error in result.errors:
        message = _name_policies(str(error.error), ids, section)
        if message not in messages:
            messages.append(message)
    if not messages:
        raise ConfigError(f"{where}: does not validate against the schema")
    more = len(messages) - _MAX_QUOTED_ERRORS
    text = "; ".join(messages[:_MAX_QUOTED_ERRORS])
    raise ConfigError(text + (f" (and {more} more)" if more > 0 else ""))


def _quarantine(statement: Mapping[str, Any], where: str) -> int:
    annotations = statement.get("annotations") or {}
    text = annotations.get(QUARANTINE_ANNOTATION)
    if text is None:
        return 0
    if statement.get("effect") != "forbid":
        raise ConfigError(f"{where}: only a forbid policy may carry @quarantine")
    try:
        return parse_duration(str(text))
    except ValueError as exc:
        raise ConfigError(f"{where}: @quarantine: {exc}") from exc


def compile_policies(
    policies: Sequence[PolicyDocument], section: str = "policies"
) -> CompiledPolicies:
    """Parses and validates ``policies`` against :data:`SCHEMA`.

    Raises ``ConfigError`` naming the first policy that does not parse or
    does not validate (``policies.<id>: <why>``, or ``<id>#<n>`` for the
    n-th statement of a document), so a bad document never replaces a good
    set. ``section`` names the configuration section in messages.
    """
    statements: dict[str, Any] = {}
    quarantine: dict[str, int] = {}
    for policy in policies:
        where = f"{section}.{policy.id}"
        found = _statements(policy, where)
        _validate(policy, list(found), section)
        for statement_id, statement in found.items():
            seconds = _quarantine(statement, f"{section}.{statement_id}")
            if seconds:
                quarantine[statement_id] = seconds
        statements.update(found)
    document = {"staticPolicies": statements, "templates": {}, "templateLinks": []}
    try:
        policy_set = cedarpy.PolicySet.from_json_str(json.dumps(document))
    except ValueError as exc:
        raise ConfigError(f"{section}: {exc}") from exc
    permits = tuple(k for k, v in statements.items() if v.get("effect") == "permit")
    return CompiledPolicies(
        policy_set=policy_set,
        ids=tuple(statements),
        quarantine_seconds=quarantine,
        permits=permits,
    )
