"""CEL expressions for provider attribute conditions and attribute mappings.

Expressions see one variable, ``assertion``: the verified claims of the
foreign token. They are compiled once when a configuration is loaded, so a
syntax error is a configuration error, never a request-time surprise; the
same text is compiled only once while it stays in the cache.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel

from wif.errors import ConfigError, InvalidGrant

#: The longest expression text accepted, to bound compile and run cost.
MAX_EXPRESSION_LENGTH = 4096

#: Distinct expression texts whose compiled programs are kept between
#: compiles: providers often share a condition or a mapping, and every
#: reload compiles every provider's expressions again.
COMPILED_CACHE_SIZE = 4096

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


class CelInput:
    """A token's claims made into CEL values once, for every expression of it.

    Turning the claims into CEL values costs about 30 µs, while running one
    compiled expression over values already made costs under 1 µs; an
    exchange runs the provider's condition and every mapping expression over
    the same claims. Not safe to share between threads.
    """

    def __init__(self, claims: Mapping[str, Any]) -> None:
        self.claims = claims
        self._context: Any = None

    def context(self) -> Any:
        """The CEL values, made on first use; raises what the CEL runtime raises."""
        if self._context is None:
            self._context = cel.Context({"assertion": dict(self.claims)})
        return self._context


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression and the text it came from."""

    source: str
    program: Any

    def evaluate(self, claims: Mapping[str, Any] | CelInput) -> Any:
        """Runs the expression over ``claims``; raises ``EvaluationError``."""
        try:
            if isinstance(claims, CelInput):
                return self.program.execute(claims.context())
            return self.program.execute({"assertion": dict(claims)})
        except Exception as exc:  # the CEL runtime raises several kinds
            raise EvaluationError(str(exc)) from exc


class EvaluationError(Exception):
    """An expression failed at run time, such as on a claim that is absent."""


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compiled(source: str) -> tuple[Any, tuple[str, ...]]:
    """The program of ``source`` and the unknown functions it names.

    Raises ``ValueError`` when it does not compile. A program is immutable,
    so every provider whose expression has the same text shares one.
    """
    program = cel.compile(source)
    unknown = tuple(
        f
        for f in program.functions()
        if not _is_operator(f) and f not in KNOWN_FUNCTIONS
    )
    return program, unknown


def compile_expression(source: str, where: str) -> Expression:
    """Compiles ``source``; raises ``ConfigError`` naming ``where`` if it is bad."""
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where}: must be a non-empty CEL expression")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ConfigError(f"{where}: longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        program, unknown = _compiled(source)
    except ValueError as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(f"{where}: {first_line}") from exc
    if unknown:
        raise ConfigError(f"{where}: unknown function {unknown[0]!r}")
    return Expression(source=source, program=program)


#: Deepest nesting of a token's claims handed to CEL, the claims object being 1.
MAX_CEL_INPUT_DEPTH = 8
#: Most values (members and array items, counted through every level) in the
#: claims handed to CEL. Real platform tokens hold well under a hundred.
MAX_CEL_INPUT_VALUES = 512


def check_cel_input(claims: Mapping[str, Any]) -> None:
    """Refuses claims too deep or too large to hand to CEL.

    CEL expressions are compiled and length-bounded at load, so the cost of
    one evaluation depends on the size of its input; this bounds that input.
    Raises ``InvalidGrant`` with reason CLAIMS_TOO_COMPLEX.
    """
    pending: list[tuple[Any, int]] = [(claims, 1)]
    values = 0
    while pending:
        item, depth = pending.pop()
        children = list(item.values()) if isinstance(item, Mapping) else list(item)
        values += len(children)
        if depth > MAX_CEL_INPUT_DEPTH or values > MAX_CEL_INPUT_VALUES:
            raise InvalidGrant(
                f"the token's claims nest deeper than {MAX_CEL_INPUT_DEPTH} levels "
                f"or hold more than {MAX_CEL_INPUT_VALUES} values",
                reason="CLAIMS_TOO_COMPLEX",
                metadata={
                    "maxDepth": str(MAX_CEL_INPUT_DEPTH),
                    "maxValues": str(MAX_CEL_INPUT_VALUES),
                },
            )
        pending.extend(
            (child, depth + 1) for child in children if isinstance(child, dict | list)
        )


def condition_holds(
    condition: Expression, claims: Mapping[str, Any] | CelInput
) -> bool:
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
