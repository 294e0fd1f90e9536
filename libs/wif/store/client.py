"""The asyncio etcd client every service uses: reads, writes, transactions, leases."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aetcd
import aetcd.rpc
import aetcd.utils

from wif.store.base import (
    CHANNEL_OPTIONS,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
    Snapshot,
    SnapshotHandler,
    StoreConflict,
    StoreRefused,
    close_quietly,
    decode,
    encode,
    parse_endpoint,
    read_prefix,
    unavailable_on_error,
)
from wif.store.follow import Follower
from wif.store.requests import put_ops, replace_request, update_request


@dataclass(frozen=True)
class VersionedValue:
    """One key's value (None if absent), its modification revision (0 if
    absent) and the revision the read saw."""

    value: bytes | None
    mod_revision: int
    read_revision: int


_REPLACE_ATTEMPTS = 5
# A bound on the pages of one paged read, far above any real prefix.
_MAX_PAGES = 100_000


class EtcdStore:
    """An asyncio client for the shared etcd, used by every service.

    ``endpoint`` is ``host:port`` or ``http://host:port``; ``timeout`` bounds
    every call in seconds. Calls raise :class:`StoreUnavailable` when etcd
    cannot answer. Keys are ``str`` (UTF-8), values ``bytes``.
    ``max_txn_ops`` and ``max_request_bytes`` are the server's caps on one
    transaction (etcd's ``--max-txn-ops`` and ``--max-request-bytes``,
    etcd's defaults unless given); chunked writes stay within them.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 5.0,
        max_txn_ops: int = DEFAULT_MAX_TXN_OPS,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.max_txn_ops = max_txn_ops
        self.max_request_bytes = max_request_bytes
        self._host, self._port = parse_endpoint(endpoint)
        self._client: Any = None
        self._followers_in_outage = 0
        self._last_revision = 0

    @property
    def healthy(self) -> bool:
        """False while any ``follow_prefix`` of this store has lost etcd."""
        return self._followers_in_outage == 0

    @property
    def last_revision(self) -> int:
        """The newest etcd revision a ``follow_prefix`` of this store has seen."""
        return self._last_revision

    async def connect(self) -> None:
        """Open the channel to etcd; calls also open it on first use."""
        if self._client is None:
            self._client = self._new_client()
        with unavailable_on_error("connect"):
            await self._client.connect()

    async def close(self) -> None:
        """Close the channel; following loops close their own when cancelled."""
        client, self._client = self._client, None
        if client is not None:
            await close_quietly(client)

    async def __aenter__(self) -> EtcdStore:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key``, or None if it does not exist."""
        client = await self._connected()
        with unavailable_on_error("read a key"):
            found = await client.get(encode(key))
        return None if found is None else bytes(found.value)

    async def get_prefix(self, prefix: str) -> Snapshot:
        """Return every key under ``prefix`` and the revision they were read at."""
        client = await self._connected()
        with unavailable_on_error("read a prefix"):
            return await read_prefix(client, prefix)

    async def get_versioned(self, key: str) -> VersionedValue:
        """Return ``key``'s value and modification revision, and the read's
        revision; a missing key has value None and modification revision 0."""
        client = await self._connected()
        request = aetcd.rpc.RangeRequest(key=encode(key))
        with unavailable_on_error("read a key"):
            response = await client.kvstub.Range(request, timeout=self.timeout)
        read_at = int(response.header.revision)
        if not response.kvs:
            return VersionedValue(None, 0, read_at)
        kv = response.kvs[0]
        return VersionedValue(bytes(kv.value), int(kv.mod_revision), read_at)

    async def get_prefix_paged(
        self, prefix: str, page_size: int = 10_000, *, renamed: str | None = None
    ) -> Snapshot:
        """Like :meth:`get_prefix`, read in pages of ``page_size`` keys.

        All pages are read at the first page's revision, so the result is
        one consistent snapshot; between pages the event loop serves others.
        etcd counts the whole remaining range for every page, so small pages
        make a large prefix slow to read: 10,000 keys of a few hundred bytes
        read 200,000 keys five times faster than 1,000. With ``renamed``,
        the keys returned start with it instead of ``prefix`` (renaming
        page by page does not hold up the event loop as renaming the whole
        snapshot afterwards would).
        """
        if not prefix:
            raise ValueError("the prefix must not be empty")
        client = await self._connected()
        start, end = encode(prefix), aetcd.utils.prefix_range_end(encode(prefix))
        items: dict[str, bytes] = {}
        head, cut = (prefix if renamed is None else renamed), len(prefix)
        revision = 0
        for _ in range(_MAX_PAGES):
            request = aetcd.rpc.RangeRequest(
                key=start, range_end=end, limit=page_size, revision=revision
            )
            with unavailable_on_error("read a prefix"):
                response = await client.kvstub.Range(request, timeout=self.timeout)
            revision = revision or int(response.header.revision)
            items.update(
                (head + decode(kv.key)[cut:], bytes(kv.value)) for kv in response.kvs
            )
            if not response.more:
                return Snapshot(revision, MappingProxyType(items))
            start = bytes(response.kvs[-1].key) + b"\0"
        raise StoreRefused(f"the prefix {prefix!r} holds more than {_MAX_PAGES} pages")

    async def put_all(self, items: Mapping[str, bytes]) -> int:
        """Write ``items`` in one transaction; return its revision.

        Raises:
            StoreRefused: etcd refused the transaction, e.g. as too large.
            StoreUnavailable: etcd could not be reached.
        """
        client = await self._connected()
        request = aetcd.rpc.TxnRequest(success=put_ops(items))
        with unavailable_on_error("write keys"):
            response = await client.kvstub.Txn(request, timeout=self.timeout)
        return int(response.header.revision)

    async def put_if_mod_revision(
        self, key: str, value: bytes, mod_revision: int
    ) -> int | None:
        """Set ``key`` to ``value`` provided it was last modified at
        ``mod_revision`` (0: it does not exist); return the new revision, or
        None when someone else wrote ``key`` meanwhile."""
        rpc = aetcd.rpc
        unchanged = rpc.Compare(
            key=encode(key),
            target=rpc.Compare.MOD,
            result=rpc.Compare.EQUAL,
            mod_revision=mod_revision,
        )
        request = rpc.TxnRequest(compare=[unchanged], success=put_ops({key: value}))
        client = await self._connected()
        with unavailable_on_error("swap a key"):
            response = await client.kvstub.Txn(request, timeout=self.timeout)
        return int(response.header.revision) if response.succeeded else None

    async def delete_prefixes(self, prefixes: Iterable[str]) -> None:
        """Delete every key under each of ``prefixes``, in one transaction."""
        rpc = aetcd.rpc
        ops = []
        for prefix in prefixes:
            if not prefix:
                raise ValueError("the prefix must not be empty")
            key = encode(prefix)
            end = aetcd.utils.prefix_range_end(key)
            ops.append(
                rpc.RequestOp(
                    request_delete_range=rpc.DeleteRangeRequest(key=key, range_end=end)
                )
            )
        client = await self._connected()
        with unavailable_on_error("delete prefixes"):
            await client.kvstub.Txn(rpc.TxnRequest(success=ops), timeout=self.timeout)

    async def put(self, key: str, value: bytes, *, lease: int | None = None) -> int:
        """Set ``key`` to ``value`` (bound to ``lease``); return the new revision."""
        client = await self._connected()
        with unavailable_on_error("write a key"):
            written = await client.put(encode(key), value, lease=lease)
        return int(written.header.revision)

    async def delete(self, key: str) -> bool:
        """Delete ``key``; return whether it existed."""
        client = await self._connected()
        with unavailable_on_error("delete a key"):
            deleted = await client.delete(encode(key))
        return deleted is not None

    async def put_if_absent(
        self, key: str, value: bytes, *, lease: int | None = None
    ) -> bool:
        """Create ``key`` (bound to ``lease``) unless it exists; return whether
        this call created it."""
        client = await self._connected()
        create = client.transactions.create(encode(key)) == 0
        put = client.transactions.put(encode(key), value, lease=lease)
        with unavailable_on_error("create a key"):
            # aetcd iterates ``failure`` unconditionally: it must be a list.
            created, _ = await client.transaction(
                compare=[create], success=[put], failure=[]
            )
        return bool(created)

    async def grant_lease(self, ttl: int) -> int:
        """Grant a lease of ``ttl`` seconds and return its id."""
        client = await self._connected()
        with unavailable_on_error("grant a lease"):
            lease = await client.lease(ttl)
        return int(lease.id)

    async def refresh_lease(self, lease_id: int) -> bool:
        """Keep a lease alive once; return False if it has already expired."""
        client = await self._connected()
        with unavailable_on_error("refresh a lease"):
            reply = await client.refresh_lease(lease_id)
        return reply is not None and int(reply.TTL) > 0

    async def revoke_lease(self, lease_id: int) -> None:
        """Revoke a lease at once, deleting every key bound to it."""
        client = await self._connected()
        with unavailable_on_error("revoke a lease"):
            await client.revoke_lease(lease_id)

    async def update_prefix_if_unchanged(
        self,
        prefix: str,
        revision: int,
        puts: Mapping[str, bytes],
        deletes: Iterable[str] = (),
    ) -> bool:
        """Write ``puts`` and delete ``deletes`` in one transaction, provided no
        key under ``prefix`` was written after ``revision``.

        A compare-and-swap over a whole prefix: read a snapshot, decide, and
        commit only if nobody changed the prefix meanwhile. Returns whether
        the transaction was applied; on False, read again and decide again.

        Raises:
            ValueError: a key lies outside ``prefix``.
            StoreRefused: etcd refused the transaction, e.g. as too large.
            StoreUnavailable: etcd could not be reached.
        """
        keys = [*puts, *deletes]
        outside = sorted(key for key in keys if not key.startswith(prefix))
        if outside:
            raise ValueError(f"keys outside the prefix {prefix!r}: {outside}")

        client = await self._connected()
        request = update_request(prefix, revision, puts, deletes)
        with unavailable_on_error("update a prefix"):
            response = await client.kvstub.Txn(request, timeout=self.timeout)
        return bool(response.succeeded)

    async def replace_prefix(self, prefix: str, items: Mapping[str, bytes]) -> int:
        """Make ``items`` exactly the keys under ``prefix`` in one transaction.

        Every other key under the prefix is deleted in the same transaction,
        so the new configuration is applied whole or not at all. Returns the
        revision of the transaction. etcd caps the operations of one
        transaction (``--max-txn-ops``, 128 by default): the puts and deletes
        together must fit.

        Raises:
            ValueError: a key of ``items`` lies outside ``prefix``.
            StoreConflict: other writers kept changing the prefix meanwhile.
            StoreRefused: etcd refused the transaction, e.g. as too large.
            StoreUnavailable: etcd could not be reached.
        """
        outside = sorted(key for key in items if not key.startswith(prefix))
        if outside:
            raise ValueError(f"keys outside the prefix {prefix!r}: {outside}")

        client = await self._connected()
        for _ in range(_REPLACE_ATTEMPTS):
            with unavailable_on_error("replace a prefix"):
                current = await read_prefix(client, prefix)
                request = replace_request(prefix, current, items)
                response = await client.kvstub.Txn(request, timeout=self.timeout)
            if response.succeeded:
                return int(response.header.revision)
        raise StoreConflict(f"the prefix {prefix!r} kept changing while replaced")

    async def follow_prefix(
        self,
        prefix: str,
        on_snapshot: SnapshotHandler,
        *,
        retry_initial: float = 0.2,
        retry_max: float = 5.0,
    ) -> None:
        """Call ``on_snapshot`` with the prefix's contents now and after each change.

        Runs until cancelled. All events of one watch response are applied
        together, so one transaction is seen at once. On any etcd error the
        loop logs one warning per outage, retries with exponential backoff
        from ``retry_initial`` to ``retry_max`` seconds on a new connection,
        and resumes from the last revision seen; if that revision was
        compacted it reloads the whole prefix. Meanwhile no snapshot arrives,
        so the caller keeps serving the last one. Errors raised by
        ``on_snapshot`` are logged and following goes on.
        """
        follower = Follower(self, prefix, on_snapshot, retry_initial, retry_max)
        await follower.run()

    def _new_client(self) -> Any:
        return aetcd.Client(
            host=self._host,
            port=self._port,
            timeout=self.timeout,
            options=CHANNEL_OPTIONS,
        )

    async def _connected(self) -> Any:
        await self.connect()
        return self._client
