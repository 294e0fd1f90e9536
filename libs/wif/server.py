"""Bootstrap shared by the three services: gRPC server, health, drain.

Every service builds its server with :func:`start_grpc_server`, which adds
the standard health and reflection services and the tracing interceptor,
binds the listen address (port 0 picks a free port, so tests run side by
side) and reports the bound port. With the TLS settings given, the server
speaks TLS with certificates that reload without a restart, and a
:class:`~wif.callers.CallerAuthorizer` checks each caller's SPIFFE ID;
:func:`wif.channels.client_channel` opens mTLS channels with the same files, to a
peer that must prove, by a name in its certificate, which service it is.
:func:`wait_for_signal` returns on SIGTERM or SIGINT so that the service can
drain: health turns NOT_SERVING, new calls are refused and calls in flight
get a grace period.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from wif import spiffe
from wif.audit import AuditLog
from wif.callers import CallerAuthorizer, Callers, CallerSettings, RefusalAudit
from wif.grpc_errors import DecodeGuard
from wif.http_guard import HttpLimits, start_guarded_site
from wif.logs import configure_logging
from wif.metrics import (
    PROMETHEUS_CONTENT_TYPE,
    prometheus_text,
    setup_metrics,
    shutdown_metrics,
)
from wif.settings import SettingsError, load_settings
from wif.telemetry import (
    server_interceptors,
    setup_tracing,
    shutdown_tracing,
)
from wif.tls import (
    TlsFiles,
    TlsMaterial,
    TlsSettings,
    server_credentials,
)

log = logging.getLogger(__name__)

S = TypeVar("S", bound="ServiceSettings")

#: Largest request a service accepts; tokens are capped at 8 KB, so this is generous.
#: A larger message is refused by the gRPC transport itself with
#: RESOURCE_EXHAUSTED (no ErrorInfo: the service never sees the message).
MAX_MESSAGE_BYTES = 256 * 1024

#: Longest HTTP request line (method, path, query) the HTTP endpoints read.
MAX_HTTP_LINE_BYTES = 4096
#: Longest HTTP header (name and value) and most headers in one request; a
#: longer or larger header section is answered 400 before any handler runs.
MAX_HTTP_FIELD_BYTES = 8192
MAX_HTTP_HEADERS = 64
#: Seconds an idle keep-alive HTTP connection stays open. How long a request
#: head may take to arrive is the setting ``http_head_timeout_seconds``, and
#: how many connections a listener holds ``http_max_connections``
#: (see :mod:`wif.http_guard`).
HTTP_KEEPALIVE_SECONDS = 15.0

#: Seconds that calls in flight get to finish after SIGTERM.
DRAIN_GRACE_SECONDS = 5.0


@dataclass
class RunningServer:
    """A started gRPC server and its health service."""

    server: grpc.aio.Server
    port: int
    health: HealthServicer
    service_names: tuple[str, ...]

    async def drain(self, grace: float = DRAIN_GRACE_SECONDS) -> None:
        """Marks every service NOT_SERVING, then stops after ``grace`` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)

    async def set_serving(self, serving: bool) -> None:
        """Reports the overall health of the process."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            await self.health.set(name, status)


async def start_grpc_server(
    listen: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Iterable[str],
    *,
    credentials: grpc.ServerCredentials | None = None,
    interceptors: Sequence[Any] = (),
) -> RunningServer:
    """Builds, binds and starts a server; ``register`` adds the servicers.

    Without ``credentials`` the server speaks plaintext.
    """
    server = grpc.aio.server(
        interceptors=[*server_interceptors(), DecodeGuard(), *interceptors],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    register(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = tuple(service_names)
    reflection.enable_server_reflection(
        (
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    if credentials is None:
        port = server.add_insecure_port(listen)
    else:
        port = server.add_secure_port(listen, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    running = RunningServer(
        server=server, port=port, health=health, service_names=names
    )
    await running.set_serving(True)
    return running


def own_trust_domain(files: TlsFiles, material: TlsMaterial) -> str:
    """The trust domain of this service's own certificate; raises SettingsError."""
    trust_domain = spiffe.trust_domain_of(material.spiffe_id or "")
    if trust_domain is None:
        raise SettingsError(
            f"setting tls_cert_file: {files.cert} holds no SPIFFE ID in a URI SAN"
        )
    return trust_domain


async def wait_for_signal() -> None:
    """Returns when the process receives SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def write_ready_file(path: str | None, endpoints: dict[str, Any]) -> None:
    """Writes the bound endpoints as JSON, atomically, for launchers and tests."""
    if not path:
        return
    target = Path(path)
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(endpoints), encoding="utf-8")
    tmp.replace(target)


@dataclass
class ServiceParts:
    """What one service contributes to :func:`run_service`."""

    name: str
    register: Callable[[grpc.aio.Server], None]
    service_names: tuple[str, ...]
    background: list[Coroutine[Any, Any, None]] = field(default_factory=list)
    http_app: web.Application | None = None
    http_listen: str | None = None
    ready: Callable[[], Awaitable[None]] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    #: Where calls refused for their caller's identity are recorded.
    audit: RefusalAudit | None = None
    #: Whether callers must present a mesh certificate when TLS is on.
    client_certificates: bool = True


def server_security(
    parts: ServiceParts, settings: ServiceSettings
) -> tuple[grpc.ServerCredentials | None, list[Any]]:
    """TLS credentials and the caller check, or (None, []) when TLS is off."""
    files = TlsFiles.from_settings(settings)
    if files is None:
        log.warning(
            "%s: TLS is off; gRPC is plaintext and callers unchecked", parts.name
        )
        return None, []
    material = files.read_at_start()
    trust_domain = own_trust_domain(files, material)
    credentials = server_credentials(
        files, material, require_client_certificate=parts.client_certificates
    )
    callers = Callers.from_settings(settings, trust_domain)
    log.info(
        "%s: mTLS on as %s",
        parts.name,
        material.spiffe_id,
        extra={
            "fields": {
                "client_certificates": parts.client_certificates,
                "dns_names": list(material.dns_names),
            }
        },
    )
    return credentials, [CallerAuthorizer(callers, parts.audit)]


async def _start_http(
    app: web.Application, listen: str, limits: HttpLimits
) -> tuple[web.AppRunner, int]:
    host, _, port = listen.rpartition(":")
    runner, _guard, bound = await start_guarded_site(
        app,
        host.strip("[]"),
        int(port),
        limits,
        access_log=None,
        max_line_size=MAX_HTTP_LINE_BYTES,
        max_field_size=MAX_HTTP_FIELD_BYTES,
        max_headers=MAX_HTTP_HEADERS,
        keepalive_timeout=HTTP_KEEPALIVE_SECONDS,
    )
    return runner, bound


def metrics_app() -> web.Application:
    """An application serving ``GET /metrics`` for Prometheus."""

    async def scrape(request: web.Request) -> web.Response:
        body = prometheus_text()
        return web.Response(
            body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE}
        )

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


async def run_service(parts: ServiceParts, settings: ServiceSettings) -> None:
    """Runs a service until SIGTERM or SIGINT, then drains it.

    Background tasks (configuration and key followers) start first; the
    servers start once ``parts.ready`` returns, and the ready file is written
    after both servers are bound.
    """
    tasks = [asyncio.create_task(job) for job in parts.background]
    try:
        if parts.ready is not None:
            await parts.ready()
        credentials, interceptors = server_security(parts, settings)
        running = await start_grpc_server(
            settings.grpc_listen,
            parts.register,
            parts.service_names,
            credentials=credentials,
            interceptors=interceptors,
        )
        endpoints: dict[str, Any] = {"service": parts.name, "grpc_port": running.port}
        limits = HttpLimits(
            head_timeout=settings.http_head_timeout_seconds,
            max_connections=settings.http_max_connections,
        )
        runners = []
        if parts.http_app is not None and parts.http_listen:
            runner, endpoints["http_port"] = await _start_http(
                parts.http_app, parts.http_listen, limits
            )
            runners.append(runner)
        if settings.metrics_listen:
            runner, endpoints["metrics_port"] = await _start_http(
                metrics_app(), settings.metrics_listen, limits
            )
            runners.append(runner)
        # What start-up built lives as long as the process; frozen, it is left
        # out of the collector's full passes, which would otherwise walk it
        # again and again while requests wait.
        gc.collect()
        gc.freeze()
        write_ready_file(settings.ready_file, endpoints)
        log.info("%s serving", parts.name, extra={"fields": endpoints})
        await wait_for_signal()
        log.info("%s draining", parts.name)
        await running.drain()
        for runner in runners:
            await runner.cleanup()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if parts.close is not None:
            await parts.close()
        if isinstance(parts.audit, AuditLog):
            await parts.audit.flush()
        shutdown_tracing()
        shutdown_metrics()


class ServiceSettings(TlsSettings, CallerSettings, Protocol):
    """What :func:`run_main` reads from a service's settings."""

    @property
    def grpc_listen(self) -> str: ...
    @property
    def ready_file(self) -> str | None: ...
    @property
    def log_level(self) -> str: ...
    @property
    def metrics_listen(self) -> str | None: ...
    @property
    def http_head_timeout_seconds(self) -> float: ...
    @property
    def http_max_connections(self) -> int: ...


def run_main(
    name: str,
    settings_class: type[S],
    build: Callable[[S], Awaitable[ServiceParts]],
    argv: Sequence[str] | None = None,
) -> None:
    """The body of every service's ``main``: settings, logging, tracing, serve."""
    settings = load_settings(settings_class, argv, prog=f"wif-{name}")
    configure_logging(name, settings.log_level)
    setup_tracing(f"wif-{name}")
    setup_metrics(f"wif-{name}")

    async def serve() -> None:
        parts = await build(settings)
        await run_service(parts, settings)

    asyncio.run(serve())
