"""The RPC ceiling: a servicer that answers a constant, on the services' stack.

Run as ``python -m tests.bench.echo_server``. It answers
``SecurityTokenService.ValidateToken`` with one prebuilt reply, behind the
same :func:`wif.server.start_grpc_server` (tracing and decode interceptors,
health, reflection, message limits), with the same logging and tracing
set-up as the services, in a process of its own like they are.

``WIF_ECHO_GRPC_LISTEN`` is the listen address and ``WIF_READY_FILE`` the
file that receives the bound port.
"""

from __future__ import annotations

import asyncio
import os

import grpc
from google.protobuf import struct_pb2

from wif.logs import configure_logging
from wif.server import start_grpc_server, wait_for_signal, write_ready_file
from wif.telemetry import setup_tracing, shutdown_tracing
from wif.v1 import sts_pb2, sts_pb2_grpc

SERVICE_NAME = sts_pb2.DESCRIPTOR.services_by_name["SecurityTokenService"].full_name


def constant_reply() -> sts_pb2.ValidateTokenResponse:
    """A reply shaped like a real validation, so both carry similar bytes."""
    claims = struct_pb2.Struct()
    claims.update({"sub": "spiffe://acme.example/echo", "aud": "payments-api"})
    return sts_pb2.ValidateTokenResponse(
        subject="spiffe://acme.example/echo",
        token_id="echo",
        expires_at=2_000_000_000,
        claims=claims,
    )


class EchoServicer(sts_pb2_grpc.SecurityTokenServiceServicer):
    """Answers every ValidateToken with the same reply, doing nothing else."""

    def __init__(self) -> None:
        self._reply = constant_reply()

    async def ValidateToken(
        self, request: sts_pb2.ValidateTokenRequest, context: grpc.aio.ServicerContext
    ) -> sts_pb2.ValidateTokenResponse:
        return self._reply


async def serve() -> None:
    """Serves until SIGTERM."""
    listen = os.environ.get("WIF_ECHO_GRPC_LISTEN", "127.0.0.1:0")

    def register(server: grpc.aio.Server) -> None:
        sts_pb2_grpc.add_SecurityTokenServiceServicer_to_server(EchoServicer(), server)

    running = await start_grpc_server(listen, register, (SERVICE_NAME,))
    write_ready_file(os.environ.get("WIF_READY_FILE"), {"grpc_port": running.port})
    await wait_for_signal()
    await running.drain(grace=1)


def main() -> None:
    configure_logging("echo", "info")
    setup_tracing("wif-echo")
    try:
        asyncio.run(serve())
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
