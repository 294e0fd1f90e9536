"""What the grants were used for, and the least-privilege report built on it.

:class:`UsageLog` remembers, per permit policy, how many allowed decisions
it determined and which actions, audiences and scopes they were for, and it
remembers the principals it has seen decide. :func:`build_access_report`
then evaluates the active policies for those principals and for the
registered workloads, with a neutral context, to list what each can reach
and what each grant allows beyond what was used. Everything is bounded and
kept per replica since it started.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from services.policy.engine import DecisionInput, DecisionResult, PolicyEngine, Version
from wif.trust.cedar import ACTIONS

#: Principals one grant remembers having served.
MAX_PRINCIPALS_PER_GRANT = 100


@dataclass(frozen=True, order=True)
class Permission:
    """An action on an audience, with one scope or none (``scope == ""``)."""

    action: str
    audience: str
    scope: str = ""


@dataclass(frozen=True)
class Principal:
    """A principal as decisions saw it: enough to ask about it again."""

    subject: str
    pool_id: str
    provider_id: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Use:
    decisions: int = 0
    last_used: float = 0.0
    used: set[Permission] = field(default_factory=set)
    principals: OrderedDict[str, None] = field(default_factory=OrderedDict)


class UsageLog:
    """Counts what each permit policy was used for; bounded."""

    def __init__(self, max_principals: int = 1000) -> None:
        self.since = time.time()
        self._max_principals = max_principals
        self._uses: dict[str, _Use] = {}
        self._principals: OrderedDict[str, Principal] = OrderedDict()

    def record(
        self, question: DecisionInput, result: DecisionResult, now: float
    ) -> None:
        """Remembers the principal and, if allowed, what its grants served."""
        if not result.evaluated:
            return
        self._remember(question)
        if not result.allowed:
            return
        used = {Permission(question.action, question.audience)}
        used.update(
            Permission(question.action, question.audience, s)
            for s in result.granted_scopes
        )
        for policy_id in result.policy_ids:
            use = self._uses.setdefault(policy_id, _Use())
            use.decisions += 1
            use.last_used = now
            use.used.update(used)
            use.principals[question.subject] = None
            use.principals.move_to_end(question.subject)
            if len(use.principals) > MAX_PRINCIPALS_PER_GRANT:
                use.principals.popitem(last=False)

    def _remember(self, question: DecisionInput) -> None:
        self._principals[question.subject] = Principal(
            subject=question.subject,
            pool_id=question.pool_id,
            provider_id=question.provider_id,
            attributes=dict(question.attributes),
        )
        self._principals.move_to_end(question.subject)
        while len(self._principals) > self._max_principals:
            self._principals.popitem(last=False)

    def snapshot(self) -> UsageSnapshot:
        """A copy to build a report from while decisions go on."""
        uses = {
            policy_id: GrantUse(
                policy_id=policy_id,
                decisions=use.decisions,
                last_used=use.last_used,
                granted=(),
                used=tuple(sorted(use.used)),
                principals_granted=0,
                principals_used=len(use.principals),
            )
            for policy_id, use in self._uses.items()
        }
        principals = tuple(reversed(self._principals.values()))
        return UsageSnapshot(self.since, principals, uses)


@dataclass(frozen=True)
class PrincipalReach:
    """What one principal can reach under the active policies."""

    subject: str
    pool_id: str
    registered: bool
    permissions: tuple[Permission, ...]


@dataclass(frozen=True)
class GrantUse:
    """One permit policy: what it grants to the principals known, what was used."""

    policy_id: str
    decisions: int
    last_used: float
    granted: tuple[Permission, ...]
    used: tuple[Permission, ...]
    principals_granted: int
    principals_used: int

    @property
    def unused(self) -> tuple[Permission, ...]:
        """What the grant allows that no decision used."""
        used = set(self.used)
        return tuple(p for p in self.granted if p not in used)


@dataclass(frozen=True)
class UsageSnapshot:
    """The usage log at one moment: principals most recent first, uses by id."""

    since: float
    principals: tuple[Principal, ...]
    uses: Mapping[str, GrantUse]


@dataclass(frozen=True)
class AccessReport:
    """Reach per principal and use per grant, at one configuration revision."""

    config_revision: int
    since: float
    principals: tuple[PrincipalReach, ...]
    grants: tuple[GrantUse, ...]
    principals_truncated: bool


def _candidates(
    version: Version, usage: UsageSnapshot, limit: int
) -> tuple[list[tuple[Principal, bool]], bool]:
    config = version.config
    seen: dict[str, tuple[Principal, bool]] = {}
    for principal in usage.principals:
        if principal.pool_id in config.pools:
            seen.setdefault(principal.subject, (principal, False))
    for workload in config.workloads.values():
        subject = f"spiffe://{config.trust_domain}/{workload.pool}/{workload.path}"
        registered = Principal(subject, workload.pool, "", dict(workload.attributes))
        seen.setdefault(subject, (registered, True))
    candidates = list(seen.values())
    return candidates[:limit], len(candidates) > limit


def _questions(principal: Principal, version: Version, now: int) -> list[Any]:
    asked = []
    for audience in version.config.audiences.values():
        for action in ACTIONS:
            for scope in ("", *audience.scopes):
                question = DecisionInput(
                    subject=principal.subject,
                    pool_id=principal.pool_id,
                    provider_id=principal.provider_id,
                    attributes=principal.attributes,
                    action=action,
                    audience=audience.id,
                    scopes=[scope] if scope else [],
                    context={"now": now},
                )
                asked.append((Permission(action, audience.id, scope), question))
    return asked


def build_access_report(
    engine: PolicyEngine,
    version: Version | None,
    usage: UsageSnapshot,
    max_principals: int = 200,
) -> AccessReport:
    """Evaluates ``version``'s policies for the known principals; bounded.

    Safe to run in a worker thread: it reads only ``version`` and ``usage``.
    """
    if version is None:
        return AccessReport(0, usage.since, (), (), False)
    now = int(time.time())
    candidates, truncated = _candidates(version, usage, max_principals)
    granted: dict[str, set[Permission]] = {}
    granted_to: dict[str, set[str]] = {}
    reach = []
    for principal, registered in candidates:
        allowed = []
        for permission, question in _questions(principal, version, now):
            result = engine.decide(question, version=version)
            if not result.allowed:
                continue
            allowed.append(permission)
            for policy_id in result.policy_ids:
                granted.setdefault(policy_id, set()).add(permission)
                granted_to.setdefault(policy_id, set()).add(principal.subject)
        reach.append(
            PrincipalReach(
                principal.subject, principal.pool_id, registered, tuple(allowed)
            )
        )
    grants = []
    for policy_id in version.config.compiled.permits:
        use = usage.uses.get(policy_id) or GrantUse(policy_id, 0, 0.0, (), (), 0, 0)
        grants.append(
            replace(
                use,
                granted=tuple(sorted(granted.get(policy_id, ()))),
                principals_granted=len(granted_to.get(policy_id, ())),
            )
        )
    return AccessReport(
        config_revision=version.config.revision,
        since=usage.since,
        principals=tuple(reach),
        grants=tuple(grants),
        principals_truncated=truncated,
    )
