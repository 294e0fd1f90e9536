"""Reading a trust configuration file: strict YAML and ``${NAME}`` variables.

Two rules keep a file from meaning something other than it says: a mapping
that names a key twice is refused (YAML would quietly keep the last one, so
a second ``condition:`` could replace the first), and variables are replaced
inside string values after parsing, so a variable's value is always data
and never adds keys or structure.

Three more keep reading it cheap and the result plain data, as it is stored
in etcd as JSON: every mapping key is text; aliases (``*name``) are
refused, since one could repeat a node exponentially often or make it
contain itself; and nesting stops at MAX_DEPTH levels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from wif.errors import ConfigError

_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")

#: The deepest nesting of mappings and sequences read, the document being 1.
MAX_DEPTH = 64


def _line(node: yaml.Node | yaml.Event) -> int:
    mark = node.start_mark
    return int(mark.line) + 1 if mark is not None else 0


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses aliases and nesting beyond MAX_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        next_event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(next_event, yaml.AliasEvent):
            line = _line(next_event)
            raise ConfigError(f"line {line}: aliases (*name) are not accepted")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = _line(next_event)
                raise ConfigError(f"line {line}: nested deeper than {MAX_DEPTH}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> Any:
    seen: set[str] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, str):
            raise ConfigError(f"line {_line(key_node)}: a key must be text")
        if key in seen:
            raise ConfigError(f"line {_line(key_node)}: the key {key!r} is given twice")
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def parse_yaml(text: str, where: str) -> Any:
    """Parses YAML text strictly; raises ``ConfigError`` naming ``where``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc


def expand_variables(value: Any, environ: Mapping[str, str]) -> Any:
    """Replaces ``${NAME}`` in every string value with the variable NAME.

    Raises ``ConfigError`` for a variable that is not set, so a template is
    never applied half filled in.
    """
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: _lookup(m.group(1), environ), value)
    if isinstance(value, list):
        return [expand_variables(item, environ) for item in value]
    if isinstance(value, dict):
        return {k: expand_variables(v, environ) for k, v in value.items()}
    return value


def _lookup(name: str, environ: Mapping[str, str]) -> str:
    if name not in environ:
        raise ConfigError(f"variable ${{{name}}} is not set")
    return environ[name]
