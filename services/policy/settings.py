"""Settings of the Policy service."""

from __future__ import annotations

from dataclasses import dataclass

from wif.settings import CommonSettings, host_port, setting


@dataclass(frozen=True)
class PolicySettings(CommonSettings):
    """Policy service: Cedar decisions over the trust hierarchy."""

    grpc_listen: str = setting(
        "127.0.0.1:50053",
        "gRPC listen address",
        env="WIF_POLICY_GRPC_LISTEN",
        parse=host_port,
    )
