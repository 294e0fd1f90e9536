"""Settings of the Security Token Service."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from wif.settings import CommonSettings, host_port, setting

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def networks(value: str) -> Networks:
    """A comma-separated list of IP networks (CIDR); empty allows nobody."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=True)
        for part in value.split(",")
        if part.strip()
    )


def network_list(value: str) -> str:
    """Checks a comma-separated list of networks; raises ``ValueError``."""
    networks(value)
    return value


@dataclass(frozen=True)
class StsSettings(CommonSettings):
    """Security Token Service: RFC 8693 token exchange and validation."""

    grpc_listen: str = setting(
        "127.0.0.1:50052",
        "gRPC listen address",
        env="WIF_STS_GRPC_LISTEN",
        parse=host_port,
    )
    http_listen: str = setting(
        "127.0.0.1:8082",
        "HTTP listen address for the RFC 8693 token endpoint",
        env="WIF_STS_HTTP_LISTEN",
        parse=host_port,
    )
    its_address: str = setting(
        "127.0.0.1:50051",
        "gRPC address of the ITS",
        env="WIF_ITS_ADDRESS",
        parse=host_port,
    )
    policy_address: str = setting(
        "127.0.0.1:50053",
        "gRPC address of the Policy service",
        env="WIF_POLICY_ADDRESS",
        parse=host_port,
    )
    admin_networks: str = setting(
        "127.0.0.0/8,::1/128",
        "comma-separated networks (CIDR) allowed to call the HTTP introspection "
        "(/introspect) and revocation (/revoke) endpoints; empty allows nobody",
        env="WIF_STS_ADMIN_NETWORKS",
        parse=network_list,
    )
