"""What the store's parts share: errors, snapshots, key encoding, etcd errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import aetcd
import aetcd.exceptions
import grpc

from wif.errors import InternalError, TemporarilyUnavailable

logger = logging.getLogger("wif.store")

#: What one snapshot handler looks like; it may be a plain or an async function.
SnapshotHandler = Callable[["Snapshot"], Awaitable[None] | None]

# Everything a call to etcd may raise when etcd is down, restarting or
# unreachable. aetcd maps most gRPC statuses to its own ClientError family,
# but raw stubs (watch, txn) raise grpc.aio errors, and a stream that has
# already finished raises InvalidStateError on write.
ETCD_ERRORS: tuple[type[BaseException], ...] = (
    aetcd.exceptions.ClientError,
    grpc.aio.AioRpcError,
    grpc.aio.UsageError,
    asyncio.InvalidStateError,
    OSError,  # includes TimeoutError
)

# What etcd answers to a request it will never accept, however often retried.
REFUSED_CODES = frozenset(
    {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}
)

CHANNEL_OPTIONS = {
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
REQUIRE_LEADER = (("hasleader", "true"),)

#: etcd's default cap on the operations of one transaction (``--max-txn-ops``).
DEFAULT_MAX_TXN_OPS = 128
#: etcd's default cap on the size of one request (``--max-request-bytes``).
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
# Bytes of framing around each put in a transaction, rounded up: the
# RequestOp and PutRequest headers and the key and value length prefixes.
_PUT_OVERHEAD_BYTES = 16
# Bytes kept free in each request for the transaction's own framing and any
# compare or extra operation sent with the puts.
_REQUEST_HEADROOM_BYTES = 4096


def request_size(key: str, value: bytes) -> int:
    """The bytes one put of ``key`` adds to a transaction request, rounded up."""
    return len(encode(key)) + len(value) + _PUT_OVERHEAD_BYTES


def oversized_document(
    items: Mapping[str, bytes], *, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES
) -> str | None:
    """Why etcd would refuse to store ``items`` however they are chunked, or None.

    Chunked writes split any number of documents across transactions, but
    one document must still fit in a single request.
    """
    budget = max_bytes - _REQUEST_HEADROOM_BYTES
    for key, value in items.items():
        size = request_size(key, value)
        if size > budget:
            return (
                f"the document {key} takes {size} bytes, over the store's limit "
                f"of {budget} bytes for one document (etcd --max-request-bytes "
                f"{max_bytes} less {_REQUEST_HEADROOM_BYTES} for the request)"
            )
    return None


def chunk_items(
    items: Mapping[str, bytes],
    *,
    max_ops: int = DEFAULT_MAX_TXN_OPS,
    max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> list[dict[str, bytes]]:
    """Split ``items`` into groups that each fit one etcd transaction.

    Each group holds at most ``max_ops`` puts and at most ``max_bytes`` less
    a little headroom for the request's own framing, in the order given.

    Raises:
        ValueError: ``max_ops`` is below 1, or one document alone is too large
            (see :func:`oversized_document`).
    """
    if max_ops < 1:
        raise ValueError(f"max_ops must be at least 1, not {max_ops}")
    problem = oversized_document(items, max_bytes=max_bytes)
    if problem is not None:
        raise ValueError(problem)

    budget = max_bytes - _REQUEST_HEADROOM_BYTES
    chunks: list[dict[str, bytes]] = []
    chunk: dict[str, bytes] = {}
    size = 0
    for key, value in items.items():
        item_size = request_size(key, value)
        if chunk and (len(chunk) == max_ops or size + item_size > budget):
            chunks.append(chunk)
            chunk, size = {}, 0
        chunk[key] = value
        size += item_size
    if chunk:
        chunks.append(chunk)
    return chunks


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


async def read_prefix(client: Any, prefix: str) -> Snapshot:
    if not prefix:
        raise ValueError("the prefix must not be empty")

    found = await client.get_prefix(encode(prefix))
    items = {decode(kv.key): bytes(kv.value) for kv in found.kvs}
    return Snapshot(int(found.header.revision), MappingProxyType(items))


@contextlib.contextmanager
def unavailable_on_error(action: str) -> Iterator[None]:
    try:
        yield
    except ETCD_ERRORS as error:
        if is_refusal(error):
            detail = describe(error)
            raise StoreRefused(f"etcd refused to {action}: {detail}") from error
        raise StoreUnavailable(f"the configuration store could not {action}") from error


def is_refusal(error: BaseException) -> bool:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code() in REFUSED_CODES
    refusals = (
        aetcd.exceptions.InvalidArgumentError,
        aetcd.exceptions.PreconditionFailedError,
    )
    return isinstance(error, refusals)


async def close_quietly(client: Any) -> None:
    try:
        await client.close()
    except ETCD_ERRORS as error:
        logger.debug("closing an etcd client failed: %s", error)


def describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error) or type(error).__name__


def encode(key: str) -> bytes:
    # surrogateescape lets a key that is not UTF-8 round-trip through str.
    return key.encode("utf-8", "surrogateescape")


def decode(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")
