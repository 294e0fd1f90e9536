"""The record of an exchange's checks, which ExplainExchange reports.

Every step of an exchange runs inside :meth:`CheckLog.step`, which records
whether it passed or failed (with the refusal's reason and its message,
both safe for the caller). An explanation then lists the steps that did not
run as skipped, so the caller sees the whole sequence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wif.errors import WifError

#: Printable ASCII, the only characters echoed back from a request.
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))
#: The longest text echoed back from a request, in characters.
MAX_ECHO_LENGTH = 200

#: The checks of the subject token, in the order they run.
TOKEN_CHECKS = (
    "format",
    "issuer",
    "signature",
    "time",
    "audience",
    "token_kind",
    "condition",
    "mapping",
    "revocation",
)
#: Every check of an exchange, in order; the actor token's checks are the
#: token checks prefixed with ``actor.``.
EXCHANGE_CHECKS = (
    "request",
    *TOKEN_CHECKS,
    *(f"actor.{name}" for name in TOKEN_CHECKS),
    "delegation",
    "target",
    "scope",
    "policy",
    "downscope",
    "replay",
)


def echo(value: str) -> str:
    """Caller-supplied text made safe to echo: printable ASCII, bounded."""
    return "".join(c if c in _PRINTABLE else "?" for c in value[:MAX_ECHO_LENGTH])


def safe_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Error metadata with every value made safe to echo (see :func:`echo`);
    values may carry text from the request or the token's header."""
    return {name: echo(value) for name, value in metadata.items()}


class Outcome(enum.Enum):
    """What became of one check."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome, with a reason and detail safe for the caller."""

    name: str
    outcome: Outcome
    reason: str = ""
    detail: str = ""


class _Step:
    """One check in progress: records its outcome when it ends."""

    __slots__ = ("_detail", "_log", "_name")

    def __init__(self, log: CheckLog, name: str, detail: str) -> None:
        self._log = log
        self._name = name
        self._detail = detail

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, _: object) -> None:
        if error is None:
            result = CheckResult(self._name, Outcome.PASSED, "", self._detail)
        elif isinstance(error, WifError):
            result = CheckResult(
                self._name, Outcome.FAILED, error.reason, error.message
            )
        else:
            return
        self._log.results.append(result)


class CheckLog:
    """The checks an exchange ran so far."""

    def __init__(self, prefix: str = "") -> None:
        self.results: list[CheckResult] = []
        self._prefix = prefix
        #: The authenticated subject's SPIFFE ID, once known, for the audit.
        self.subject: str | None = None

    def child(self, prefix: str) -> CheckLog:
        """A log whose steps are named ``<prefix>.<name>`` in this one."""
        child = CheckLog(prefix=f"{prefix}.")
        child.results = self.results
        return child

    def step(self, name: str, detail: str = "") -> _Step:
        """Runs one check; a ``WifError`` inside it marks it failed."""
        return _Step(self, self._prefix + name, detail)

    def skip(self, name: str, detail: str) -> None:
        """Records a check that does not apply to this exchange."""
        self.results.append(
            CheckResult(self._prefix + name, Outcome.SKIPPED, "", detail)
        )

    def complete(self) -> list[CheckResult]:
        """Every check of an exchange; those that did not run are skipped."""
        seen = {result.name for result in self.results}
        missing = [
            CheckResult(name, Outcome.SKIPPED, "", "not reached")
            for name in EXCHANGE_CHECKS
            if name not in seen
        ]
        order = {name: n for n, name in enumerate(EXCHANGE_CHECKS)}
        return sorted(
            [*self.results, *missing], key=lambda r: order.get(r.name, len(order))
        )
