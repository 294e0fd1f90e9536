"""Entry point of the Policy service (``wif-policy``)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from services.policy import envoy_authz
from services.policy.decider import Decider
from services.policy.engine import PolicyEngine
from services.policy.envoy_authz import DecisionCache, EnvoyAuthorizer
from services.policy.restrictions import Quarantines, Revocations
from services.policy.risk import RiskSettings, RiskTracker
from services.policy.servicer import PolicyServicer
from services.policy.settings import PolicySettings
from wif.audit import AuditLog
from wif.keyring import KeyringFollower
from wif.server import ServiceParts, run_main
from wif.store import EtcdStore
from wif.trust.follower import TrustFollower
from wif.v1 import policy_pb2, policy_pb2_grpc

SERVICE_NAME = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name


async def build(settings: PolicySettings) -> ServiceParts:
    """Wires the Policy service from its settings."""
    store = EtcdStore(settings.etcd_endpoint)
    quarantines = Quarantines(store)
    revocations = Revocations(store)
    keyring = KeyringFollower(store)
    risk = RiskTracker(RiskSettings(max_principals=settings.risk_history_principals))
    decider = Decider(PolicyEngine(), quarantines, risk)
    audit = AuditLog("policy", settings.audit_log)
    trust = TrustFollower(store, prepare=decider.prepare, audit=audit)
    servicer = PolicyServicer(decider, audit)
    authorizer = EnvoyAuthorizer(
        decider,
        keyring,
        quarantines,
        revocations,
        audit,
        DecisionCache(settings.authz_cache_seconds, settings.authz_cache_entries),
    )

    def register(server: grpc.aio.Server) -> None:
        policy_pb2_grpc.add_PolicyServiceServicer_to_server(servicer, server)
        envoy_authz.register(authorizer, server)

    return ServiceParts(
        name="policy",
        register=register,
        service_names=(SERVICE_NAME, envoy_authz.SERVICE_NAME),
        background=[
            trust.run(),
            keyring.follow(),
            quarantines.follow(),
            revocations.follow(),
        ],
        ready=store.connect,
        close=store.close,
        audit=audit,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the Policy service until SIGTERM."""
    run_main("policy", PolicySettings, build, argv)


if __name__ == "__main__":
    main()
