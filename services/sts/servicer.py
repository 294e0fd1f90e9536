"""The SecurityTokenService gRPC servicer: decode, delegate, encode."""

from __future__ import annotations

from collections import OrderedDict

import grpc
from google.protobuf import struct_pb2

from services.sts.admission import Admission
from services.sts.checks import Outcome
from services.sts.exchange import ExchangeRequest, Explanation, TokenExchanger
from services.sts.validation import (
    MAX_BATCH,
    MAX_CACHED_TOKENS,
    MeshTokenValidator,
    ValidToken,
)
from wif.errors import InvalidGrant, InvalidRequest
from wif.grpc_errors import handle_errors
from wif.v1 import sts_pb2, sts_pb2_grpc

_OUTCOMES = {
    Outcome.PASSED: sts_pb2.CHECK_OUTCOME_PASSED,
    Outcome.FAILED: sts_pb2.CHECK_OUTCOME_FAILED,
    Outcome.SKIPPED: sts_pb2.CHECK_OUTCOME_SKIPPED,
}


def peer_address(context: grpc.aio.ServicerContext) -> str:
    """The caller's address without the transport prefix and port."""
    peer = context.peer() or ""
    _, _, address = peer.partition(":")
    host, _, _ = address.rpartition(":")
    return host.strip("[]") or address


def exchange_request(
    request: sts_pb2.ExchangeTokenRequest, source_address: str
) -> ExchangeRequest:
    """The RFC 8693 parameters of a gRPC request."""
    return ExchangeRequest(
        subject_token=request.subject_token,
        subject_token_type=request.subject_token_type,
        actor_token=request.actor_token,
        actor_token_type=request.actor_token_type,
        audience=list(request.audience),
        resource=list(request.resource),
        scope=list(request.scope),
        requested_token_type=request.requested_token_type,
        source_address=source_address,
        allow_scope_trimming=request.allow_scope_trimming,
    )


class ReplyMemo:
    """Replies already built for validated tokens, by the token's facts object.

    A cache hit in the validator returns the same :class:`ValidToken` object
    each time; building its claims ``Struct`` again would cost more than the
    rest of the hit. Entries hold the object itself, so an ``id`` is never
    mistaken for a newer object's.
    """

    def __init__(self, max_entries: int = MAX_CACHED_TOKENS) -> None:
        self._max = max_entries
        self._replies: OrderedDict[
            int, tuple[ValidToken, sts_pb2.ValidateTokenResponse]
        ] = OrderedDict()

    def reply(self, valid: ValidToken) -> sts_pb2.ValidateTokenResponse:
        """The reply for ``valid``, built once; the least recently used go first."""
        entry = self._replies.get(id(valid))
        if entry is not None and entry[0] is valid:
            self._replies.move_to_end(id(valid))
            return entry[1]
        built = _token_reply(valid)
        self._replies[id(valid)] = (valid, built)
        if len(self._replies) > self._max:
            self._replies.popitem(last=False)
        return built


def _token_reply(valid: ValidToken) -> sts_pb2.ValidateTokenResponse:
    claims = struct_pb2.Struct()
    claims.update(valid.claims)
    return sts_pb2.ValidateTokenResponse(
        subject=valid.subject,
        token_id=valid.token_id,
        expires_at=valid.expires_at,
        claims=claims,
    )


def _explanation_reply(explanation: Explanation) -> sts_pb2.ExplainExchangeResponse:
    refusal = explanation.refusal
    return sts_pb2.ExplainExchangeResponse(
        would_issue=refusal is None,
        checks=[
            sts_pb2.ExchangeCheck(
                name=check.name,
                outcome=_OUTCOMES[check.outcome],
                reason=check.reason,
                detail=check.detail,
            )
            for check in explanation.checks
        ],
        oauth_error=refusal.oauth_error if refusal else "",
        reason=refusal.reason if refusal else "",
        audience=explanation.audiences,
        scope=explanation.scopes,
        subject=explanation.subject,
    )


class SecurityTokenServicer(sts_pb2_grpc.SecurityTokenServiceServicer):
    """Token exchange and validation over gRPC."""

    def __init__(
        self,
        exchanger: TokenExchanger,
        validator: MeshTokenValidator,
        admission: Admission | None = None,
    ) -> None:
        self._exchanger = exchanger
        self._validator = validator
        self._admission = admission
        self._replies = ReplyMemo()

    async def _admit(self, context: grpc.aio.ServicerContext, rpc: str) -> None:
        if self._admission is not None:
            await self._admission.admit(peer_address(context), "grpc", rpc)

    @handle_errors
    async def ExchangeToken(
        self, request: sts_pb2.ExchangeTokenRequest, context: grpc.aio.ServicerContext
    ) -> sts_pb2.ExchangeTokenResponse:
        await self._admit(context, "ExchangeToken")
        result = await self._exchanger.exchange(
            exchange_request(request, peer_address(context))
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
    async def ExplainExchange(
        self,
        request: sts_pb2.ExplainExchangeRequest,
        context: grpc.aio.ServicerContext,
    ) -> sts_pb2.ExplainExchangeResponse:
        await self._admit(context, "ExplainExchange")
        explanation = await self._exchanger.explain(
            exchange_request(request.exchange, peer_address(context))
        )
        return _explanation_reply(explanation)

    @handle_errors
    async def ValidateToken(
        self, request: sts_pb2.ValidateTokenRequest, context: grpc.aio.ServicerContext
    ) -> sts_pb2.ValidateTokenResponse:
        await self._admit(context, "ValidateToken")
        valid = self._validator.validate(request.token, request.audience)
        return self._replies.reply(valid)

    @handle_errors
    async def ValidateTokens(
        self, request: sts_pb2.ValidateTokensRequest, context: grpc.aio.ServicerContext
    ) -> sts_pb2.ValidateTokensResponse:
        await self._admit(context, "ValidateTokens")
        if len(request.tokens) > MAX_BATCH:
            raise InvalidRequest(
                f"at most {MAX_BATCH} tokens in one call", reason="TOO_MANY_TOKENS"
            )
        results = []
        for item in request.tokens:
            try:
                valid = self._validator.validate(item.token, item.audience)
            except InvalidGrant as error:
                results.append(
                    sts_pb2.TokenValidation(valid=False, reason=error.reason)
                )
            else:
                results.append(
                    sts_pb2.TokenValidation(
                        valid=True, token=self._replies.reply(valid)
                    )
                )
        return sts_pb2.ValidateTokensResponse(results=results)
