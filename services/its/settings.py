"""Settings of the Identity Token Service."""

from __future__ import annotations

import re
from dataclasses import dataclass

from wif.keyring import SIGNING_ALGORITHMS
from wif.settings import CommonSettings, host_port, optional, setting
from wif.trust.model import MAX_LIFETIME_SECONDS

#: Where the private parts of signing keys live.
SIGNER_BACKENDS = ("sealed", "pkcs11")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d)?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _algorithm(value: str) -> str:
    if value not in SIGNING_ALGORITHMS:
        raise ValueError(f"must be one of {', '.join(SIGNING_ALGORITHMS)}")
    return value


def _signer(value: str) -> str:
    if value not in SIGNER_BACKENDS:
        raise ValueError(f"must be one of {', '.join(SIGNER_BACKENDS)}")
    return value


def duration(value: str) -> float:
    """A positive duration: seconds, or a number with s, m, h or d (``24h``)."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise ValueError("must be a duration such as 90, 90s, 15m, 24h or 7d")
    seconds = float(match[1]) * _UNIT_SECONDS[match[2] or "s"]
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def token_lifetime(value: str) -> float:
    """A token lifetime: a duration of at most three hours."""
    seconds = duration(value)
    if seconds > MAX_LIFETIME_SECONDS:
        raise ValueError(f"must be at most {MAX_LIFETIME_SECONDS} seconds")
    return seconds


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
    key_rotation_period: float = setting(
        86400.0,
        "how long a key signs before the next one takes over (90s, 15m, 24h)",
        env="WIF_KEY_ROTATION_PERIOD",
        parse=duration,
    )
    key_publish_ahead: float = setting(
        3600.0,
        "how long a new key is published before it signs; at least the JWKS cache time",
        env="WIF_KEY_PUBLISH_AHEAD",
        parse=duration,
    )
    max_token_lifetime: float = setting(
        float(MAX_LIFETIME_SECONDS),
        "the longest lifetime of a token the ITS signs",
        env="WIF_MAX_TOKEN_LIFETIME",
        parse=token_lifetime,
    )
    retired_key_retention: float = setting(
        float(MAX_LIFETIME_SECONDS + 600),
        "how long a retired key stays published; at least max_token_lifetime",
        env="WIF_RETIRED_KEY_RETENTION",
        parse=duration,
    )
    jwks_cache_seconds: float = setting(
        300.0,
        "how long relying parties may cache the JWKS and discovery (max-age)",
        env="WIF_JWKS_CACHE_SECONDS",
        parse=duration,
    )
    key_check_interval: float = setting(
        10.0,
        "how often the rotation leader checks the key schedule",
        env="WIF_KEY_CHECK_INTERVAL",
        parse=duration,
    )
    leader_lease: float = setting(
        10.0,
        "time to live of the rotation leader's etcd lease",
        env="WIF_ITS_LEADER_LEASE",
        parse=duration,
    )
    signer: str = setting(
        "sealed",
        "where private keys live: sealed (in etcd under the KEK) or pkcs11",
        env="WIF_ITS_SIGNER",
        parse=_signer,
    )
    pkcs11_module: str | None = setting(
        None,
        "path of the PKCS#11 module (.so) when signer is pkcs11",
        env="WIF_PKCS11_MODULE",
        parse=optional,
    )
    pkcs11_token_label: str | None = setting(
        None,
        "label of the PKCS#11 token that holds the keys",
        env="WIF_PKCS11_TOKEN_LABEL",
        parse=optional,
    )
    pkcs11_pin_file: str | None = setting(
        None,
        "file holding the token's user PIN",
        env="WIF_PKCS11_PIN_FILE",
        parse=optional,
    )
    pkcs11_pin: str | None = setting(
        None,
        "the token's user PIN itself, when no file is given",
        env="WIF_PKCS11_PIN",
        parse=optional,
    )
    pkcs11_key_label: str = setting(
        "wif-its",
        "CKA_LABEL given to every key the ITS generates in the token",
        env="WIF_PKCS11_KEY_LABEL",
    )
