"""Tests for services.sts.foreign_keys: discovery, JWKS fetches and caching.

Each test runs a real issuer on loopback (aiohttp, port 0) whose answers the
test switches, and counts what the STS fetched. Time is a clock the test
moves by hand.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from services.sts import foreign_keys
from services.sts.foreign_keys import (
    DEFAULT_TTL_SECONDS,
    MAX_DOCUMENT_BYTES,
    MAX_STALE_SECONDS,
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    REFRESH_COOLDOWN_SECONDS,
    ForeignKeys,
)
from wif.errors import TemporarilyUnavailable
from wif.tokens import SigningKey
from wif.trust.model import Provider, parse_provider

DISCOVERY_PATH = "/.well-known/openid-configuration"


class FakeIssuer:
    """A real OpenID issuer on loopback whose answers the test switches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.jwks_body: bytes | None = None
        self.jwks_status = 200
        self.discovery: dict[str, Any] | None = None
        self.cache_control: str | None = None
        self.hang = False
        self.delay = 0.0
        self.release = asyncio.Event()
        self.hits = {"discovery": 0, "jwks": 0, "moved": 0}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(DISCOVERY_PATH, self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/moved", self._moved)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _discovery(self, request: web.Request) -> web.Response:
        self.hits["discovery"] += 1
        document = self.discovery or {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
        }
        return web.json_response(document)

    async def _jwks(self, request: web.Request) -> web.Response:
        self.hits["jwks"] += 1
        if self.hang:
            await self.release.wait()
        await asyncio.sleep(self.delay)
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        body = self.jwks_body or json.dumps({"keys": self.keys}).encode()
        return web.Response(
            body=body,
            status=self.jwks_status,
            content_type="application/json",
            headers=headers,
        )

    async def _moved(self, request: web.Request) -> web.Response:
        self.hits["moved"] += 1
        raise web.HTTPFound(f"{self.url}/jwks")


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def provider_for(issuer: str, jwks: dict[str, Any], **extra: Any) -> Provider:
    return parse_provider(
        {
            "id": "ci",
            "pool": "ci-pool",
            "issuer": issuer,
            "allow_http_on_loopback": True,
            "jwks": jwks,
            "audiences": ["wif-sts"],
            "condition": "true",
            "mapping": {"subject": "assertion.sub"},
            **extra,
        },
        "p",
    )


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def jwks_padded_to(size: int, jwk: dict[str, str]) -> bytes:
    """A valid JWK Set of exactly ``size`` bytes, padded with a member."""
    empty = json.dumps({"keys": [jwk], "padding": ""}).encode()
    return json.dumps({"keys": [jwk], "padding": "x" * (size - len(empty))}).encode()


@pytest.fixture(scope="module")
def es256() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="module")
def rs256() -> SigningKey:
    return SigningKey.generate("RS256")


@pytest.fixture
async def issuer(es256: SigningKey) -> AsyncIterator[FakeIssuer]:
    server = FakeIssuer()
    server.keys = [es256.public_jwk()]
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(session: aiohttp.ClientSession, clock: Clock) -> ForeignKeys:
    return ForeignKeys(session, clock=clock)


@pytest.fixture
def discovered(issuer: FakeIssuer) -> Provider:
    return provider_for(issuer.url, {"discovery": True})


async def unavailable(keys: ForeignKeys, provider: Provider) -> TemporarilyUnavailable:
    with pytest.raises(TemporarilyUnavailable) as caught:
        await keys.key_for(provider, "any-kid")
    assert caught.value.reason == "JWKS_UNAVAILABLE"
    assert caught.value.message == "the issuer's keys cannot be fetched"
    return caught.value


async def test_key_for_finds_a_key_through_discovery(
    keys: ForeignKeys, issuer: FakeIssuer, discovered: Provider, es256: SigningKey
) -> None:
    key = await keys.key_for(discovered, es256.kid)

    assert key is not None
    assert key.kid == es256.kid
    assert key.alg == "ES256"
    assert issuer.hits == {"discovery": 1, "jwks": 1, "moved": 0}


async def test_key_for_reads_an_rs256_key(
    keys: ForeignKeys, issuer: FakeIssuer, discovered: Provider, rs256: SigningKey
) -> None:
    issuer.keys = [rs256.public_jwk()]

    key = await keys.key_for(discovered, rs256.kid)

    assert key is not None
    assert key.alg == "RS256"


async def test_key_for_uses_a_configured_jwks_uri_without_discovery(
    keys: ForeignKeys, issuer: FakeIssuer, es256: SigningKey
) -> None:
    provider = provider_for(issuer.url, {"uri": f"{issuer.url}/jwks"})

    key = await keys.key_for(provider, es256.kid)

    assert key is not None
    assert issuer.hits == {"discovery": 0, "jwks": 1, "moved": 0}


async def test_key_for_serves_cached_keys_without_fetching_again(
    keys: ForeignKeys,
    issuer: FakeIssuer,
    discovered: Provider,
    clock: Clock,
    es256: SigningKey,
) -> None:
    await keys.key_for(discovered, es256.kid)
    clock.advance(DEFAULT_TTL_SECONDS - 1)

    key = await keys.key_for(discovered, es256.kid)

    assert key is not None
    assert issuer.hits["jwks"] == 1


async def test_key_for_refreshes_once_for_an_unknown_kid_then_waits_the_cooldown(
    keys: ForeignKeys,
    issuer: FakeIssuer,
    discovered: Provider,
    clock: Clock,
    es256: SigningKey,
) -> None:
    await keys.key_for(discovered, es256.kid)
    rotated = SigningKey.generate("ES256")
    issuer.keys = [es256.public_jwk(), rotated.public_jwk()]
    clock.advance(REFRESH_COOLDOWN_SECONDS)

    found = await keys.key_for(discovered, rotated.kid)
    clock.advance(REFRESH_COOLDOWN_SECONDS - 1)
    missing = await keys.key_for(discovered, "never-published")

    assert found is not None
    assert found.kid == rotated.kid
    assert missing is None
    assert issuer.hits["jwks"] == 2


async def test_key_for_does_not_refresh_for_an_unknown_kid_right_after_a_fetch(
    keys: ForeignKeys,
    issuer: FakeIssuer,
    discovered: Provider,
    clock: Clock,
    es256: SigningKey,
) -> None:
    await keys.key_for(discovered, es256.kid)
    clock.advance(REFRESH_COOLDOWN_SECONDS - 1)

    assert await keys.key_for(discovered, "unknown-1") is None
    assert await keys.key_for(discovered, "unknown-2") is None
    assert issuer.hits["jwks"] == 1


async def test_concurrent_lookups_share_a_single_fetch(
    keys: ForeignKeys, issuer: FakeIssuer, discovered: Provider, es256: SigningKey
) -> None:
    issuer.delay = 0.1

    found = await asyncio.gather(
        *(keys.key_for(discovered, es256.kid) for _ in range(20))
    )

    assert all(key is not None and key.kid == es256.kid for key in found)
    assert issuer.hits == {"discovery": 1, "jwks": 1, "moved": 0}


async def test_concurrent_unknown_kids_share_a_single_refresh(
    keys: ForeignKeys,
    issuer: FakeIssuer,
    discovered: Provider,
    clock: Clock,
    es256: SigningKey,
) -> None:
    await keys.key_for(discovered, es256.kid)
    clock.advance(REFRESH_COOLDOWN_SECONDS)
    issuer.delay = 0.1

    found = await asyncio.gather(
        *(keys.key_for(discovered, f"unknown-{n}") for n in range(20))
    )

    assert found == [None] * 20
    assert issuer.hits["jwks"] == 2


@dataclass(frozen=True)
class Lifetime:
    cache_control: str | None
    ttl: float


LIFETIMES = [
    Lifetime("public, max-age=120", 120),
    Lifetime("max-age=5", MIN_TTL_SECONDS),
    Lifetime("max-age=0", MIN_TTL_SECONDS),
    Lifetime("public, max-age=86400", MAX_TTL_SECONDS),
    Lifetime(None, DEFAULT_TTL_SECONDS),
    Lifetime("no-cache", DEFAULT_TTL_SECONDS),
]


@pytest.mark.parametrize("case", LIFETIMES, ids=lambda case: str(case.cache_control))
async def test_cache_control_max_age_sets_the_cache_lifetime_within_bounds(
    case: Lifetime,
    keys: ForeignKeys,
    issuer: FakeIssuer,
    discovered: Provider,
    clock: Clock,
    es256: SigningKey,
) -> None:
    issuer.cache_control = case.cache_control
    await keys.key_for(discovered, es256.kid)

    clock.advance(case.ttl - 1)
    await keys.key_for(discovered, es256.kid)
    assert issuer.hits["jwks"] == 1

    clock.advance(2)
    await keys.key_for(discovered, es256.kid)
    assert issuer.hits["jwks"] == 2


async def test_cached_keys_keep_serving_while_the_issuer_is_down(
    keys: ForeignKeys,
    issuer: FakeIssuer,
    discovered: Provider,
    clock: Clock,
    es256: SigningKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await keys.key_for(discovered, es256.kid)
    await issuer.stop()
    clock.advance(DEFAULT_TTL_SECONDS + 1)

    with caplog.at_level(logging.WARNING, logger="services.sts.foreign_keys"):
        key = await keys.key_for(discovered, es256.kid)

    assert key is not None
    assert key.kid == es256.kid
    (line,) = caplog.records
    assert line.getMessage().startswith(f"serving cached keys of {issuer.url}: ")


async def test_cached_keys_keep_serving_while_the_issuer_answers_errors(
    keys: ForeignKeys,
    issuer: FakeIssuer,
    discovered: Provider,
    clock: Clock,
    es256: SigningKey,
) -> None:
    await keys.key_for(discovered, es256.kid)
    issuer.jwks_status = 503
    clock.advance(DEFAULT_TTL_SECONDS + 1)

    key = await keys.key_for(discovered, es256.kid)
    clock.advance(REFRESH_COOLDOWN_SECONDS - 1)
    again = await keys.key_for(discovered, es256.kid)

    assert key is not None
    assert again is not None
    assert issuer.hits["jwks"] == 2


async def test_cached_keys_stop_serving_after_the_stale_limit(
    keys: ForeignKeys,
    issuer: FakeIssuer,
    discovered: Provider,
    clock: Clock,
    es256: SigningKey,
) -> None:
    await keys.key_for(discovered, es256.kid)
    await issuer.stop()
    clock.advance(MAX_STALE_SECONDS)

    await unavailable(keys, discovered)


async def test_an_unreachable_issuer_with_nothing_cached_is_unavailable(
    keys: ForeignKeys,
) -> None:
    provider = provider_for(f"http://127.0.0.1:{closed_port()}", {"discovery": True})

    error = await unavailable(keys, provider)

    assert error.oauth_error == "temporarily_unavailable"


async def test_an_issuer_answering_an_error_with_nothing_cached_is_unavailable(
    keys: ForeignKeys, issuer: FakeIssuer, discovered: Provider
) -> None:
    issuer.jwks_status = 500

    error = await unavailable(keys, discovered)

    assert str(error.__cause__) == f"{issuer.url}/jwks answered 500"


@dataclass(frozen=True)
class BadDiscovery:
    name: str
    document: dict[str, Any]
    cause: str


BAD_DISCOVERIES = [
    BadDiscovery(
        "another issuer",
        {"issuer": "http://127.0.0.1:1", "jwks_uri": "{url}/jwks"},
        "the discovery document names another issuer",
    ),
    BadDiscovery(
        "no jwks_uri",
        {"issuer": "{url}"},
        "the discovery document has no usable jwks_uri",
    ),
    BadDiscovery(
        "jwks_uri not http",
        {"issuer": "{url}", "jwks_uri": "file:///etc/jwks"},
        "the discovery document has no usable jwks_uri",
    ),
]


@pytest.mark.parametrize("case", BAD_DISCOVERIES, ids=lambda case: case.name)
async def test_a_bad_discovery_document_makes_the_keys_unavailable(
    case: BadDiscovery, keys: ForeignKeys, issuer: FakeIssuer, discovered: Provider
) -> None:
    issuer.discovery = {
        name: value.format(url=issuer.url) for name, value in case.document.items()
    }

    error = await unavailable(keys, discovered)

    assert str(error.__cause__) == case.cause
    assert issuer.hits["jwks"] == 0


@dataclass(frozen=True)
class BadJwks:
    name: str
    body: bytes
    cause: str


BAD_JWKS = [
    BadJwks("not json", b"<html>keys</html>", "the document is not JSON"),
    BadJwks("not utf-8", b"\xff\xfe\x00", "the document is not JSON"),
    BadJwks("an array", b"[]", "the document is not a JSON object"),
    BadJwks(
        "over the size limit",
        b"{}" + b" " * MAX_DOCUMENT_BYTES,
        "answered a document over the size limit",
    ),
]


@pytest.mark.parametrize("case", BAD_JWKS, ids=lambda case: case.name)
async def test_an_unreadable_jwks_makes_the_keys_unavailable(
    case: BadJwks, keys: ForeignKeys, issuer: FakeIssuer, discovered: Provider
) -> None:
    issuer.jwks_body = case.body

    error = await unavailable(keys, discovered)

    assert str(error.__cause__).endswith(case.cause)


async def test_a_jwks_just_over_the_size_limit_is_refused_though_it_is_valid(
    keys: ForeignKeys, issuer: FakeIssuer, discovered: Provider, es256: SigningKey
) -> None:
    issuer.jwks_body = jwks_padded_to(MAX_DOCUMENT_BYTES + 1, es256.public_jwk())

    error = await unavailable(keys, discovered)

    assert str(error.__cause__).endswith("answered a document over the size limit")


async def test_a_jwks_of_exactly_the_size_limit_is_read_whole(
    keys: ForeignKeys, issuer: FakeIssuer, discovered: Provider, es256: SigningKey
) -> None:
    issuer.jwks_body = jwks_padded_to(MAX_DOCUMENT_BYTES, es256.public_jwk())

    key = await keys.key_for(discovered, es256.kid)

    assert key is not None


async def test_a_hanging_issuer_fails_within_the_fetch_timeout(
    keys: ForeignKeys,
    issuer: FakeIssuer,
    discovered: Provider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(foreign_keys, "FETCH_TIMEOUT_SECONDS", 0.5)
    issuer.hang = True

    started = time.monotonic()
    await unavailable(keys, discovered)
    elapsed = time.monotonic() - started

    assert 0.4 < elapsed < 2.0
    assert issuer.hits["jwks"] == 1


async def test_a_redirect_is_not_followed(
    keys: ForeignKeys, issuer: FakeIssuer
) -> None:
    provider = provider_for(issuer.url, {"uri": f"{issuer.url}/moved"})

    error = await unavailable(keys, provider)

    assert str(error.__cause__) == f"{issuer.url}/moved answered 302"
    assert issuer.hits == {"discovery": 0, "jwks": 0, "moved": 1}


async def test_inline_keys_need_no_http(es256: SigningKey, clock: Clock) -> None:
    closed = aiohttp.ClientSession()
    await closed.close()
    keys = ForeignKeys(closed, clock=clock)
    provider = provider_for(
        f"http://127.0.0.1:{closed_port()}", {"keys": [es256.public_jwk()]}
    )

    key = await keys.key_for(provider, es256.kid)
    clock.advance(MAX_TTL_SECONDS + 1)
    again = await keys.key_for(provider, es256.kid)

    assert key is not None
    assert key.kid == es256.kid
    assert again is not None


async def test_a_symmetric_key_in_the_jwks_is_skipped(
    keys: ForeignKeys,
    issuer: FakeIssuer,
    discovered: Provider,
    es256: SigningKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hmac = {"kty": "oct", "kid": "hmac-1", "alg": "HS256", "k": "c2VjcmV0LWtleQ"}
    issuer.keys = [hmac, es256.public_jwk()]

    with caplog.at_level(logging.WARNING, logger="services.sts.foreign_keys"):
        symmetric = await keys.key_for(discovered, "hmac-1")
        asymmetric = await keys.key_for(discovered, es256.kid)

    assert symmetric is None
    assert asymmetric is not None
    assert [r.getMessage() for r in caplog.records] == [
        f"skipping a key of {issuer.url}: key 0: "
        "symmetric keys (kty oct) never verify tokens here"
    ]


async def test_a_key_for_an_algorithm_the_provider_refuses_is_skipped(
    keys: ForeignKeys, issuer: FakeIssuer, es256: SigningKey, rs256: SigningKey
) -> None:
    issuer.keys = [es256.public_jwk(), rs256.public_jwk()]
    provider = provider_for(issuer.url, {"discovery": True}, algorithms=["ES256"])

    assert await keys.key_for(provider, rs256.kid) is None
    assert await keys.key_for(provider, es256.kid) is not None
