"""The shadow report: live decisions a candidate policy set would change.

The engine evaluates the shadow policy set (the trust configuration's
``shadow_policies``) beside the active one; this log keeps the decisions
whose outcome, allow or deny, differs. A fresh log replaces it whenever the
shadow set itself changes; it keeps at most ``limit`` differences (counting
the ones it had to drop), and lives in one replica's memory.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass

from services.policy.engine import DecisionInput, DecisionResult
from wif.trust.config import TrustConfig


@dataclass(frozen=True)
class ShadowDifference:
    """One live decision the shadow set answers differently."""

    time: float
    subject: str
    action: str
    audience: str
    scopes: tuple[str, ...]
    config_revision: int
    active_allowed: bool
    active_policy_ids: tuple[str, ...]
    shadow_allowed: bool
    shadow_policy_ids: tuple[str, ...]


@dataclass(frozen=True)
class ShadowReport:
    """Every difference seen since the shadow set took its current form."""

    fingerprint: str
    shadow_policy_ids: tuple[str, ...]
    since: float
    evaluated: int
    differing: int
    dropped: int
    differences: tuple[ShadowDifference, ...]


def shadow_fingerprint(config: TrustConfig | None) -> str:
    """Identifies a shadow policy set by its documents; empty when none."""
    if config is None or config.shadow is None:
        return ""
    digest = hashlib.sha256()
    for policy in config.shadow_policies:
        digest.update(f"{policy.id}\0{policy.cedar}\0".encode())
    return digest.hexdigest()[:16]


class ShadowLog:
    """Collects the differences between the active and the shadow outcomes."""

    def __init__(
        self, limit: int = 1000, fingerprint: str = "", ids: tuple[str, ...] = ()
    ) -> None:
        self._limit = limit
        self._fingerprint = fingerprint
        self._ids = ids
        self._since = time.time()
        self._evaluated = 0
        self._differing = 0
        self._differences: deque[ShadowDifference] = deque(maxlen=limit)

    def successor(self, config: TrustConfig) -> ShadowLog:
        """The log to keep once ``config`` is in force: this one while the
        shadow set stays the same, else a fresh one.

        Changes nothing here, so it may run in a worker thread while
        decisions are recorded; the caller swaps the result in.
        """
        fingerprint = shadow_fingerprint(config)
        if fingerprint == self._fingerprint:
            return self
        ids = config.shadow.ids if config.shadow is not None else ()
        return ShadowLog(self._limit, fingerprint, ids)

    def record(
        self, question: DecisionInput, result: DecisionResult, now: float
    ) -> None:
        """Counts a decision and keeps it if the shadow set decides otherwise."""
        shadow = result.shadow
        if shadow is None or not self._fingerprint:
            return
        self._evaluated += 1
        if shadow.allowed == result.allowed:
            return
        self._differing += 1
        self._differences.append(
            ShadowDifference(
                time=now,
                subject=question.subject,
                action=question.action,
                audience=question.audience,
                scopes=tuple(question.scopes),
                config_revision=result.config_revision,
                active_allowed=result.allowed,
                active_policy_ids=result.policy_ids,
                shadow_allowed=shadow.allowed,
                shadow_policy_ids=shadow.policy_ids,
            )
        )

    def report(self) -> ShadowReport:
        """The differences kept so far, oldest first."""
        return ShadowReport(
            fingerprint=self._fingerprint,
            shadow_policy_ids=self._ids,
            since=self._since,
            evaluated=self._evaluated,
            differing=self._differing,
            dropped=self._differing - len(self._differences),
            differences=tuple(self._differences),
        )
