"""Following the trust configuration in etcd, keeping the last good one.

Every service holds a :class:`TrustFollower`. It loads the configuration,
follows changes through an etcd watch, and swaps in each new version whole.
A version that fails validation is logged and reported on health while the
last good one stays in force; while etcd is unreachable the last good one
keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from wif.audit import AuditLog
from wif.errors import ConfigError, TemporarilyUnavailable
from wif.store import EtcdStore, Snapshot
from wif.trust.config import TRUST_PREFIX, TrustConfig, from_etcd_items

log = logging.getLogger(__name__)


class TrustFollower:
    """Holds the current trust configuration and follows its changes.

    ``on_change`` sees each valid version before it is put in force; if it
    raises ``ConfigError`` the version is refused like an invalid one.
    """

    def __init__(
        self,
        store: EtcdStore,
        on_change: Callable[[TrustConfig], None] | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._store = store
        self._on_change = on_change
        self._audit = audit
        self._current: TrustConfig | None = None
        self._changed = asyncio.Condition()
        self.last_error: str | None = None

    @property
    def current(self) -> TrustConfig | None:
        """The configuration in force, or None before the first good one."""
        return self._current

    def require(self) -> TrustConfig:
        """The configuration in force; raises when none has been loaded."""
        if self._current is None:
            raise TemporarilyUnavailable(
                "no trust configuration is loaded yet", reason="NO_CONFIGURATION"
            )
        return self._current

    async def run(self) -> None:
        """Follows the configuration until cancelled."""
        await self._store.follow_prefix(TRUST_PREFIX, self._on_snapshot)

    async def _on_snapshot(self, snapshot: Snapshot) -> None:
        if not snapshot.items:
            return
        try:
            config = from_etcd_items(snapshot.items, snapshot.revision)
            if self._on_change is not None:
                self._on_change(config)
        except ConfigError as error:
            self.last_error = error.message
            log.error(
                "keeping the last good configuration; revision %d is invalid: %s",
                snapshot.revision,
                error.message,
            )
            self._record("refused", snapshot.revision, error=error.message)
            return
        self._current = config
        self.last_error = None
        self._record("ok", snapshot.revision)
        log.info(
            "trust configuration revision %d in force",
            snapshot.revision,
            extra={"fields": {"config_revision": snapshot.revision}},
        )
        async with self._changed:
            self._changed.notify_all()

    def _record(self, outcome: str, revision: int, **fields: str) -> None:
        if self._audit is not None:
            self._audit.record_nowait(
                "config.changed", outcome, config_revision=revision, **fields
            )

    async def wait_until_loaded(self, timeout: float) -> TrustConfig:
        """Waits for a first good configuration; raises TimeoutError."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self._current is not None)
        return self.require()
