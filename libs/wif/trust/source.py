"""Reading a trust configuration file: strict YAML and ``${NAME}`` variables.

Two rules keep a file from meaning something other than it says: a mapping
that names a key twice is refused (YAML would quietly keep the last one, so
a second ``condition:`` could replace the first), and variables are replaced
inside string values after parsing, so a variable's value is always data
and never adds keys or structure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from wif.errors import ConfigError

_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys in a mapping."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise ConfigError(f"line {line}: the key {key!r} is given twice")
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
