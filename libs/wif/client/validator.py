"""Checking mesh tokens locally, from the ITS's published keys.

The key set comes from ``<issuer>/.well-known/jwks.json`` and is kept as
long as the ITS's ``Cache-Control: max-age`` allows. A token naming a key
the cached set lacks makes the validator fetch again, at most once per
cooldown, so that forged kids cannot turn it into a flood of requests at
the ITS. Every check is :func:`wif.mesh_tokens.verify_mesh_token`'s: strict
parsing, the key chosen by ``kid``, its pinned algorithm, then the claims.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from wif.client.errors import JwksUnavailable
from wif.errors import InvalidGrant, InvalidToken
from wif.mesh_tokens import MeshToken, verify_mesh_token
from wif.tokens import SIGNING_ALGORITHMS, KeySet, parse_compact

log = logging.getLogger(__name__)

JWKS_PATH: Final = "/.well-known/jwks.json"
#: Used when the ITS sends no max-age.
DEFAULT_CACHE_SECONDS: Final = 300
MAX_CACHE_SECONDS: Final = 86400
DEFAULT_REFETCH_COOLDOWN_SECONDS: Final = 30.0
#: How long an expired key set is still used while the ITS cannot be reached.
MAX_STALE_SECONDS: Final = 3600.0
FETCH_TIMEOUT_SECONDS: Final = 5.0
_MAX_DOCUMENT_BYTES: Final = 512 * 1024
_MAX_AGE: Final = re.compile(r"(?:^|[,\s])max-age=(\d+)")

#: Fetches a URL and returns the parsed JSON and the Cache-Control header.
Fetch = Callable[[str], tuple[Any, str | None]]


def cache_seconds(cache_control: str | None) -> float:
    """How long a response may be kept under ``cache_control`` (RFC 9111 5.2.2).

    ``no-store`` and ``no-cache`` mean it must be fetched again next time.
    """
    directives = (cache_control or "").lower()
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    match = _MAX_AGE.search(directives)
    if match is None:
        return float(DEFAULT_CACHE_SECONDS)
    return float(min(int(match.group(1)), MAX_CACHE_SECONDS))


@dataclass(frozen=True)
class _Keys:
    keys: KeySet
    fetched_at: float
    fresh_until: float


class LocalValidator:
    """Validates the mesh's tokens for one issuer without calling the mesh.

    ``clock`` is the wall clock the claims are checked against; ``monotonic``
    times the cache. Both can be injected for tests.
    """

    def __init__(
        self,
        issuer: str,
        *,
        audience: str = "",
        jwks_url: str | None = None,
        refetch_cooldown: float = DEFAULT_REFETCH_COOLDOWN_SECONDS,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``audience`` is required of every token unless :meth:`validate` names one.

        Raises:
            ValueError: the JWKS URL is not http or https.
        """
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url or issuer.rstrip("/") + JWKS_PATH
        if urllib.parse.urlsplit(self.jwks_url).scheme not in ("http", "https"):
            raise ValueError("the JWKS URL must be http or https")
        self._cooldown = refetch_cooldown
        self._fetch = fetch or fetch_json
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: _Keys | None = None
        self._last_attempt: float | None = None
        self.fetches = 0

    def validate(self, token: str, audience: str | None = None) -> MeshToken:
        """The facts of ``token`` if the mesh issued it for the audience.

        Raises:
            InvalidToken: with the reason of the check that failed, such as
                BAD_SIGNATURE, UNKNOWN_KEY_ID, TOKEN_EXPIRED or AUDIENCE_MISMATCH.
            JwksUnavailable: the keys could not be fetched and none are cached.
        """
        try:
            kid = parse_compact(token).header.get("kid")
        except InvalidGrant as error:
            raise InvalidToken(error.message, reason=error.reason) from error

        keys = self._keys_for(kid if isinstance(kid, str) else None)
        return verify_mesh_token(
            token,
            keys,
            issuer=self.issuer,
            audience=self.audience if audience is None else audience,
            now=self._clock(),
        )

    def _keys_for(self, kid: str | None) -> KeySet:
        with self._lock:
            cached = self._cached
            now = self._monotonic()
            if self._needs_refresh(cached, kid, now):
                cached = self._refresh(now, cached)
            assert cached is not None, "a refresh returns keys or raises"
            return cached.keys

    def _needs_refresh(self, cached: _Keys | None, kid: str | None, now: float) -> bool:
        if cached is None or now >= cached.fresh_until:
            return True
        unknown = kid is not None and kid not in cached.keys
        return unknown and self._may_refetch(now)

    def _may_refetch(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self._cooldown

    def _refresh(self, now: float, cached: _Keys | None) -> _Keys:
        if cached is not None and not self._may_refetch(now):
            return cached

        self._last_attempt = now
        self.fetches += 1
        try:
            document, cache_control = self._fetch(self.jwks_url)
            keys, problems = KeySet.from_jwks(document, SIGNING_ALGORITHMS)
        except (JwksUnavailable, ValueError) as exc:
            return self._stale(now, cached, exc)

        for problem in problems:
            log.warning("the ITS's JWKS has an unusable key: %s", problem)
        self._cached = _Keys(keys, now, now + cache_seconds(cache_control))
        return self._cached

    def _stale(self, now: float, cached: _Keys | None, exc: Exception) -> _Keys:
        if cached is None or now - cached.fetched_at > MAX_STALE_SECONDS:
            raise JwksUnavailable(f"the ITS's keys are unavailable: {exc}") from exc
        log.warning("keeping the cached JWKS: %s", exc)
        return cached


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch_json(url: str) -> tuple[Any, str | None]:
    """GET ``url`` as JSON; no redirects followed.

    Raises:
        JwksUnavailable: the request failed or the body is not JSON.
    """
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
            body = response.read(_MAX_DOCUMENT_BYTES + 1)
            cache_control = response.headers.get("Cache-Control")
    except (urllib.error.URLError, OSError) as exc:
        raise JwksUnavailable(f"GET {url} failed") from exc

    if len(body) > _MAX_DOCUMENT_BYTES:
        raise JwksUnavailable(f"GET {url}: the document is too large")
    try:
        return json.loads(body), cache_control
    except ValueError as exc:
        raise JwksUnavailable(f"GET {url}: the document is not JSON") from exc
