"""The KeyAdminService gRPC servicer: list, rotate and revoke signing keys."""

from __future__ import annotations

import grpc

from services.its.rotation import KeyRotator
from services.its.schedule import Change
from wif.errors import InvalidRequest, NotFound
from wif.grpc_errors import handle_errors
from wif.keyring import KeyRecord, KeyState
from wif.v1 import key_admin_pb2, key_admin_pb2_grpc

_STATES = {
    KeyState.PENDING: key_admin_pb2.KEY_STATE_PENDING,
    KeyState.ACTIVE: key_admin_pb2.KEY_STATE_ACTIVE,
    KeyState.RETIRING: key_admin_pb2.KEY_STATE_RETIRING,
    KeyState.REVOKED: key_admin_pb2.KEY_STATE_REVOKED,
}


def key_message(record: KeyRecord) -> key_admin_pb2.SigningKey:
    """The public description of a key record; never its private part."""
    return key_admin_pb2.SigningKey(
        key_id=record.kid,
        alg=record.alg,
        state=_STATES[record.state],
        created_at=record.created_at,
        activate_at=record.activate_at,
        retire_at=record.retire_at,
        retired_at=record.retired_at,
        delete_at=record.delete_at,
        held_by_hsm=bool(record.hsm_key_id),
    )


def _changed(changes: list[Change], event: str) -> KeyRecord | None:
    return next((c.record for c in reversed(changes) if c.event == event), None)


class KeyAdminServicer(key_admin_pb2_grpc.KeyAdminServiceServicer):
    """Operators' view of the key set; changes go through the rotator."""

    def __init__(self, rotator: KeyRotator) -> None:
        self._rotator = rotator

    @handle_errors
    async def ListKeys(
        self, request: key_admin_pb2.ListKeysRequest, context: grpc.aio.ServicerContext
    ) -> key_admin_pb2.ListKeysResponse:
        records = await self._rotator.current_records()
        return key_admin_pb2.ListKeysResponse(keys=[key_message(r) for r in records])

    @handle_errors
    async def RotateKeys(
        self,
        request: key_admin_pb2.RotateKeysRequest,
        context: grpc.aio.ServicerContext,
    ) -> key_admin_pb2.RotateKeysResponse:
        await self._rotator.rotate()
        records = await self._rotator.current_records()
        pending = [r for r in records if r.state == KeyState.PENDING]
        active = [r for r in records if r.state == KeyState.ACTIVE]
        if pending:
            next_key = pending[-1]
            takes_over = max(next_key.activate_at, active[0].retire_at if active else 0)
        else:
            next_key, takes_over = active[0], active[0].activate_at
        return key_admin_pb2.RotateKeysResponse(
            next_key=key_message(next_key), takes_over_at=takes_over
        )

    @handle_errors
    async def RevokeKey(
        self, request: key_admin_pb2.RevokeKeyRequest, context: grpc.aio.ServicerContext
    ) -> key_admin_pb2.RevokeKeyResponse:
        if not request.key_id:
            raise InvalidRequest("name the key to revoke", reason="MISSING_KEY_ID")
        try:
            changes = await self._rotator.revoke(request.key_id)
        except KeyError:
            raise NotFound(
                "no signing key has that id",
                reason="UNKNOWN_KEY",
                metadata={"keyId": request.key_id[:100]},
            ) from None
        records = {r.kid: r for r in await self._rotator.current_records()}
        revoked = _changed(changes, "key.revoked") or records[request.key_id]
        active = [r for r in records.values() if r.state == KeyState.ACTIVE]
        response = key_admin_pb2.RevokeKeyResponse(revoked_key=key_message(revoked))
        if active:
            newest = max(active, key=lambda r: (r.created_at, r.kid))
            response.active_key.CopyFrom(key_message(newest))
        return response
