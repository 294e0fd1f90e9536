"""The difference between two stored trust configurations, document by document.

Both sides are the key-value documents of :func:`wif.trust.config.to_etcd_items`
(or as read back from etcd): one document per mesh, pool, provider, audience,
workload and policy, named by its key without the trust prefix
(``providers/dev-oidc``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wif.trust.config import TRUST_PREFIX

Change = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class DocumentDiff:
    """One document that differs: ``fields`` are the dotted paths that changed."""

    document: str
    change: Change
    fields: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"document": self.document, "change": self.change, "fields": self.fields}


def diff_items(
    wanted: Mapping[str, bytes], current: Mapping[str, bytes]
) -> list[DocumentDiff]:
    """What applying ``wanted`` over ``current`` would add, remove and change.

    ``added`` is in ``wanted`` only, ``removed`` in ``current`` only; sorted
    by document name.
    """
    diffs = []
    for key in sorted(set(wanted) | set(current)):
        name = key.removeprefix(TRUST_PREFIX)
        if key not in current:
            diffs.append(DocumentDiff(name, "added"))
        elif key not in wanted:
            diffs.append(DocumentDiff(name, "removed"))
        else:
            fields = changed_fields(_load(current[key]), _load(wanted[key]))
            if fields:
                diffs.append(DocumentDiff(name, "changed", tuple(fields)))
    return diffs


def changed_fields(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where ``new`` differs from ``old``; lists compare whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        fields = []
        for name in sorted(set(old) | set(new)):
            inner = f"{path}.{name}" if path else str(name)
            if name not in old or name not in new:
                fields.append(inner)
            else:
                fields += changed_fields(old[name], new[name], inner)
        return fields
    return [] if old == new else [path or "."]


def _load(data: bytes) -> Any:
    """A stored document; one that is not JSON compares as its text."""
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")
