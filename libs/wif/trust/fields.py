"""Typed reading of configuration documents with errors that name the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wif.errors import ConfigError


class Fields:
    """Reads the members of one document, naming ``where`` in every error.

    Members that the reader never asked for are refused by :meth:`done`, so a
    misspelt setting stops the configuration instead of being ignored.
    """

    def __init__(self, doc: Any, where: str) -> None:
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{where}: must be a mapping")
        self._doc = doc
        self._where = where
        self._seen: set[str] = set()

    def path(self, name: str) -> str:
        """The dotted path of member ``name``, for error messages."""
        return f"{self._where}.{name}"

    def raw(self, name: str) -> Any:
        """The member as written, or None when absent."""
        self._seen.add(name)
        return self._doc.get(name)

    def string(self, name: str, default: str | None = None) -> str:
        """A required (or defaulted) non-empty string."""
        value = self.raw(name)
        if value is None and default is not None:
            return default
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.path(name)}: must be a non-empty string")
        return value

    def optional_string(self, name: str) -> str | None:
        """A string, or None when absent."""
        value = self.raw(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.path(name)}: must be a non-empty string")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An integer within ``[low, high]``."""
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.path(name)}: must be an integer")
        if not low <= value <= high:
            raise ConfigError(f"{self.path(name)}: must be between {low} and {high}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        """A boolean."""
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self.path(name)}: must be true or false")
        return value

    def strings(self, name: str, *, required: bool = False) -> tuple[str, ...]:
        """A list of distinct non-empty strings."""
        value = self.raw(name)
        if value is None:
            value = []
        if not isinstance(value, list) or not all(
            isinstance(item, str) and item for item in value
        ):
            raise ConfigError(f"{self.path(name)}: must be a list of strings")
        if len(set(value)) != len(value):
            raise ConfigError(f"{self.path(name)}: holds a value twice")
        if required and not value:
            raise ConfigError(f"{self.path(name)}: must not be empty")
        return tuple(value)

    def mapping(self, name: str) -> Mapping[str, Any]:
        """A mapping, empty when absent."""
        value = self.raw(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self.path(name)}: must be a mapping")
        return value

    def done(self) -> None:
        """Refuses members that no reader asked for."""
        unknown = sorted(set(self._doc) - self._seen)
        if unknown:
            raise ConfigError(f"{self._where}: unknown setting {unknown[0]!r}")
