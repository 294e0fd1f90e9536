"""Settings of the Identity Token Service."""

from __future__ import annotations

from dataclasses import dataclass

from wif.keyring import SIGNING_ALGORITHMS
from wif.settings import CommonSettings, host_port, optional, setting


def _algorithm(value: str) -> str:
    if value not in SIGNING_ALGORITHMS:
        raise ValueError(f"must be one of {', '.join(SIGNING_ALGORITHMS)}")
    return value


@dataclass(frozen=True)
class ItsSettings(CommonSettings):
    """Identity Token Service: signs workload identity tokens, serves JWKS."""

    grpc_listen: str = setting(
        "127.0.0.1:50051",
        "gRPC listen address",
        env="WIF_ITS_GRPC_LISTEN",
        parse=host_port,
    )
    http_listen: str = setting(
        "127.0.0.1:8081",
        "HTTP listen address for JWKS and discovery",
        env="WIF_ITS_HTTP_LISTEN",
        parse=host_port,
    )
    kek_file: str | None = setting(
        None,
        "file holding the base64 key-encryption key for private keys at rest",
        env="WIF_KEK_FILE",
        parse=optional,
    )
    kek: str | None = setting(
        None,
        "the base64 key-encryption key itself, when no file is given",
        env="WIF_KEK",
        parse=optional,
    )
    signing_algorithm: str = setting(
        "ES256",
        "algorithm of new signing keys",
        env="WIF_SIGNING_ALGORITHM",
        parse=_algorithm,
    )
