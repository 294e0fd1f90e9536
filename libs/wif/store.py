"""The etcd-backed store every service reads its configuration from.

Services do not poll: :meth:`EtcdStore.follow_prefix` loads a prefix once,
then follows etcd's watch and hands the caller a full, consistent
:class:`Snapshot` after every change. A configuration written with
:meth:`EtcdStore.replace_prefix` is one etcd transaction, so a follower sees
the old set or the new set, never a mix. When etcd cannot be reached the
follower keeps quiet about it except for one warning, the caller keeps
serving its last snapshot, and following resumes from the last revision seen
once etcd is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import aetcd
import aetcd.exceptions
import aetcd.rpc
import aetcd.utils
import grpc

from wif.errors import InternalError, TemporarilyUnavailable

logger = logging.getLogger(__name__)

#: What one snapshot handler looks like; it may be a plain or an async function.
SnapshotHandler = Callable[["Snapshot"], Awaitable[None] | None]

# Everything a call to etcd may raise when etcd is down, restarting or
# unreachable. aetcd maps most gRPC statuses to its own ClientError family,
# but raw stubs (watch, txn) raise grpc.aio errors, and a stream that has
# already finished raises InvalidStateError on write.
_ETCD_ERRORS: tuple[type[BaseException], ...] = (
    aetcd.exceptions.ClientError,
    grpc.aio.AioRpcError,
    grpc.aio.UsageError,
    asyncio.InvalidStateError,
    OSError,  # includes TimeoutError
)

# What etcd answers to a request it will never accept, however often retried.
_REFUSED_CODES = frozenset(
    {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}
)

_CHANNEL_OPTIONS = {
    # gRPC's default reconnect backoff grows to two minutes; after an outage
    # dial again within seconds instead.
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 5_000,
    # Notice a connection that died without a reset (a partition) while a
    # watch is open. etcd refuses pings more frequent than every 5 seconds.
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    # A large prefix (revocations) can exceed gRPC's 4 MiB default.
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
}

# Ask etcd to cancel the watch if its member loses the cluster leader, so a
# partitioned member cannot hold a follower on stale data without an error.
_REQUIRE_LEADER = (("hasleader", "true"),)

_REPLACE_ATTEMPTS = 5

#: etcd's default cap on the operations of one transaction (``--max-txn-ops``).
DEFAULT_MAX_TXN_OPS = 128
#: etcd's default cap on the size of one request (``--max-request-bytes``).
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
# Bytes of framing around each put in a transaction, rounded up: the
# RequestOp and PutRequest headers and the key and value length prefixes.
_PUT_OVERHEAD_BYTES = 16


def transaction_problem(
    items: Mapping[str, bytes],
    *,
    max_ops: int = DEFAULT_MAX_TXN_OPS,
    max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> str | None:
    """Why writing ``items`` in one transaction would be refused, or None.

    Counts the puts only: :meth:`EtcdStore.replace_prefix` also deletes the
    keys that are no longer wanted, in the same transaction.
    """
    size = sum(
        len(_encode(key)) + len(value) + _PUT_OVERHEAD_BYTES
        for key, value in items.items()
    )
    if len(items) > max_ops:
        return (
            f"{len(items)} documents exceed the store's limit of {max_ops} "
            "operations in one transaction (etcd --max-txn-ops)"
        )
    if size > max_bytes:
        return (
            f"{size} bytes exceed the store's limit of {max_bytes} bytes in one "
            "transaction (etcd --max-request-bytes)"
        )
    return None


class StoreUnavailable(TemporarilyUnavailable):
    """etcd could not be reached or did not answer in time."""

    default_reason = "CONFIG_STORE_UNAVAILABLE"


class StoreConflict(TemporarilyUnavailable):
    """Concurrent writers kept changing a prefix that was being replaced."""

    default_reason = "CONFIG_STORE_CONFLICT"


class StoreRefused(InternalError):
    """etcd refused a request as invalid, for instance too many operations."""

    default_reason = "CONFIG_STORE_REFUSED"


@dataclass(frozen=True)
class Snapshot:
    """Every key under a prefix as it stood at one etcd revision."""

    revision: int
    items: Mapping[str, bytes]


class EtcdStore:
    """An asyncio client for the shared etcd, used by every service.

    ``endpoint`` is ``host:port`` or ``http://host:port``; ``timeout`` bounds
    every call in seconds. Calls raise :class:`StoreUnavailable` when etcd
    cannot answer. Keys are ``str`` (UTF-8), values ``bytes``.
    """

    def __init__(self, endpoint: str, *, timeout: float = 5.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
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
        with _unavailable_on_error("connect"):
            await self._client.connect()

    async def close(self) -> None:
        """Close the channel; following loops close their own when cancelled."""
        client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client)

    async def __aenter__(self) -> EtcdStore:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key``, or None if it does not exist."""
        client = await self._connected()
        with _unavailable_on_error("read a key"):
            found = await client.get(_encode(key))
        return None if found is None else bytes(found.value)

    async def get_prefix(self, prefix: str) -> Snapshot:
        """Return every key under ``prefix`` and the revision they were read at."""
        client = await self._connected()
        with _unavailable_on_error("read a prefix"):
            return await _read_prefix(client, prefix)

    async def put(self, key: str, value: bytes, *, lease: int | None = None) -> int:
        """Set ``key`` to ``value`` (bound to ``lease``); return the new revision."""
        client = await self._connected()
        with _unavailable_on_error("write a key"):
            written = await client.put(_encode(key), value, lease=lease)
        return int(written.header.revision)

    async def delete(self, key: str) -> bool:
        """Delete ``key``; return whether it existed."""
        client = await self._connected()
        with _unavailable_on_error("delete a key"):
            deleted = await client.delete(_encode(key))
        return deleted is not None

    async def put_if_absent(
        self, key: str, value: bytes, *, lease: int | None = None
    ) -> bool:
        """Create ``key`` (bound to ``lease``) unless it exists; return whether
        this call created it."""
        client = await self._connected()
        create = client.transactions.create(_encode(key)) == 0
        put = client.transactions.put(_encode(key), value, lease=lease)
        with _unavailable_on_error("create a key"):
            # aetcd iterates ``failure`` unconditionally: it must be a list.
            created, _ = await client.transaction(
                compare=[create], success=[put], failure=[]
            )
        return bool(created)

    async def grant_lease(self, ttl: int) -> int:
        """Grant a lease of ``ttl`` seconds and return its id."""
        client = await self._connected()
        with _unavailable_on_error("grant a lease"):
            lease = await client.lease(ttl)
        return int(lease.id)

    async def refresh_lease(self, lease_id: int) -> bool:
        """Keep a lease alive once; return False if it has already expired."""
        client = await self._connected()
        with _unavailable_on_error("refresh a lease"):
            reply = await client.refresh_lease(lease_id)
        return reply is not None and int(reply.TTL) > 0

    async def revoke_lease(self, lease_id: int) -> None:
        """Revoke a lease at once, deleting every key bound to it."""
        client = await self._connected()
        with _unavailable_on_error("revoke a lease"):
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
        request = _update_request(prefix, revision, puts, deletes)
        with _unavailable_on_error("update a prefix"):
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
            with _unavailable_on_error("replace a prefix"):
                current = await _read_prefix(client, prefix)
                request = _replace_request(prefix, current, items)
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
        follower = _Follower(self, prefix, on_snapshot, retry_initial, retry_max)
        await follower.run()

    def _new_client(self) -> Any:
        return aetcd.Client(
            host=self._host,
            port=self._port,
            timeout=self.timeout,
            options=_CHANNEL_OPTIONS,
        )

    async def _connected(self) -> Any:
        await self.connect()
        return self._client


class _Follower:
    """The state of one ``follow_prefix`` loop; it owns its etcd client."""

    def __init__(
        self,
        store: EtcdStore,
        prefix: str,
        on_snapshot: SnapshotHandler,
        retry_initial: float,
        retry_max: float,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.on_snapshot = on_snapshot
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.delay = retry_initial
        self.items: dict[str, bytes] | None = None  # None: load the prefix
        self.revision = 0
        self.lost = False

    async def run(self) -> None:
        try:
            while True:
                await self._follow_once()
        finally:
            if self.lost:
                self.store._followers_in_outage -= 1

    async def _follow_once(self) -> None:
        # A new client per attempt: a channel that lived through an outage
        # can sit in gRPC's reconnect backoff long after etcd is back.
        client = self.store._new_client()
        try:
            await client.connect()
            if self.items is None:
                await self._load(client)
            await self._watch(client)
        except _ETCD_ERRORS as error:
            self._mark_lost(error)
            await asyncio.sleep(self.delay)
            self.delay = min(self.delay * 2, self.retry_max)
        finally:
            await _close_quietly(client)

    async def _load(self, client: Any) -> None:
        snapshot = await _read_prefix(client, self.prefix)
        self.items = dict(snapshot.items)
        self._advance(snapshot.revision)
        await self._deliver()

    async def _watch(self, client: Any) -> None:
        """Apply watch responses until the stream fails or history is compacted."""
        call = aetcd.rpc.WatchStub(client.channel).Watch(metadata=_REQUIRE_LEADER)
        try:
            await call.write(self._create_request())
            first = await asyncio.wait_for(call.read(), self.store.timeout)
            await self._handle(first)
            while self.items is not None:
                await self._handle(await call.read())
        finally:
            call.cancel()

    def _create_request(self) -> Any:
        prefix = _encode(self.prefix)
        create = aetcd.rpc.WatchCreateRequest(
            key=prefix,
            range_end=aetcd.utils.prefix_range_end(prefix),
            start_revision=self.revision + 1,
            progress_notify=True,
        )
        return aetcd.rpc.WatchRequest(create_request=create)

    async def _handle(self, response: Any) -> None:
        if response is grpc.aio.EOF:
            raise _WatchLost("etcd ended the watch stream")

        if response.compact_revision:
            logger.info(
                "etcd compacted %r past revision %d; reloading the prefix",
                self.prefix,
                self.revision,
            )
            self.items = None
            return

        if response.canceled:
            raise _WatchLost(f"etcd cancelled the watch: {response.cancel_reason}")

        if response.created:
            self._mark_recovered()
        if response.events:
            self._apply(response.events)
            await self._deliver()
        elif not response.created:
            # A progress notification: nothing changed up to this revision.
            self._advance(int(response.header.revision))

    def _apply(self, events: Any) -> None:
        assert self.items is not None
        for event in events:
            key = _decode(event.kv.key)
            if event.type == aetcd.rpc.Event.DELETE:
                self.items.pop(key, None)
            else:
                self.items[key] = bytes(event.kv.value)
        self._advance(max(int(event.kv.mod_revision) for event in events))

    def _advance(self, revision: int) -> None:
        self.revision = max(self.revision, revision)
        self.store._last_revision = max(self.store._last_revision, self.revision)

    async def _deliver(self) -> None:
        assert self.items is not None
        snapshot = Snapshot(self.revision, MappingProxyType(dict(self.items)))
        try:
            result = self.on_snapshot(snapshot)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception(
                "the handler of %r failed on revision %d", self.prefix, self.revision
            )

    def _mark_lost(self, error: BaseException) -> None:
        if self.lost:
            logger.debug(
                "etcd still unreachable for %r: %s", self.prefix, _describe(error)
            )
            return

        self.lost = True
        self.store._followers_in_outage += 1
        logger.warning(
            "lost etcd at %s while following %r; keeping revision %d until it "
            "returns: %s",
            self.store.endpoint,
            self.prefix,
            self.revision,
            _describe(error),
        )

    def _mark_recovered(self) -> None:
        self.delay = self.retry_initial
        if not self.lost:
            return

        self.lost = False
        self.store._followers_in_outage -= 1
        logger.info(
            "etcd at %s is back; following %r from revision %d",
            self.store.endpoint,
            self.prefix,
            self.revision,
        )


class _WatchLost(ConnectionError):
    """The watch stream ended or etcd cancelled it; follow again."""


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``host:port`` or ``http://host:port`` into host and port.

    An IPv6 host keeps its brackets (``[::1]``), as gRPC targets need them.

    Raises:
        ValueError: the endpoint has another scheme, a path, or no port.
    """
    address = endpoint.removeprefix("http://")
    parts = urlsplit(f"//{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or not parts.hostname or parts.netloc != address:
        raise ValueError(f"etcd endpoint {endpoint!r} is not host:port")
    if parts.username is not None:
        raise ValueError(f"etcd endpoint {endpoint!r} is not host:port")
    return address.rsplit(":", 1)[0], port


async def _read_prefix(client: Any, prefix: str) -> Snapshot:
    if not prefix:
        raise ValueError("the prefix must not be empty")

    found = await client.get_prefix(_encode(prefix))
    items = {_decode(kv.key): bytes(kv.value) for kv in found.kvs}
    return Snapshot(int(found.header.revision), MappingProxyType(items))


def _update_request(
    prefix: str, revision: int, puts: Mapping[str, bytes], deletes: Iterable[str]
) -> Any:
    rpc = aetcd.rpc
    key = _encode(prefix)
    unchanged = rpc.Compare(
        key=key,
        range_end=aetcd.utils.prefix_range_end(key),
        target=rpc.Compare.MOD,
        result=rpc.Compare.LESS,
        mod_revision=revision + 1,
    )
    ops = [
        rpc.RequestOp(request_put=rpc.PutRequest(key=_encode(k), value=v))
        for k, v in puts.items()
    ]
    ops += [
        rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=_encode(k)))
        for k in deletes
    ]
    return rpc.TxnRequest(compare=[unchanged], success=ops)


def _replace_request(prefix: str, current: Snapshot, items: Mapping[str, bytes]) -> Any:
    rpc = aetcd.rpc
    key = _encode(prefix)
    # Every key under the prefix, including any created since the read, must
    # be no newer than the read; otherwise someone else wrote meanwhile.
    unchanged = rpc.Compare(
        key=key,
        range_end=aetcd.utils.prefix_range_end(key),
        target=rpc.Compare.MOD,
        result=rpc.Compare.LESS,
        mod_revision=current.revision + 1,
    )
    puts = [
        rpc.RequestOp(request_put=rpc.PutRequest(key=_encode(k), value=v))
        for k, v in items.items()
    ]
    deletes = [
        rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=_encode(k)))
        for k in current.items
        if k not in items
    ]
    return rpc.TxnRequest(compare=[unchanged], success=puts + deletes)


@contextlib.contextmanager
def _unavailable_on_error(action: str) -> Iterator[None]:
    try:
        yield
    except _ETCD_ERRORS as error:
        if _is_refusal(error):
            detail = _describe(error)
            raise StoreRefused(f"etcd refused to {action}: {detail}") from error
        raise StoreUnavailable(f"the configuration store could not {action}") from error


def _is_refusal(error: BaseException) -> bool:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code() in _REFUSED_CODES
    refusals = (
        aetcd.exceptions.InvalidArgumentError,
        aetcd.exceptions.PreconditionFailedError,
    )
    return isinstance(error, refusals)


async def _close_quietly(client: Any) -> None:
    try:
        await client.close()
    except _ETCD_ERRORS as error:
        logger.debug("closing an etcd client failed: %s", error)


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error) or type(error).__name__


def _encode(key: str) -> bytes:
    # surrogateescape lets a key that is not UTF-8 round-trip through str.
    return key.encode("utf-8", "surrogateescape")


def _decode(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")
