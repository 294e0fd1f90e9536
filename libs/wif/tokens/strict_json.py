"""Strict decoding of the JSON objects inside a token (RFC 8259, RFC 7515 5.2).

The standard library's decoder keeps the last of two members with the same
name, accepts NaN and Infinity, lets lone surrogate escapes through and nests
as deep as the stack allows. A token holding any of those is ambiguous or
hostile, so :func:`loads_object` refuses them all.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, NoReturn

#: The deepest nesting of objects and arrays accepted, the top object being 1.
MAX_JSON_DEPTH: Final = 32

# Only a \uD800-\uDFFF escape can put a lone surrogate into decoded JSON.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


def loads_object(data: bytes) -> dict[str, Any]:
    """Decode ``data`` as strict UTF-8 JSON text holding one object.

    Raises:
        ValueError: ``data`` is not UTF-8, not JSON, not an object, has a
            duplicate member name, NaN or Infinity, a lone surrogate, or
            nests deeper than MAX_JSON_DEPTH.
    """
    try:
        text = data.decode("utf-8")
        value = _DECODER.decode(text)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc

    if not isinstance(value, dict):
        raise ValueError("JSON text is not an object")

    # Counting brackets is cheap and spares almost every token the walk.
    brackets = text.count("{") + text.count("[")
    if brackets > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise ValueError("JSON nested too deeply")

    if _SURROGATE_ESCAPE.search(text):
        # Encoding fails with UnicodeEncodeError, a ValueError, on a lone one.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise ValueError("duplicate member name")
        members[name] = value
    return members


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _deeper_than(value: dict[str, Any], limit: int) -> bool:
    pending: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True

        children = item.values() if isinstance(item, dict) else item
        nested = (child for child in children if isinstance(child, dict | list))
        pending.extend((child, depth + 1) for child in nested)
    return False


# Made once: json.loads would build a decoder for every call with hooks.
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_unique_members, parse_constant=_refuse_constant
)
