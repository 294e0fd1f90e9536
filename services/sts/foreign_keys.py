"""Verification keys of foreign issuers: discovery, JWKS, caching.

For each provider the STS learns the JWKS location (from OpenID discovery,
a configured URI, or inline keys), fetches the keys and caches them for the
time the issuer's ``Cache-Control`` allows, within bounds. An unknown
``kid`` triggers at most one refresh per cooldown, with a single fetch in
flight per issuer. When the issuer cannot be reached, the cached keys keep
serving for a bounded time, after which exchanges fail closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from wif.errors import TemporarilyUnavailable
from wif.metrics import CACHE_LOOKUPS, JWKS_FETCHES
from wif.telemetry import tracer
from wif.tokens import KeySet, VerificationKey
from wif.trust.model import Provider

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 3600
DEFAULT_TTL_SECONDS = 300
REFRESH_COOLDOWN_SECONDS = 30
MAX_STALE_SECONDS = 3600
MAX_DOCUMENT_BYTES = 512 * 1024
FETCH_TIMEOUT_SECONDS = 5.0

_MAX_AGE = re.compile(r"max-age=(\d+)")


class FetchError(Exception):
    """A discovery document or JWKS could not be fetched or read."""


@dataclass
class _Entry:
    keys: KeySet
    fetched_at: float
    expires_at: float
    last_attempt: float


def _ttl(cache_control: str | None, min_ttl: float = MIN_TTL_SECONDS) -> float:
    match = _MAX_AGE.search(cache_control or "")
    ttl = int(match.group(1)) if match else DEFAULT_TTL_SECONDS
    return float(min(max(ttl, min_ttl), MAX_TTL_SECONDS))


class ForeignKeys:
    """The key sets of every configured provider, fetched on demand."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        clock: Callable[[], float] = time.monotonic,
        *,
        fetch_timeout: float | None = None,
        min_ttl: float | None = None,
        max_stale: float | None = None,
    ) -> None:
        """``fetch_timeout``, ``min_ttl`` and ``max_stale`` (seconds) default
        to FETCH_TIMEOUT_SECONDS, MIN_TTL_SECONDS and MAX_STALE_SECONDS."""
        self._session = session
        self._clock = clock
        self._fetch_timeout = fetch_timeout
        self._min_ttl = min_ttl
        self._max_stale = max_stale
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Task[_Entry]] = {}

    async def key_for(self, provider: Provider, kid: str) -> VerificationKey | None:
        """The provider's key named ``kid``, refreshing once if it is unknown."""
        entry = await self._current(provider)
        key = entry.keys.get(kid)
        if key is not None:
            return key
        if self._clock() - entry.last_attempt < REFRESH_COOLDOWN_SECONDS:
            return None
        entry = await self._refresh(provider)
        return entry.keys.get(kid)

    async def _current(self, provider: Provider) -> _Entry:
        entry = self._entries.get(provider.id)
        if entry is not None and self._clock() < entry.expires_at:
            CACHE_LOOKUPS.add(1, {"cache": "foreign_jwks", "result": "hit"})
            return entry
        CACHE_LOOKUPS.add(1, {"cache": "foreign_jwks", "result": "miss"})
        return await self._refresh(provider)

    async def _refresh(self, provider: Provider) -> _Entry:
        task = self._inflight.get(provider.id)
        if task is None:
            task = asyncio.create_task(self._load(provider))
            self._inflight[provider.id] = task
            task.add_done_callback(lambda _: self._inflight.pop(provider.id, None))
        return await asyncio.shield(task)

    async def _load(self, provider: Provider) -> _Entry:
        now = self._clock()
        old = self._entries.get(provider.id)
        try:
            keys, ttl = await self._fetch_keys(provider)
            JWKS_FETCHES.add(1, {"outcome": "ok"})
        except FetchError as exc:
            JWKS_FETCHES.add(1, {"outcome": "failed"})
            max_stale = self._max_stale or MAX_STALE_SECONDS
            if old is not None and now - old.fetched_at < max_stale:
                log.warning("serving cached keys of %s: %s", provider.issuer, exc)
                old.last_attempt = now
                # Try again after the cool-down, and never serve past the limit.
                old.expires_at = min(
                    now + REFRESH_COOLDOWN_SECONDS, old.fetched_at + max_stale
                )
                return old
            raise TemporarilyUnavailable(
                "the issuer's keys cannot be fetched", reason="JWKS_UNAVAILABLE"
            ) from exc
        entry = _Entry(
            keys=keys, fetched_at=now, expires_at=now + ttl, last_attempt=now
        )
        self._entries[provider.id] = entry
        return entry

    async def _fetch_keys(self, provider: Provider) -> tuple[KeySet, float]:
        if provider.jwks.keys:
            return self._keyset(
                provider, {"keys": list(provider.jwks.keys)}
            ), MAX_TTL_SECONDS
        uri = provider.jwks.uri
        with _tracer.start_as_current_span("sts.jwks_fetch") as span:
            span.set_attribute("wif.issuer", provider.issuer)
            if uri is None:
                uri = await self._jwks_uri(provider)
            document, cache_control = await self._get_json(uri)
        ttl = _ttl(cache_control, self._min_ttl or MIN_TTL_SECONDS)
        return self._keyset(provider, document), ttl

    @staticmethod
    def _keyset(provider: Provider, document: dict[str, Any]) -> KeySet:
        try:
            keys, errors = KeySet.from_jwks(document, provider.algorithms)
        except ValueError as exc:
            raise FetchError(f"the JWKS is not usable: {exc}") from exc
        for error in errors:
            log.warning("skipping a key of %s: %s", provider.issuer, error)
        return keys

    async def _jwks_uri(self, provider: Provider) -> str:
        url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document, _ = await self._get_json(url)
        if document.get("issuer") != provider.issuer:
            raise FetchError("the discovery document names another issuer")
        uri = document.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise FetchError("the discovery document has no usable jwks_uri")
        if uri.startswith("http://") and not provider.issuer.startswith("http://"):
            raise FetchError("an https issuer may not name an http jwks_uri")
        return uri

    async def _get_json(self, url: str) -> tuple[dict[str, Any], str | None]:
        timeout = aiohttp.ClientTimeout(
            total=self._fetch_timeout or FETCH_TIMEOUT_SECONDS
        )
        try:
            async with self._session.get(
                url, timeout=timeout, allow_redirects=False
            ) as resp:
                if resp.status != 200:
                    raise FetchError(f"{url} answered {resp.status}")
                body = await _read_limited(resp.content)
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise FetchError(f"{url} answered a document over the size limit")
                document = _json_object(body)
                return document, resp.headers.get("Cache-Control")
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as exc:
            raise FetchError(f"{url}: {type(exc).__name__}") from exc


async def _read_limited(stream: aiohttp.StreamReader) -> bytes:
    """The whole body, or its first MAX_DOCUMENT_BYTES + 1 bytes if it is longer."""
    # read(n) returns what has arrived so far, which may be a part of the body.
    body = bytearray()
    while len(body) <= MAX_DOCUMENT_BYTES:
        chunk = await stream.read(MAX_DOCUMENT_BYTES + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise FetchError("the document is not JSON") from exc
    if not isinstance(document, dict):
        raise FetchError("the document is not a JSON object")
    return document
