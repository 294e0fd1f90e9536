"""Settings of the Policy service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wif.settings import CommonSettings, host_port, setting


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return parse


@dataclass(frozen=True)
class PolicySettings(CommonSettings):
    """Policy service: Cedar decisions over the trust hierarchy."""

    grpc_listen: str = setting(
        "127.0.0.1:50053",
        "gRPC listen address",
        env="WIF_POLICY_GRPC_LISTEN",
        parse=host_port,
    )
    authz_cache_seconds: int = setting(
        30,
        "seconds an Envoy authorization answer is reused (0 turns the cache off)",
        env="WIF_POLICY_AUTHZ_CACHE_SECONDS",
        parse=_bounded(0, 300),
    )
    authz_cache_entries: int = setting(
        10_000,
        "Envoy authorization answers kept per replica",
        env="WIF_POLICY_AUTHZ_CACHE_ENTRIES",
        parse=_bounded(1, 1_000_000),
    )
    risk_history_principals: int = setting(
        10_000,
        "principals whose request history is kept per replica for risk scoring",
        env="WIF_POLICY_RISK_HISTORY_PRINCIPALS",
        parse=_bounded(1, 1_000_000),
    )
