"""Tests for the pure parts of services.policy.envoy_authz."""

from __future__ import annotations

import pytest
from envoy.service.auth.v3 import attribute_context_pb2

from services.policy.envoy_authz import (
    DecisionCache,
    allowed,
    bearer_token,
    forbidden,
    header_text,
    request_headers,
    route_audience,
)
from wif.trust.config import TrustConfig

HttpRequest = attribute_context_pb2.AttributeContext.HttpRequest


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer   abc.def.ghi  ", "abc.def.ghi"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("", None),
    ],
)
def test_bearer_token_reads_only_the_bearer_scheme(
    value: str, token: str | None
) -> None:
    assert bearer_token({"authorization": value}) == token


def test_request_headers_reads_both_of_envoys_header_forms() -> None:
    http = HttpRequest(headers={"Authorization": "Bearer a"})
    http.header_map.headers.add(key="x-raw", raw_value=b"raw")

    assert request_headers(http) == {"authorization": "Bearer a", "x-raw": "raw"}


@pytest.mark.parametrize(
    ("extensions", "host", "audience"),
    [
        ({"wif_audience": "search-api"}, "payments.acme.example", "search-api"),
        ({}, "payments.acme.example", "payments-api"),
        ({}, "payments.acme.example:8443", "payments-api"),
        ({}, "PAYMENTS.acme.example", "payments-api"),
        ({}, "elsewhere.example", None),
        ({}, "", None),
    ],
)
def test_route_audience_prefers_the_route_extension_then_the_host(
    dev_config: TrustConfig,
    extensions: dict[str, str],
    host: str,
    audience: str | None,
) -> None:
    assert route_audience(dev_config, extensions, host) == audience


def test_header_text_keeps_headers_printable_and_short() -> None:
    assert header_text("line\r\nbreak\x00") == "line??break?"
    assert len(header_text("x" * 1000)) == 200


def test_cache_answers_until_its_expiry() -> None:
    cache = DecisionCache(ttl=30, max_entries=10)
    key = ("hash", "api", "GET", "/")
    cache.get(key, (1,), 0)
    cache.put(key, (1,), allowed("s", ()), expires_at=30)

    assert cache.get(key, (1,), 29) is not None
    assert cache.get(key, (1,), 30) is None


def test_cache_forgets_everything_when_the_generation_changes() -> None:
    cache = DecisionCache(ttl=30, max_entries=10)
    key = ("hash", "api", "GET", "/")
    cache.get(key, (1, 0), 0)
    cache.put(key, (1, 0), forbidden("POLICY_DENIED", "no"), expires_at=30)

    assert cache.get(key, (1, 1), 1) is None
    assert len(cache) == 0


def test_cache_refuses_an_answer_of_an_older_generation() -> None:
    cache = DecisionCache(ttl=30, max_entries=10)
    key = ("hash", "api", "GET", "/")
    cache.get(key, (2,), 0)
    cache.put(key, (1,), allowed("s", ()), expires_at=30)

    assert cache.get(key, (2,), 1) is None


def test_cache_keeps_at_most_max_entries() -> None:
    cache = DecisionCache(ttl=30, max_entries=2)
    cache.get(("a", "", "", ""), (), 0)
    for name in "abc":
        cache.put((name, "", "", ""), (), allowed("s", ()), expires_at=30)

    assert len(cache) == 2
    assert cache.get(("a", "", "", ""), (), 1) is None


def test_cache_with_no_ttl_keeps_nothing() -> None:
    cache = DecisionCache(ttl=0, max_entries=2)
    cache.put(("a", "", "", ""), (), allowed("s", ()), expires_at=30)

    assert len(cache) == 0
