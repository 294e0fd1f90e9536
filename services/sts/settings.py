"""Settings of the Security Token Service."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TypeVar

from wif.settings import CommonSettings, dns_name, host_port, setting
from wif.trust.model import ID_PATTERN

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


def audience_id(value: str) -> str:
    """Checks that ``value`` can name an audience; raises ``ValueError``."""
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(
            "must be an audience id: lower-case letters, digits, '.', '-' or "
            "'_', starting with a letter or digit"
        )
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
    its_server_name: str | None = setting(
        None,
        "with mTLS, the DNS name the ITS's certificate must carry, checked in "
        "place of the host of its_address "
        "(default its.<trust domain of tls_cert_file>.wif.internal)",
        env="WIF_ITS_SERVER_NAME",
        parse=dns_name,
    )
    policy_server_name: str | None = setting(
        None,
        "with mTLS, the DNS name the Policy service's certificate must carry, "
        "checked in place of the host of policy_address "
        "(default policy.<trust domain of tls_cert_file>.wif.internal)",
        env="WIF_POLICY_SERVER_NAME",
        parse=dns_name,
    )
    admin_networks: str = setting(
        "127.0.0.0/8,::1/128",
        "comma-separated networks (CIDR) from which the HTTP introspection "
        "(/introspect) and revocation (/revoke) endpoints may be called at all; "
        "callers inside them still authenticate with a mesh token; empty "
        "allows nobody",
        env="WIF_STS_ADMIN_NETWORKS",
        parse=network_list,
    )
    token_admin_audience: str = setting(
        "wif-sts",
        "audience a caller's mesh token must carry to call /introspect and "
        "/revoke: the id of an audience of the trust configuration that "
        "offers the scopes wif.tokens.introspect and wif.tokens.revoke",
        env="WIF_STS_TOKEN_ADMIN_AUDIENCE",
        parse=audience_id,
    )
    peer_timeout_seconds: float = setting(
        3.0,
        "deadline in seconds of each call to the Policy service and the ITS",
        env="WIF_STS_PEER_TIMEOUT_SECONDS",
        parse=lambda value: positive(float(value)),
    )
    breaker_failures: int = setting(
        5,
        "consecutive UNAVAILABLE or DEADLINE_EXCEEDED answers from a peer after "
        "which the STS stops calling it (the circuit opens)",
        env="WIF_STS_BREAKER_FAILURES",
        parse=lambda value: positive(int(value)),
    )
    breaker_cooldown_seconds: float = setting(
        0.5,
        "seconds an open circuit waits before one probe call to the peer",
        env="WIF_STS_BREAKER_COOLDOWN_SECONDS",
        parse=lambda value: positive(float(value)),
    )
    peer_max_in_flight: int = setting(
        256,
        "most calls to one peer waiting at once; more are refused at once",
        env="WIF_STS_PEER_MAX_IN_FLIGHT",
        parse=lambda value: positive(int(value)),
    )
    rate_limit_per_second: float = setting(
        0.0,
        "requests a second each caller (source address) may make, on gRPC and "
        "HTTP together; 0 turns rate limiting off",
        env="WIF_STS_RATE_LIMIT_PER_SECOND",
        parse=lambda value: not_negative(float(value)),
    )
    rate_limit_burst: int = setting(
        100,
        "requests a caller may make at once before its rate applies",
        env="WIF_STS_RATE_LIMIT_BURST",
        parse=lambda value: positive(int(value)),
    )
    jwks_fetch_timeout_seconds: float = setting(
        5.0,
        "seconds one fetch of a foreign discovery document or JWKS may take",
        env="WIF_STS_JWKS_FETCH_TIMEOUT_SECONDS",
        parse=lambda value: positive(float(value)),
    )
    jwks_min_ttl_seconds: float = setting(
        60.0,
        "shortest time a foreign JWKS is cached, whatever its Cache-Control says",
        env="WIF_STS_JWKS_MIN_TTL_SECONDS",
        parse=lambda value: positive(float(value)),
    )
    jwks_max_stale_seconds: float = setting(
        3600.0,
        "how long cached foreign keys keep serving while their issuer cannot "
        "be reached; after that exchanges fail with JWKS_UNAVAILABLE",
        env="WIF_STS_JWKS_MAX_STALE_SECONDS",
        parse=lambda value: positive(float(value)),
    )


N = TypeVar("N", int, float)


def positive(value: N) -> N:
    """Checks that a number is above zero; raises ``ValueError``."""
    if not value > 0:
        raise ValueError("must be above zero")
    return value


def not_negative(value: N) -> N:
    """Checks that a number is zero or more; raises ``ValueError``."""
    if not value >= 0:
        raise ValueError("must not be negative")
    return value
