"""The SecurityTokenService gRPC servicer: decode, delegate, encode."""

from __future__ import annotations

import grpc
from google.protobuf import struct_pb2

from services.sts.exchange import ExchangeRequest, TokenExchanger
from services.sts.validation import MeshTokenValidator
from wif.grpc_errors import handle_errors
from wif.v1 import sts_pb2, sts_pb2_grpc


def peer_address(context: grpc.aio.ServicerContext) -> str:
    """The caller's address without the transport prefix and port."""
    peer = context.peer() or ""
    _, _, address = peer.partition(":")
    host, _, _ = address.rpartition(":")
    return host.strip("[]") or address


class SecurityTokenServicer(sts_pb2_grpc.SecurityTokenServiceServicer):
    """Token exchange and validation over gRPC."""

    def __init__(
        self, exchanger: TokenExchanger, validator: MeshTokenValidator
    ) -> None:
        self._exchanger = exchanger
        self._validator = validator

    @handle_errors
    async def ExchangeToken(
        self, request: sts_pb2.ExchangeTokenRequest, context: grpc.aio.ServicerContext
    ) -> sts_pb2.ExchangeTokenResponse:
        result = await self._exchanger.exchange(
            ExchangeRequest(
                subject_token=request.subject_token,
                subject_token_type=request.subject_token_type,
                actor_token=request.actor_token,
                actor_token_type=request.actor_token_type,
                audience=list(request.audience),
                resource=list(request.resource),
                scope=list(request.scope),
                requested_token_type=request.requested_token_type,
                source_address=peer_address(context),
            )
        )
        return sts_pb2.ExchangeTokenResponse(
            access_token=result.access_token,
            issued_token_type=result.issued_token_type,
            token_type=result.token_type,
            expires_in=result.expires_in,
            scope=result.scope,
            token_id=result.token_id,
        )

    @handle_errors
    async def ValidateToken(
        self, request: sts_pb2.ValidateTokenRequest, context: grpc.aio.ServicerContext
    ) -> sts_pb2.ValidateTokenResponse:
        valid = self._validator.validate(request.token, request.audience)
        claims = struct_pb2.Struct()
        claims.update(valid.claims)
        return sts_pb2.ValidateTokenResponse(
            subject=valid.subject,
            token_id=valid.token_id,
            expires_at=valid.expires_at,
            claims=claims,
        )
