"""Service settings: a command-line flag, then an environment variable, then a default.

Each service declares its settings once, as a frozen dataclass whose fields
carry :func:`setting` metadata; :func:`load_settings` builds the parser, reads
the environment and checks every value, stopping start-up with a message
that names the setting when one is bad.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from wif import spiffe

S = TypeVar("S")


def setting(
    default: Any,
    help: str,
    *,
    env: str,
    parse: Callable[[str], Any] = str,
) -> Any:
    """Declares a setting read from ``--<name>`` or the environment variable ``env``."""
    return dataclasses.field(
        default=default, metadata={"help": help, "env": env, "parse": parse}
    )


def host_port(value: str) -> str:
    """Checks a ``host:port`` listen or target address."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be host:port")
    return value


def boolean(value: str) -> bool:
    """``true`` or ``false``, in any case."""
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError("must be true or false")
    return lowered == "true"


def optional(value: str) -> str | None:
    """An optional string: empty means unset."""
    return value or None


def dns_name(value: str) -> str | None:
    """A lower-case DNS host name without wildcard; empty means the default."""
    if not value:
        return None
    if not spiffe.is_dns_name(value):
        raise ValueError("must be a lower-case DNS name without wildcard")
    return value


def seconds(value: str) -> float:
    """A finite number of seconds above zero."""
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError("must be a number of seconds above zero")
    return number


def at_least_one(value: str) -> int:
    """A whole number of one or more."""
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def spiffe_ids(value: str) -> tuple[str, ...]:
    """A comma-separated list of SPIFFE IDs; empty means the default."""
    ids = tuple(part.strip() for part in value.split(",") if part.strip())
    for spiffe_id in ids:
        if spiffe.trust_domain_of(spiffe_id) is None:
            raise ValueError(f"{spiffe_id!r} is not a SPIFFE ID")
    return ids


class SettingsError(SystemExit):
    """A setting has a bad value; start-up stops with this message."""


def load_settings(
    cls: type[S],
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    prog: str | None = None,
) -> S:
    """Builds ``cls`` from flags, then the environment, then defaults."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog=prog, description=cls.__doc__)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    for f in fields:
        flag = "--" + f.name.replace("_", "-")
        meta = f.metadata
        parser.add_argument(flag, dest=f.name, help=f"{meta['help']} [{meta['env']}]")
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    for f in fields:
        meta = f.metadata
        raw = getattr(args, f.name)
        if raw is None:
            raw = env.get(meta["env"])
        if raw is None:
            values[f.name] = f.default
            continue
        try:
            values[f.name] = meta["parse"](raw)
        except ValueError as exc:
            raise SettingsError(
                f"setting {f.name} ({meta['env']}): {raw!r} is not valid: {exc}"
            ) from exc
    return cls(**values)


@dataclass(frozen=True)
class CommonSettings:
    """Settings every service has."""

    etcd_endpoint: str = setting(
        "127.0.0.1:2379",
        "etcd endpoint host:port",
        env="WIF_ETCD_ENDPOINT",
        parse=host_port,
    )
    audit_log: str | None = setting(
        None, "path of the audit log file", env="WIF_AUDIT_LOG", parse=optional
    )
    ready_file: str | None = setting(
        None,
        "write the bound endpoints here as JSON once serving",
        env="WIF_READY_FILE",
        parse=optional,
    )
    log_level: str = setting("info", "log level", env="WIF_LOG_LEVEL")
    metrics_listen: str | None = setting(
        None,
        "HTTP listen address for Prometheus scraping at /metrics; unset disables",
        env="WIF_METRICS_LISTEN",
        parse=lambda value: host_port(value) if value else None,
    )
    http_head_timeout_seconds: float = setting(
        10.0,
        "seconds an HTTP client has to send a complete request line and headers, "
        "counted from the accept and, on a kept-alive connection, from the first "
        "byte of each later request; a slower connection gets 408 and is closed "
        "(every HTTP listener: token endpoints, JWKS, metrics)",
        env="WIF_HTTP_HEAD_TIMEOUT_SECONDS",
        parse=seconds,
    )
    http_max_connections: int = setting(
        512,
        "HTTP connections open at once on each HTTP listener; one more gets 503 "
        "and is closed",
        env="WIF_HTTP_MAX_CONNECTIONS",
        parse=at_least_one,
    )
    tls_cert_file: str | None = setting(
        None,
        "PEM certificate chain of this service (SPIFFE ID in the URI SAN); "
        "with tls_key_file and tls_ca_file turns on mTLS, else plaintext",
        env="WIF_TLS_CERT_FILE",
        parse=optional,
    )
    tls_key_file: str | None = setting(
        None,
        "PEM private key of tls_cert_file; re-read when the files change",
        env="WIF_TLS_KEY_FILE",
        parse=optional,
    )
    tls_ca_file: str | None = setting(
        None,
        "PEM certificates of the CAs that sign mesh certificates",
        env="WIF_TLS_CA_FILE",
        parse=optional,
    )
    allow_plaintext: bool = setting(
        False,
        "run gRPC without TLS and without checking callers: for local "
        "development only (true or false)",
        env="WIF_ALLOW_PLAINTEXT",
        parse=boolean,
    )
    sts_ids: tuple[str, ...] = setting(
        (),
        "SPIFFE IDs of the STS, comma-separated "
        "(default spiffe://<trust domain of tls_cert_file>/wif/sts)",
        env="WIF_STS_IDS",
        parse=spiffe_ids,
    )
    enforcer_ids: tuple[str, ...] = setting(
        (),
        "SPIFFE IDs of enforcement points (Envoy, gateways) that ask for decisions "
        "(default spiffe://<trust domain>/wif/enforcer)",
        env="WIF_ENFORCER_IDS",
        parse=spiffe_ids,
    )
    operator_ids: tuple[str, ...] = setting(
        (),
        "SPIFFE IDs of operators allowed key and policy administration "
        "(default spiffe://<trust domain>/wif/operator)",
        env="WIF_OPERATOR_IDS",
        parse=spiffe_ids,
    )

    def __post_init__(self) -> None:
        tls = {
            "tls_cert_file (WIF_TLS_CERT_FILE)": self.tls_cert_file,
            "tls_key_file (WIF_TLS_KEY_FILE)": self.tls_key_file,
            "tls_ca_file (WIF_TLS_CA_FILE)": self.tls_ca_file,
        }
        missing = [name for name, value in tls.items() if not value]
        if missing and len(missing) < len(tls):
            raise SettingsError(
                "settings tls_cert_file, tls_key_file and tls_ca_file go together; "
                f"missing: {', '.join(missing)}"
            )
        if missing and not self.allow_plaintext:
            raise SettingsError(
                "settings tls_cert_file, tls_key_file and tls_ca_file are required "
                "(WIF_TLS_CERT_FILE, WIF_TLS_KEY_FILE, WIF_TLS_CA_FILE); set "
                "allow_plaintext (WIF_ALLOW_PLAINTEXT=true) only for local development"
            )
