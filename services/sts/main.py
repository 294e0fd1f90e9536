"""Entry point of the Security Token Service (``wif-sts``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
import grpc

from services.sts.exchange import TokenExchanger
from services.sts.foreign_keys import ForeignKeys
from services.sts.http import build_app
from services.sts.servicer import SecurityTokenServicer
from services.sts.settings import StsSettings
from services.sts.validation import MeshTokenValidator
from wif.audit import AuditLog
from wif.keyring import KeyringFollower
from wif.logs import configure_logging
from wif.server import ServiceParts, client_channel, run_service
from wif.settings import load_settings
from wif.store import EtcdStore
from wif.telemetry import setup_tracing
from wif.trust.follower import TrustFollower
from wif.v1 import its_pb2_grpc, policy_pb2_grpc, sts_pb2, sts_pb2_grpc

SERVICE_NAME = sts_pb2.DESCRIPTOR.services_by_name["SecurityTokenService"].full_name


async def serve(settings: StsSettings) -> None:
    """Wires the STS from its settings and runs it until SIGTERM."""
    store = EtcdStore(settings.etcd_endpoint)
    trust = TrustFollower(store)
    keyring = KeyringFollower(store)
    policy_channel = client_channel(settings.policy_address)
    its_channel = client_channel(settings.its_address)
    session = aiohttp.ClientSession(trust_env=False)
    exchanger = TokenExchanger(
        trust,
        ForeignKeys(session),
        policy_pb2_grpc.PolicyServiceStub(policy_channel),
        its_pb2_grpc.IdentityTokenServiceStub(its_channel),
        AuditLog("sts", settings.audit_log),
    )
    servicer = SecurityTokenServicer(exchanger, MeshTokenValidator(trust, keyring))

    def register(server: grpc.aio.Server) -> None:
        sts_pb2_grpc.add_SecurityTokenServiceServicer_to_server(servicer, server)

    async def close() -> None:
        await session.close()
        await policy_channel.close()
        await its_channel.close()
        await store.close()

    parts = ServiceParts(
        name="sts",
        register=register,
        service_names=(SERVICE_NAME,),
        background=[trust.run(), keyring.follow()],
        http_app=build_app(exchanger),
        http_listen=settings.http_listen,
        ready=store.connect,
        close=close,
    )
    await run_service(parts, settings.grpc_listen, settings.ready_file)


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the STS until SIGTERM."""
    settings = load_settings(StsSettings, argv, prog="wif-sts")
    configure_logging("sts", settings.log_level)
    setup_tracing("wif-sts")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
