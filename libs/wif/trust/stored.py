"""The trust configuration in etcd: versions under TRUST_PREFIX, one in force.

The documents of :func:`wif.trust.config.to_etcd_items` are stored as one
version per apply, ``/wif/trust/versions/<id>/<kind>/<name>``, and
``/wif/trust/current`` names the version in force (see
:class:`wif.store.VersionedPrefix`). Callers keep using the logical keys,
``/wif/trust/<kind>/<name>``, in both directions.
"""

from __future__ import annotations

from collections.abc import Mapping

from wif.store import AppliedVersion, EtcdStore, Snapshot, VersionedPrefix
from wif.trust.config import TRUST_PREFIX


def trust_versions(store: EtcdStore) -> VersionedPrefix:
    """The versions of the trust configuration held in ``store``."""
    return VersionedPrefix(store, TRUST_PREFIX)


async def apply_items(store: EtcdStore, items: Mapping[str, bytes]) -> AppliedVersion:
    """Put the documents ``items`` in force as a new version, unchecked.

    Callers validate first (:func:`wif.trust.config.to_etcd_items` only
    yields valid documents). Raises as :meth:`VersionedPrefix.apply`.
    """
    return await trust_versions(store).apply(items)


async def read_items(store: EtcdStore) -> Snapshot:
    """The documents in force, at the revision they were put in force; no
    items (and revision 0) when no configuration was ever applied."""
    current = await trust_versions(store).read_current()
    return current.snapshot()
