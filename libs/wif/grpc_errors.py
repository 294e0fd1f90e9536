"""The one place where mesh errors become gRPC statuses, and back.

Servers raise :class:`~wif.errors.WifError`; :func:`handle_errors` logs the
outcome and aborts the call with a ``google.rpc.Status`` holding one
``ErrorInfo`` (UPPER_SNAKE reason, the mesh's domain, lowerCamel metadata).
Clients turn such a status back into the matching error with
:func:`error_from_rpc`. Internal faults reach the caller as INTERNAL with no
detail; the detail stays in the log.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from wif import errors
from wif.errors import ERROR_DOMAIN, WifError
from wif.metrics import RPC_CALLS, RPC_DURATION

log = logging.getLogger(__name__)

R = TypeVar("R")

_CLASSES: dict[str, type[WifError]] = {
    cls.oauth_error: cls
    for cls in (
        errors.InvalidRequest,
        errors.InvalidGrant,
        errors.InvalidToken,
        errors.UnsupportedTokenType,
        errors.InvalidTarget,
        errors.InvalidScope,
        errors.TemporarilyUnavailable,
    )
}
_OAUTH_KEY = "oauthError"


def to_status(error: WifError) -> status_pb2.Status:
    """The ``google.rpc.Status`` that reports ``error`` to a gRPC caller."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason,
        domain=ERROR_DOMAIN,
        metadata={**error.metadata, _OAUTH_KEY: error.oauth_error},
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    return status_pb2.Status(
        code=error.grpc_code.value[0], message=error.message, details=[detail]
    )


class MalformedRequest:
    """Stands in for a request message that did not decode."""


class DecodeGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Lets a message that fails to decode reach :func:`handle_errors`.

    Without it gRPC answers UNKNOWN with the decoder's exception text; with
    it the caller gets INVALID_ARGUMENT with reason MALFORMED_REQUEST.
    """

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        decode = getattr(handler, "request_deserializer", None)
        if handler is None or decode is None or handler.unary_unary is None:
            return handler

        def guarded(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception:
                return MalformedRequest()

        return handler._replace(request_deserializer=guarded)


def handle_errors(
    method: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    """Wraps a servicer method: one log line per call, errors as a status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        started = time.perf_counter()
        error: WifError | None = None
        try:
            if isinstance(request, MalformedRequest):
                raise errors.InvalidRequest(
                    "the request message cannot be decoded", reason="MALFORMED_REQUEST"
                )
            result = await method(self, request, context)
        except WifError as refused:
            error = refused
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("%s failed", method.__name__)
            error = errors.InternalError("internal error", reason="INTERNAL")
        elapsed = time.perf_counter() - started
        if error is None:
            _record_outcome(method.__name__, elapsed, None)
            return result
        await abort_with_error(context, method.__name__, error, elapsed)

    return wrapper


def _record_outcome(rpc: str, elapsed: float, error: WifError | None) -> None:
    outcome = "ok" if error is None else error.grpc_code.name.lower()
    reason = "" if error is None else error.reason
    fields = {"rpc": rpc, "outcome": outcome, "duration_ms": round(elapsed * 1000, 3)}
    RPC_CALLS.add(1, {"rpc": rpc, "outcome": outcome, "reason": reason})
    RPC_DURATION.record(elapsed, {"rpc": rpc, "outcome": outcome})
    if error is None:
        log.info("%s ok", rpc, extra={"fields": fields})
        return
    fields["reason"] = error.reason
    log.info("%s refused: %s", rpc, error.reason, extra={"fields": fields})


async def abort_with_error(
    context: grpc.aio.ServicerContext, rpc: str, error: WifError, elapsed: float = 0.0
) -> NoReturn:
    """Logs a refused call, counts it and aborts it with the error's status."""
    _record_outcome(rpc, elapsed, error)
    await context.abort_with_status(rpc_status.to_status(to_status(error)))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def error_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo inside a failed call's status, if it has one."""
    status = rpc_status.from_call(exc)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def error_from_rpc(exc: grpc.aio.AioRpcError, peer: str) -> WifError:
    """Turns a failed call to another mesh service into a mesh error.

    An unreachable peer or a deadline becomes TemporarilyUnavailable, so the
    caller fails closed with ``temporarily_unavailable``.
    """
    code = exc.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        # The reason is UPPER_SNAKE: "policy service" gives POLICY_SERVICE_UNAVAILABLE.
        name = peer.upper().replace(" ", "_")
        return errors.TemporarilyUnavailable(
            f"the {peer} is unavailable", reason=f"{name}_UNAVAILABLE"
        )
    info = error_info(exc)
    if info is None or info.domain != ERROR_DOMAIN:
        return errors.InternalError(f"the {peer} failed", reason="PEER_FAILED")
    metadata = dict(info.metadata)
    cls = _CLASSES.get(metadata.pop(_OAUTH_KEY, ""), errors.InternalError)
    return cls(exc.details() or "", reason=info.reason, metadata=metadata)


__all__ = [
    "abort_with_error",
    "error_from_rpc",
    "error_info",
    "handle_errors",
    "to_status",
]
