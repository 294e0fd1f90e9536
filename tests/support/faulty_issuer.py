"""A foreign OpenID issuer on loopback whose JWKS endpoint can fail or hang.

It runs its own event loop in a thread, so that a module-scoped fixture can
start it before the mesh (the trust configuration names its address) and a
test can switch its behaviour between requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

from aiohttp import web

from wif.tokens import SigningKey

#: How long a hanging JWKS request waits before the issuer gives up on it.
HANG_SECONDS = 30.0


class FaultyIssuer:
    """Serves ``/jwks`` with ``Cache-Control: max-age=1``; ``mode`` is one of
    ``ok``, ``fail`` (503) or ``hang`` (no answer for HANG_SECONDS)."""

    def __init__(self) -> None:
        self.key = SigningKey.generate("ES256")
        self.mode = "ok"
        self.fetches = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        """Starts serving on a free loopback port; sets ``url``."""
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Stops serving and ends the thread."""
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
            future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def token(
        self,
        subject: str,
        audience: str,
        lifetime: int = 600,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A token of this issuer, signed with its key, with ``extra`` claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": f"{subject}-{time.monotonic_ns()}",
            **(extra or {}),
        }
        return self.key.sign(claims)

    async def _stop(self) -> None:
        assert self._release is not None
        assert self._runner is not None
        self._release.set()
        await self._runner.cleanup()

    async def _start(self) -> int:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_get("/jwks", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.mode == "fail":
            return web.Response(status=503)
        if self.mode == "hang":
            assert self._release is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), HANG_SECONDS)
        return web.json_response(
            {"keys": [self.key.public_jwk()]},
            headers={"Cache-Control": "max-age=1"},
        )
