"""Entry point of the Security Token Service (``wif-sts``)."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import grpc

from services.sts.admission import Admission
from services.sts.client_auth import ClientAuthenticator
from services.sts.exchange import TokenExchanger
from services.sts.foreign_keys import ForeignKeys
from services.sts.http import build_app
from services.sts.peers import Peer, is_outage
from services.sts.replay import ReplayGuard
from services.sts.revocation import TokenAdministration
from services.sts.servicer import SecurityTokenServicer
from services.sts.settings import StsSettings, networks
from services.sts.subject import Authenticator
from services.sts.validation import MeshTokenFacts, MeshTokenValidator
from wif.audit import AuditLog
from wif.breaker import CircuitBreaker
from wif.channels import client_channel
from wif.keyring import KeyringFollower
from wif.ratelimit import RateLimiter
from wif.revocations import RevocationList
from wif.server import ServiceParts, run_main
from wif.store import EtcdStore
from wif.tls import TlsFiles
from wif.trust.follower import TrustFollower
from wif.v1 import its_pb2_grpc, policy_pb2_grpc, sts_pb2, sts_pb2_grpc

SERVICE_NAME = sts_pb2.DESCRIPTOR.services_by_name["SecurityTokenService"].full_name


async def build(settings: StsSettings) -> ServiceParts:
    """Wires the STS from its settings, inside the running event loop."""
    store = EtcdStore(settings.etcd_endpoint)
    audit = AuditLog("sts", settings.audit_log)
    trust = TrustFollower(store, audit=audit)
    keyring = KeyringFollower(store)
    tls = TlsFiles.from_settings(settings)
    policy_channel = client_channel(
        settings.policy_address,
        tls,
        service="policy",
        server_name=settings.policy_server_name,
    )
    its_channel = client_channel(
        settings.its_address, tls, service="its", server_name=settings.its_server_name
    )
    session = aiohttp.ClientSession(trust_env=False)
    revoked = RevocationList(store)
    validator = MeshTokenValidator(trust, keyring, revoked, audit=audit)
    foreign_keys = ForeignKeys(
        session,
        fetch_timeout=settings.jwks_fetch_timeout_seconds,
        min_ttl=settings.jwks_min_ttl_seconds,
        max_stale=settings.jwks_max_stale_seconds,
    )
    exchanger = TokenExchanger(
        trust,
        Authenticator(foreign_keys, MeshTokenFacts(validator)),
        policy_pb2_grpc.PolicyServiceStub(policy_channel),
        its_pb2_grpc.IdentityTokenServiceStub(its_channel),
        audit,
        ReplayGuard(store),
        policy_peer=_peer("policy service", settings),
        its_peer=_peer("identity token service", settings),
    )
    limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    admission = Admission(limiter, audit)
    servicer = SecurityTokenServicer(exchanger, validator, admission)
    admin = TokenAdministration(validator, store, revoked, audit)
    clients = ClientAuthenticator(
        validator,
        settings.token_admin_audience,
        networks(settings.admin_networks),
        audit,
    )

    def register(server: grpc.aio.Server) -> None:
        sts_pb2_grpc.add_SecurityTokenServiceServicer_to_server(servicer, server)

    async def close() -> None:
        await session.close()
        await policy_channel.close()
        await its_channel.close()
        await store.close()

    return ServiceParts(
        name="sts",
        register=register,
        service_names=(SERVICE_NAME,),
        background=[trust.run(), keyring.follow(), revoked.follow()],
        http_app=build_app(exchanger, admin, clients, admission),
        http_listen=settings.http_listen,
        ready=store.connect,
        close=close,
        audit=audit,
        # Workloads present their platform token, not a mesh certificate.
        client_certificates=False,
    )


def _peer(name: str, settings: StsSettings) -> Peer:
    breaker = CircuitBreaker(
        name,
        is_outage,
        failure_threshold=settings.breaker_failures,
        cooldown_seconds=settings.breaker_cooldown_seconds,
        max_in_flight=settings.peer_max_in_flight,
    )
    return Peer(name, settings.peer_timeout_seconds, breaker)


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the STS until SIGTERM."""
    run_main("sts", StsSettings, build, argv)


if __name__ == "__main__":
    main()
