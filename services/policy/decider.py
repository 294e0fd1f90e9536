"""One decision as the Policy service makes it, whoever asks.

The gRPC ``Decide`` and ``DecideBatch`` calls and the Envoy authorizer all
come here. A quarantined principal is denied before any policy runs.
Otherwise the principal's risk is scored from its own history and put in
the Cedar context, the engine decides (against the shadow set too, when
there is one), and the outcome feeds the risk history, the shadow report
and the usage behind the least-privilege report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from services.policy.engine import (
    DecisionInput,
    DecisionResult,
    PolicyEngine,
    Version,
    whole_number,
)
from services.policy.restrictions import Quarantines
from services.policy.risk import RiskTracker
from services.policy.shadow import ShadowLog
from services.policy.usage import UsageLog
from wif.errors import WifError
from wif.trust.config import TrustConfig

log = logging.getLogger(__name__)


def _source(question: DecisionInput) -> str:
    return str(question.context.get("source_address", ""))


class Decider:
    """Decides with the engine, honouring quarantines and scoring risk."""

    def __init__(
        self,
        engine: PolicyEngine,
        quarantines: Quarantines | None = None,
        risk: RiskTracker | None = None,
        shadow: ShadowLog | None = None,
        usage: UsageLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.quarantines = quarantines
        self.risk = risk or RiskTracker()
        self.shadow = shadow or ShadowLog()
        self.usage = usage or UsageLog()
        self._clock = clock

    def prepare(self, config: TrustConfig) -> Callable[[], None]:
        """Builds the decision state of ``config``; returns the step that
        puts it in force. Raises ``ConfigError`` to refuse it.

        Touches nothing that decisions use, so it may run in a worker
        thread. The returned step only assigns what was built; run it where
        decisions run (the event loop), so no decision sees half of it.
        """
        version = self.engine.prepare(config)
        shadow = self.shadow.successor(config)

        def install() -> None:
            self.engine.install(version)
            self.shadow = shadow

        return install

    def load(self, config: TrustConfig) -> None:
        """Puts ``config`` in force; raises ``ConfigError`` to refuse it."""
        self.prepare(config)()

    def decide(
        self, question: DecisionInput, version: Version | None = None
    ) -> DecisionResult:
        """Answers one question; never raises for a bad question."""
        version = version or self.engine.version
        now = self._clock()
        restriction = (
            self.quarantines.active(question.subject, now)
            if self.quarantines is not None
            else None
        )
        if restriction is not None:
            return DecisionResult(
                allowed=False,
                policy_ids=(),
                errors=(restriction.describe(),),
                config_revision=version.config.revision if version else 0,
            )

        moment = float(whole_number(question.context.get("now")) or now)
        key = (question.subject, question.action, question.audience)
        risk = self.risk.assess(*key, _source(question), moment)
        result = self.engine.decide(question, risk, version)
        if result.allowed:
            self.risk.observe_allowed(*key, _source(question), moment)
        self.shadow.record(question, result, now)
        self.usage.record(question, result, now)
        return result

    def decide_all(self, questions: Sequence[DecisionInput]) -> list[DecisionResult]:
        """Answers every question against one configuration version."""
        version = self.engine.version
        return [self.decide(q, version) for q in questions]

    async def enforce(self, question: DecisionInput, result: DecisionResult) -> None:
        """Quarantines the principal when a deciding policy asks for it.

        A failure to record the quarantine is logged; the denial stands.
        """
        if not result.quarantine_seconds or self.quarantines is None:
            return
        reason = "denied by " + ",".join(result.policy_ids)
        try:
            record = await self.quarantines.impose(
                question.subject, result.quarantine_seconds, reason
            )
        except WifError as error:
            log.error("could not record a quarantine a policy asked for: %s", error)
            return
        log.info(
            "quarantined a principal until %s",
            record.until,
            extra={"fields": {"subject": question.subject, "reason": reason}},
        )


__all__ = ["Decider"]
