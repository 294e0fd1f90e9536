"""``wif keys``: list, rotate and revoke the ITS's signing keys.

The commands talk to the ITS's KeyAdminService over gRPC, at ``--its``, then
``WIF_ITS_ADDRESS``, then the ITS of the running local mesh.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format

from wif.cli.common import call_failed, emit, grpc_channel, resolve_address

T = TypeVar("T")

#: Seconds an admin call may take.
CALL_TIMEOUT_SECONDS = 15.0


def its_address(args: argparse.Namespace) -> str:
    """--its, then WIF_ITS_ADDRESS, then the running local mesh."""
    return resolve_address(args, "its", "WIF_ITS_ADDRESS", ("its", "grpc"))


def _call(args: argparse.Namespace, method: Callable[[Any], Awaitable[T]]) -> T:
    """Runs one KeyAdminService call; refusals become errors main() reports."""
    from wif.v1 import key_admin_pb2_grpc

    async def run() -> T:
        async with grpc_channel(args, its_address(args)) as channel:
            return await method(key_admin_pb2_grpc.KeyAdminServiceStub(channel))

    try:
        return asyncio.run(run())
    except grpc.aio.AioRpcError as exc:
        raise call_failed(exc, "ITS") from None


def _when(seconds: int) -> str:
    if not seconds:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _key_json(message: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    doc["state"] = str(doc["state"]).removeprefix("KEY_STATE_").lower()
    for name in ("created_at", "activate_at", "retire_at", "retired_at", "delete_at"):
        doc[name] = int(doc[name])
    return doc


def _key_line(key: dict[str, Any]) -> str:
    return (
        f"{key['key_id']}  {key['alg']}  {key['state']:<8}  "
        f"signs {_when(key['activate_at'])} .. {_when(key['retire_at'])}  "
        f"deleted {_when(key['delete_at'])}" + ("  [hsm]" if key["held_by_hsm"] else "")
    )


def cmd_keys_list(args: argparse.Namespace) -> int:
    from wif.v1 import key_admin_pb2

    reply = _call(
        args,
        lambda stub: stub.ListKeys(
            key_admin_pb2.ListKeysRequest(), timeout=CALL_TIMEOUT_SECONDS
        ),
    )
    keys = [_key_json(k) for k in reply.keys]
    emit(args, "\n".join(_key_line(k) for k in keys) or "no keys", {"keys": keys})
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from wif.v1 import key_admin_pb2

    reply = _call(
        args,
        lambda stub: stub.RotateKeys(
            key_admin_pb2.RotateKeysRequest(), timeout=CALL_TIMEOUT_SECONDS
        ),
    )
    next_key = _key_json(reply.next_key)
    emit(
        args,
        f"key {next_key['key_id']} signs from {_when(reply.takes_over_at)}",
        {"next_key": next_key, "takes_over_at": reply.takes_over_at},
    )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from wif.v1 import key_admin_pb2

    request = key_admin_pb2.RevokeKeyRequest(key_id=args.kid)
    reply = _call(
        args, lambda stub: stub.RevokeKey(request, timeout=CALL_TIMEOUT_SECONDS)
    )
    revoked = _key_json(reply.revoked_key)
    active = _key_json(reply.active_key) if reply.HasField("active_key") else None
    text = f"revoked {revoked['key_id']}"
    if active:
        text += f"; {active['key_id']} signs now"
    emit(args, text, {"revoked_key": revoked, "active_key": active})
    return 0


def register(groups: Any) -> None:
    """Adds the ``keys`` commands."""
    keys = groups.add_parser("keys", help="the ITS's signing keys")
    keys.add_argument("--its", help="gRPC address of the ITS [WIF_ITS_ADDRESS]")
    commands = keys.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every key, its state and schedule").set_defaults(
        func=cmd_keys_list
    )
    commands.add_parser(
        "rotate", help="make the next key and let it take over once published"
    ).set_defaults(func=cmd_keys_rotate)
    revoke = commands.add_parser(
        "revoke", help="withdraw a key at once; its tokens stop verifying"
    )
    revoke.add_argument("kid", help="the key id to revoke")
    revoke.set_defaults(func=cmd_keys_revoke)
