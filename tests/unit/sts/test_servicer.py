"""Tests for services.sts.servicer: validation replies built once per cached token."""

from __future__ import annotations

from typing import Any, cast

import pytest
from google.protobuf import json_format

from services.sts.servicer import ReplyMemo, SecurityTokenServicer
from services.sts.validation import MeshTokenValidator, ValidToken
from wif.v1 import sts_pb2

SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"


def valid_token(token_id: str = "jti-1") -> ValidToken:
    return ValidToken(
        subject=SUBJECT,
        token_id=token_id,
        expires_at=1_900_000_000,
        claims={"sub": SUBJECT, "jti": token_id, "aud": ["api"], "n": 1},
        issued_at=1_899_999_000,
    )


def test_reply_holds_the_tokens_facts() -> None:
    reply = ReplyMemo().reply(valid_token())

    assert reply.subject == SUBJECT
    assert reply.token_id == "jti-1"
    assert reply.expires_at == 1_900_000_000
    assert json_format.MessageToDict(reply.claims) == {
        "sub": SUBJECT,
        "jti": "jti-1",
        "aud": ["api"],
        "n": 1.0,
    }


def test_reply_for_the_same_token_object_is_the_same_reply() -> None:
    memo, valid = ReplyMemo(), valid_token()

    first = memo.reply(valid)

    assert memo.reply(valid) is first


def test_reply_for_an_equal_but_other_token_object_is_built_anew() -> None:
    memo = ReplyMemo()
    first = memo.reply(valid_token())

    again = memo.reply(valid_token())

    assert again is not first
    assert again == first


def test_reply_keeps_at_most_max_entries_dropping_the_oldest() -> None:
    memo = ReplyMemo(max_entries=3)
    tokens = [valid_token(f"jti-{n}") for n in range(4)]
    replies = [memo.reply(valid) for valid in tokens]

    # Newest first: asking again for a dropped one would drop another.
    kept = [
        memo.reply(valid) is reply
        for valid, reply in reversed(list(zip(tokens, replies, strict=True)))
    ]

    assert kept == [True, True, True, False]


def test_reply_of_a_dropped_token_is_built_anew_with_the_same_content() -> None:
    memo = ReplyMemo(max_entries=1)
    first_token, other = valid_token("jti-1"), valid_token("jti-2")
    first = memo.reply(first_token)
    memo.reply(other)

    again = memo.reply(first_token)

    assert again is not first
    assert again == first


class Validator:
    """Validates every token as the same facts object, as a cache hit does."""

    def __init__(self, valid: ValidToken) -> None:
        self.valid = valid
        self.calls = 0

    def validate(self, token: str, audience: str) -> ValidToken:
        self.calls += 1
        return self.valid


@pytest.fixture
def validator() -> Validator:
    return Validator(valid_token())


@pytest.fixture
def servicer(validator: Validator) -> SecurityTokenServicer:
    return SecurityTokenServicer(
        cast(Any, None), cast(MeshTokenValidator, validator), admission=None
    )


async def test_validate_token_answers_a_cached_token_with_one_reply(
    servicer: SecurityTokenServicer, validator: Validator
) -> None:
    request = sts_pb2.ValidateTokenRequest(token="t", audience="api")

    first = await servicer.ValidateToken(request, cast(Any, None))
    second = await servicer.ValidateToken(request, cast(Any, None))

    assert second is first
    assert (first.subject, first.token_id) == (SUBJECT, "jti-1")
    assert validator.calls == 2


async def test_validate_tokens_answers_with_the_same_reply_as_validate_token(
    servicer: SecurityTokenServicer,
) -> None:
    single = await servicer.ValidateToken(
        sts_pb2.ValidateTokenRequest(token="t", audience="api"), cast(Any, None)
    )
    item = sts_pb2.ValidateTokenRequest(token="t", audience="api")

    batch = await servicer.ValidateTokens(
        sts_pb2.ValidateTokensRequest(tokens=[item, item]), cast(Any, None)
    )

    assert [result.valid for result in batch.results] == [True, True]
    assert [result.token for result in batch.results] == [single, single]
