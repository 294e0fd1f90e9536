"""Small real loopback servers the client library talks to in unit tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from grpc_status import rpc_status

from wif.errors import WifError
from wif.grpc_errors import to_status
from wif.v1 import sts_pb2, sts_pb2_grpc


@dataclass
class StsBehaviour:
    """What the stand-in STS answers; tests change it while it runs."""

    expires_in: int = 3600
    failures_left: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    hold_from_call: int | None = None
    refusal: WifError | None = None
    calls: int = 0
    subject_tokens: list[str] = field(default_factory=list)


class _Sts(sts_pb2_grpc.SecurityTokenServiceServicer):
    def __init__(self, behaviour: StsBehaviour) -> None:
        self.behaviour = behaviour

    def ExchangeToken(
        self, request: sts_pb2.ExchangeTokenRequest, context: grpc.ServicerContext
    ) -> sts_pb2.ExchangeTokenResponse:
        behaviour = self.behaviour
        behaviour.calls += 1
        number = behaviour.calls
        behaviour.subject_tokens.append(request.subject_token)
        if behaviour.hold_from_call is not None and number >= behaviour.hold_from_call:
            behaviour.release.wait(timeout=30)
        if behaviour.refusal is not None:
            context.abort_with_status(
                rpc_status.to_status(to_status(behaviour.refusal))
            )
        if behaviour.failures_left > 0:
            behaviour.failures_left -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "the STS is down")
        return sts_pb2.ExchangeTokenResponse(
            access_token=f"mesh-token-{number}",
            issued_token_type="urn:ietf:params:oauth:token-type:jwt",
            token_type="Bearer",
            expires_in=behaviour.expires_in,
            scope=list(request.scope),
            token_id=f"jti-{number}",
        )


@contextmanager
def stand_in_sts(behaviour: StsBehaviour) -> Iterator[str]:
    """A gRPC server on loopback that answers ExchangeToken as ``behaviour`` says."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    sts_pb2_grpc.add_SecurityTokenServiceServicer_to_server(_Sts(behaviour), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        behaviour.release.set()
        server.stop(grace=None)


@dataclass
class JwksBehaviour:
    """The JWKS document and Cache-Control the stand-in ITS serves."""

    document: dict[str, Any]
    cache_control: str | None = "public, max-age=300"
    requests: int = 0


@contextmanager
def jwks_server(behaviour: JwksBehaviour) -> Iterator[str]:
    """An HTTP server on loopback serving the JWKS path; yields its issuer URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            behaviour.requests += 1
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            body = json.dumps(behaviour.document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if behaviour.cache_control is not None:
                self.send_header("Cache-Control", behaviour.cache_control)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
