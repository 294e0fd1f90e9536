"""Following the trust configuration in etcd, keeping the last good one.

Every service holds a :class:`TrustFollower`. It watches the pointer to the
version in force (:mod:`wif.trust.stored`), loads each version it names,
and swaps it in whole. Parsing and validating a version, and whatever the
service derives from it (its ``prepare`` step), run in a worker thread, so
a large configuration does not stall the service's requests; only the swap
itself runs on the event loop. Full garbage collections are deferred
meanwhile and what was built is frozen (:mod:`wif.collector`), so they do
not stall requests either. Documents unchanged since the configuration in
force are not parsed again, and those of a replaced configuration are freed
a few at a time in a worker thread. A version that fails validation is
logged and reported on health while the last good one stays in force; while
etcd is unreachable the last good one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Mapping

from wif.audit import AuditLog
from wif.collector import long_lived_build
from wif.errors import ConfigError, TemporarilyUnavailable
from wif.store import EtcdStore, Snapshot, StoreUnavailable
from wif.trust.config import TrustConfig, from_etcd_items, gradual_release
from wif.trust.stored import trust_versions

log = logging.getLogger(__name__)

# Reads of a newly named version are retried while etcd does not answer,
# with a backoff from 0.2 to 5 seconds, for about two and a half minutes:
# the pointer's watch names a version once, so giving up means waiting for
# the next apply.
_READ_ATTEMPTS = 35
_READ_RETRY_FIRST_SECONDS = 0.2
_READ_RETRY_MAX_SECONDS = 5.0

# A replaced configuration's documents are freed once no request holds it,
# or after waiting this long for the last ones, 0.1 s at a time.
_RELEASE_WAITS = 20
_RELEASE_WAIT_SECONDS = 0.1

#: Puts what a service derived from a configuration in force, on the loop.
Install = Callable[[], None]

#: Derives a service's state from a configuration, in a worker thread.
Prepare = Callable[[TrustConfig], Install | None]


class TrustFollower:
    """Holds the current trust configuration and follows its changes.

    ``prepare`` sees each valid version, in a worker thread, before it is
    put in force: it builds what the service derives from it without
    touching what requests use, and returns the step that swaps that in
    (or None). That step runs on the event loop at the moment the version
    goes in force, so it must be cheap and must not fail. If ``prepare``
    raises ``ConfigError`` the version is refused like an invalid one.
    """

    def __init__(
        self,
        store: EtcdStore,
        prepare: Prepare | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._store = store
        self._prepare = prepare
        self._audit = audit
        self._versions = trust_versions(store)
        self._version: str | None = None
        self._current: TrustConfig | None = None
        self._changed = asyncio.Condition()
        self._releases: set[asyncio.Task[None]] = set()
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
        await self._store.follow_prefix(self._versions.pointer_key, self._on_pointer)

    async def _on_pointer(self, snapshot: Snapshot) -> None:
        named = snapshot.items.get(self._versions.pointer_key)
        if named is None or named.decode() == self._version:
            return
        version = named.decode()
        items = await self._read(version)
        if items is None:
            return
        if not items:
            # Newer applies deleted it already; their pointer move follows.
            log.info("version %s is gone before it was loaded", version)
            return
        self._version = version
        await self._load(items, snapshot.revision)

    async def _read(self, version: str) -> Mapping[str, bytes] | None:
        for attempt in range(_READ_ATTEMPTS):
            try:
                return await self._versions.read_version(version)
            except StoreUnavailable as error:
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                log.log(level, "retrying to read version %s: %s", version, error)
                delay = _READ_RETRY_FIRST_SECONDS * 2 ** min(attempt, 5)
                await asyncio.sleep(min(delay, _READ_RETRY_MAX_SECONDS))
        self.last_error = f"could not read version {version} from etcd"
        log.error("gave up reading version %s; waiting for the next", version)
        return None

    async def _load(self, items: Mapping[str, bytes], revision: int) -> None:
        try:
            config, install = await asyncio.to_thread(self._build, items, revision)
        except ConfigError as error:
            self.last_error = error.message
            log.error(
                "keeping the last good configuration; revision %d is invalid: %s",
                revision,
                error.message,
            )
            self._record("refused", revision, error=error.message)
            return
        except Exception:
            # A fault of the mesh's own, not of the configuration: keep the
            # last good one, say so, and let the next pointer move retry it.
            log.exception("building revision %d failed; keeping the last", revision)
            self.last_error = f"building revision {revision} failed"
            self._version = None
            self._record("refused", revision, error="internal error")
            return
        retired = self._retire()
        if install is not None:
            install()
        self._current = config
        self.last_error = None
        self._record("ok", revision)
        log.info(
            "trust configuration revision %d in force",
            revision,
            extra={"fields": {"config_revision": revision}},
        )
        async with self._changed:
            self._changed.notify_all()
        if retired is not None:
            # In the background: a request still holding the old version
            # must not hold up the next one.
            release = asyncio.create_task(self._release(*retired))
            self._releases.add(release)
            release.add_done_callback(self._releases.discard)

    def _retire(self) -> tuple[weakref.ref[TrustConfig], Callable[[], None]] | None:
        """Holds on to the documents of the configuration about to be
        replaced, so that replacing it frees only its indexes."""
        if self._current is None:
            return None
        return weakref.ref(self._current), gradual_release(self._current)

    @staticmethod
    async def _release(
        retired: weakref.ref[TrustConfig], release: Callable[[], None]
    ) -> None:
        """Frees a replaced configuration's documents in a worker thread, once
        the requests that still held it are done (or after a bounded wait)."""
        for _ in range(_RELEASE_WAITS):
            if retired() is None:
                break
            await asyncio.sleep(_RELEASE_WAIT_SECONDS)
        await asyncio.to_thread(release)

    def _build(
        self, items: Mapping[str, bytes], revision: int
    ) -> tuple[TrustConfig, Install | None]:
        """Runs in a worker thread: the configuration and the service's state."""
        with long_lived_build():
            config = from_etcd_items(items, revision, self._current)
            install = self._prepare(config) if self._prepare is not None else None
        return config, install

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
