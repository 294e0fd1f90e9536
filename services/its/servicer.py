"""The IdentityTokenService gRPC servicer: decode, delegate, encode."""

from __future__ import annotations

import time

import grpc
from google.protobuf import json_format

from services.its.keys import KeyManager
from services.its.minting import MintLimits, TokenRequest, mint
from services.its.schedule import RotationSchedule, signing_bound
from wif.audit import AuditLog
from wif.grpc_errors import handle_errors
from wif.telemetry import tracer
from wif.trust.follower import TrustFollower
from wif.v1 import its_pb2, its_pb2_grpc

_tracer = tracer(__name__)


class IdentityTokenServicer(its_pb2_grpc.IdentityTokenServiceServicer):
    """Signs tokens with the active key for subjects the STS vouches for."""

    def __init__(
        self,
        keys: KeyManager,
        trust: TrustFollower,
        audit: AuditLog,
        schedule: RotationSchedule,
    ) -> None:
        self._keys = keys
        self._trust = trust
        self._audit = audit
        self._schedule = schedule

    @handle_errors
    async def IssueToken(
        self, request: its_pb2.IssueTokenRequest, context: grpc.aio.ServicerContext
    ) -> its_pb2.IssueTokenResponse:
        config = self._trust.require()
        token_request = TokenRequest(
            subject=request.subject,
            audiences=list(request.audiences),
            scopes=list(request.scopes),
            lifetime_seconds=request.lifetime_seconds,
            not_after=request.not_after,
            claims=json_format.MessageToDict(request.claims),
            act=json_format.MessageToDict(request.act)
            if request.HasField("act")
            else None,
        )
        with _tracer.start_as_current_span("its.sign") as span:
            record, signer = self._keys.signer()
            minted = mint(
                token_request,
                issuer=config.issuer,
                trust_domain=config.trust_domain,
                signer=signer,
                now=int(time.time()),
                limits=MintLimits(
                    max_lifetime=self._schedule.max_token_lifetime,
                    key_bound=signing_bound(record, self._schedule),
                    audiences=config.audiences,
                ),
            )
            span.set_attribute("wif.key_id", minted.key_id)
        await self._audit.record(
            "token.issued",
            "ok",
            token_id=minted.token_id,
            key_id=minted.key_id,
            subject=request.subject,
            audiences=list(request.audiences),
            expires_at=minted.expires_at,
        )
        return its_pb2.IssueTokenResponse(
            token=minted.token,
            token_id=minted.token_id,
            expires_at=minted.expires_at,
            key_id=minted.key_id,
            issued_at=minted.issued_at,
        )

    @handle_errors
    async def GetJwks(
        self, request: its_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> its_pb2.GetJwksResponse:
        keys = [its_pb2.JsonWebKey(**k) for k in self._keys.jwks()["keys"]]  # type: ignore[attr-defined]
        return its_pb2.GetJwksResponse(keys=keys)
