"""CEL expressions for provider attribute conditions and attribute mappings.

Expressions see one variable, ``assertion``: the verified claims of the
foreign token. They are compiled once when a configuration is loaded, so a
syntax error is a configuration error, never a request-time surprise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel

from wif.errors import ConfigError, InvalidGrant

#: The longest expression text accepted, to bound compile and run cost.
MAX_EXPRESSION_LENGTH = 4096

#: Functions the CEL runtime provides; an expression naming any other would
#: fail on every request, so it is refused when the configuration is loaded.
KNOWN_FUNCTIONS = frozenset(
    {
        "contains", "endsWith", "startsWith", "matches", "size",
        "int", "uint", "double", "string", "bytes", "dyn", "type",
        "timestamp", "duration",
    }
)  # fmt: skip


def _is_operator(name: str) -> bool:
    return name.startswith(("_", "!_", "@"))


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression and the text it came from."""

    source: str
    program: Any

    def evaluate(self, claims: Mapping[str, Any]) -> Any:
        """Runs the expression over ``claims``; raises ``EvaluationError``."""
        try:
            return self.program.execute({"assertion": dict(claims)})
        except Exception as exc:  # the CEL runtime raises several kinds
            raise EvaluationError(str(exc)) from exc


class EvaluationError(Exception):
    """An expression failed at run time, such as on a claim that is absent."""


def compile_expression(source: str, where: str) -> Expression:
    """Compiles ``source``; raises ``ConfigError`` naming ``where`` if it is bad."""
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where}: must be a non-empty CEL expression")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ConfigError(f"{where}: longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        program = cel.compile(source)
    except ValueError as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(f"{where}: {first_line}") from exc
    unknown = [
        f
        for f in program.functions()
        if not _is_operator(f) and f not in KNOWN_FUNCTIONS
    ]
    if unknown:
        raise ConfigError(f"{where}: unknown function {unknown[0]!r}")
    return Expression(source=source, program=program)


def condition_holds(condition: Expression, claims: Mapping[str, Any]) -> bool:
    """Evaluates an attribute condition; anything but ``true`` refuses.

    Raises ``InvalidGrant`` with reason ATTRIBUTE_CONDITION_FAILED when the
    condition is false, and ATTRIBUTE_CONDITION_ERROR when it cannot be
    evaluated (a claim it reads is missing, or it is not a boolean).
    """
    try:
        result = condition.evaluate(claims)
    except EvaluationError as exc:
        raise InvalidGrant(
            f"the provider's attribute condition could not be evaluated: {exc}",
            reason="ATTRIBUTE_CONDITION_ERROR",
        ) from exc

    if result is not True:
        raise InvalidGrant(
            "the token does not satisfy the provider's attribute condition",
            reason="ATTRIBUTE_CONDITION_FAILED",
        )
    return True
