"""Tests for the form handling of services.sts.http (RFC 6749, RFC 8693)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from services.sts.exchange import GRANT_TYPE, TYPE_ACCESS_TOKEN, TYPE_JWT
from services.sts.http import error_response, exchange_request, parse_form
from wif.errors import (
    AccessDenied,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    TemporarilyUnavailable,
    UnsupportedTokenType,
    WifError,
)

SOURCE = "127.0.0.1"


def form_body(*pairs: tuple[str, str]) -> bytes:
    return urlencode(pairs).encode("ascii")


GOOD_PAIRS = (
    ("grant_type", GRANT_TYPE),
    ("subject_token", "header.payload.signature"),
    ("subject_token_type", TYPE_JWT),
)


def test_parse_form_reads_each_parameter() -> None:
    form = parse_form(form_body(*GOOD_PAIRS, ("scope", "a b")))

    assert form == {
        "grant_type": [GRANT_TYPE],
        "subject_token": ["header.payload.signature"],
        "subject_token_type": [TYPE_JWT],
        "scope": ["a b"],
    }


def test_parse_form_reads_an_empty_body_as_no_parameters() -> None:
    assert parse_form(b"") == {}


def test_parse_form_allows_repeated_audience_and_resource() -> None:
    form = parse_form(
        form_body(
            ("audience", "payments-api"),
            ("audience", "search-api"),
            ("resource", "https://a.test"),
            ("resource", "https://b.test"),
        )
    )

    assert form["audience"] == ["payments-api", "search-api"]
    assert form["resource"] == ["https://a.test", "https://b.test"]


@pytest.mark.parametrize(
    "name",
    [
        "grant_type",
        "subject_token",
        "subject_token_type",
        "actor_token",
        "actor_token_type",
        "scope",
        "requested_token_type",
    ],
)
def test_parse_form_refuses_a_repeated_parameter(name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_form(form_body((name, "one"), ("audience", "a"), (name, "two")))

    assert caught.value.oauth_error == "invalid_request"
    assert caught.value.reason == "REPEATED_PARAMETER"


def test_parse_form_treats_a_blank_parameter_as_omitted() -> None:
    assert parse_form(b"scope=&scope=a&audience=") == {"scope": ["a"]}


@pytest.mark.parametrize(
    "body",
    [
        b"subject_token=\xff\xfe",
        b"scope=caf\xe9",
        b"subject_token=%FF%FE",
        b"scope=caf%E9",
        b"grant_type",
        b"a=1&&b=2",
        b"&".join(b"p%d=v" % n for n in range(65)),
    ],
    ids=[
        "raw-non-utf8",
        "raw-latin1",
        "percent-encoded-non-utf8",
        "percent-encoded-latin1",
        "name-without-value",
        "empty-field",
        "too-many-fields",
    ],
)
def test_parse_form_refuses_a_body_it_cannot_decode(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_form(body)

    assert caught.value.oauth_error == "invalid_request"
    assert caught.value.reason == "MALFORMED_FORM"


def test_parse_form_decodes_percent_encoded_utf8() -> None:
    assert parse_form(b"scope=caf%C3%A9+read") == {"scope": ["café read"]}


def test_exchange_request_maps_every_parameter() -> None:
    form = parse_form(
        form_body(
            *GOOD_PAIRS,
            ("actor_token", "a.b.c"),
            ("actor_token_type", TYPE_ACCESS_TOKEN),
            ("audience", "payments-api"),
            ("audience", "search-api"),
            ("resource", "https://payments.acme.example"),
            ("scope", "payments.read  payments.write"),
            ("requested_token_type", TYPE_JWT),
        )
    )

    request = exchange_request(form, SOURCE)

    assert request.subject_token == "header.payload.signature"
    assert request.subject_token_type == TYPE_JWT
    assert request.actor_token == "a.b.c"
    assert request.actor_token_type == TYPE_ACCESS_TOKEN
    assert list(request.audience) == ["payments-api", "search-api"]
    assert list(request.resource) == ["https://payments.acme.example"]
    assert list(request.scope) == ["payments.read", "payments.write"]
    assert request.requested_token_type == TYPE_JWT
    assert request.source_address == SOURCE


def test_exchange_request_leaves_absent_parameters_empty() -> None:
    request = exchange_request(parse_form(form_body(*GOOD_PAIRS)), SOURCE)

    assert request.actor_token == ""
    assert request.actor_token_type == ""
    assert list(request.audience) == []
    assert list(request.resource) == []
    assert list(request.scope) == []
    assert request.requested_token_type == ""


@pytest.mark.parametrize(
    "grant_type",
    [
        None,
        "",
        "client_credentials",
        "authorization_code",
        GRANT_TYPE.upper(),
        GRANT_TYPE + " ",
    ],
)
def test_exchange_request_with_wrong_grant_type_is_unsupported_grant_type(
    grant_type: str | None,
) -> None:
    pairs = [pair for pair in GOOD_PAIRS if pair[0] != "grant_type"]
    if grant_type is not None:
        pairs.append(("grant_type", grant_type))

    with pytest.raises(InvalidRequest) as caught:
        exchange_request(parse_form(form_body(*pairs)), SOURCE)

    assert caught.value.oauth_error == "unsupported_grant_type"
    assert caught.value.reason == "UNSUPPORTED_GRANT_TYPE"
    assert caught.value.http_status == 400


def _body(error: WifError) -> tuple[int, dict[str, str], dict[str, object]]:
    response = error_response(error)
    assert response.text is not None
    return response.status, dict(response.headers), json.loads(response.text)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidRequest("subject_token is required"), 400, "invalid_request"),
        (InvalidGrant("the token has expired"), 400, "invalid_grant"),
        (UnsupportedTokenType("not supported"), 400, "unsupported_token_type"),
        (InvalidScope("a scope is not offered"), 400, "invalid_scope"),
        (AccessDenied("the policy does not allow it"), 400, "invalid_target"),
        (TemporarilyUnavailable("etcd is away"), 503, "temporarily_unavailable"),
    ],
)
def test_error_response_has_the_rfc_6749_shape(
    error: WifError, status: int, code: str
) -> None:
    got_status, headers, body = _body(error)

    assert got_status == status
    assert body == {"error": code, "error_description": error.message}
    assert headers["Content-Type"].startswith("application/json")


def test_error_response_is_never_cached() -> None:
    _, headers, _ = _body(InvalidRequest("x"))

    assert headers["Cache-Control"] == "no-store"
    assert headers["Pragma"] == "no-cache"


def test_error_response_does_not_show_reason_or_metadata() -> None:
    error = InvalidGrant("bad token", reason="BAD_SIGNATURE", metadata={"kid": "k1"})

    _, _, body = _body(error)

    assert set(body) == {"error", "error_description"}
