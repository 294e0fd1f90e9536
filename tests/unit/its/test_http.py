"""Tests for services.its.http: the JWKS and discovery documents over HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.its.http import (
    CACHE_SECONDS,
    DISCOVERY_PATH,
    JWKS_PATH,
    build_app,
    discovery_document,
)
from wif.keyring import KeyRecord, KeyState, published_jwks
from wif.tokens import SigningKey

ISSUER = "http://127.0.0.1:8081"


class State:
    """What the ITS currently publishes; the app reads it on every request."""

    def __init__(self) -> None:
        self.records: list[KeyRecord] = []
        self.issuer: str | None = ISSUER

    def jwks(self) -> dict[str, Any]:
        return published_jwks(self.records)

    def current_issuer(self) -> str | None:
        return self.issuer


def record_for(key: SigningKey, state: KeyState = KeyState.ACTIVE) -> KeyRecord:
    return KeyRecord(
        kid=key.kid,
        alg=key.alg,
        state=state,
        created_at=1_700_000_000,
        public_jwk=key.public_jwk(),
        sealed_private={"kek_id": "kek-1"},
    )


@pytest.fixture(scope="module")
def es256() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture
def state(es256: SigningKey) -> State:
    published = State()
    published.records = [record_for(es256)]
    return published


@pytest.fixture
async def client(state: State) -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(state.jwks, state.current_issuer)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def test_jwks_answers_the_published_keys(
    client: TestClient[Any, Any], es256: SigningKey
) -> None:
    resp = await client.get(JWKS_PATH)

    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == {"keys": [es256.public_jwk()]}


async def test_jwks_leaves_out_revoked_keys(
    client: TestClient[Any, Any], state: State, es256: SigningKey
) -> None:
    revoked = SigningKey.generate("ES256")
    state.records = [record_for(es256), record_for(revoked, KeyState.REVOKED)]

    body = await (await client.get(JWKS_PATH)).json()

    assert [jwk["kid"] for jwk in body["keys"]] == [es256.kid]


async def test_jwks_reads_the_current_keys_on_every_request(
    client: TestClient[Any, Any], state: State, es256: SigningKey
) -> None:
    first = await (await client.get(JWKS_PATH)).json()
    rotated = SigningKey.generate("RS256")
    state.records = [record_for(es256), record_for(rotated, KeyState.PENDING)]

    second = await (await client.get(JWKS_PATH)).json()

    assert len(first["keys"]) == 1
    assert {jwk["kid"] for jwk in second["keys"]} == {es256.kid, rotated.kid}


async def test_discovery_names_the_issuer_its_jwks_and_algorithms(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get(DISCOVERY_PATH)

    assert resp.status == 200
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body == discovery_document(ISSUER)
    assert body["issuer"] == ISSUER
    assert body["jwks_uri"] == "http://127.0.0.1:8081/.well-known/jwks.json"
    assert body["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert body["subject_types_supported"] == ["public"]


@pytest.mark.parametrize("path", [JWKS_PATH, DISCOVERY_PATH])
async def test_documents_may_be_cached_for_the_cache_lifetime(
    client: TestClient[Any, Any], path: str
) -> None:
    resp = await client.get(path)

    assert resp.headers["Cache-Control"] == "public, max-age=300"


@pytest.mark.parametrize("path", [JWKS_PATH, DISCOVERY_PATH])
async def test_documents_carry_a_strong_etag_of_their_body(
    client: TestClient[Any, Any], path: str
) -> None:
    first = await client.get(path)
    second = await client.get(path)

    etag = first.headers["ETag"]
    digest = hashlib.sha256(await first.read()).hexdigest()
    assert etag == f'"{digest[:32]}"'
    assert second.headers["ETag"] == etag


@pytest.mark.parametrize("path", [JWKS_PATH, DISCOVERY_PATH])
async def test_a_matching_if_none_match_answers_304_without_a_body(
    client: TestClient[Any, Any], path: str
) -> None:
    etag = (await client.get(path)).headers["ETag"]

    resp = await client.get(path, headers={"If-None-Match": etag})

    assert resp.status == 304
    assert await resp.read() == b""
    assert resp.headers["ETag"] == etag
    assert resp.headers["Cache-Control"] == f"public, max-age={CACHE_SECONDS}"


async def test_a_stale_if_none_match_answers_the_new_keys(
    client: TestClient[Any, Any], state: State, es256: SigningKey
) -> None:
    old_etag = (await client.get(JWKS_PATH)).headers["ETag"]
    rotated = SigningKey.generate("ES256")
    state.records = [record_for(es256), record_for(rotated)]

    resp = await client.get(JWKS_PATH, headers={"If-None-Match": old_etag})

    assert resp.status == 200
    assert resp.headers["ETag"] != old_etag
    assert len((await resp.json())["keys"]) == 2


async def test_discovery_answers_503_while_the_issuer_is_unknown(
    client: TestClient[Any, Any], state: State
) -> None:
    state.issuer = None

    resp = await client.get(DISCOVERY_PATH)

    assert resp.status == 503
    assert await resp.json() == {"error": "temporarily_unavailable"}
    assert "Cache-Control" not in resp.headers
    assert "ETag" not in resp.headers


async def test_jwks_is_served_while_the_issuer_is_unknown(
    client: TestClient[Any, Any], state: State
) -> None:
    state.issuer = None

    resp = await client.get(JWKS_PATH)

    assert resp.status == 200


async def test_documents_are_read_only(client: TestClient[Any, Any]) -> None:
    resp = await client.post(JWKS_PATH, data=b"{}")

    assert resp.status == 405
