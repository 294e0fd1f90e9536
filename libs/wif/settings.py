"""Service settings: a command-line flag, then an environment variable, then a default.

Each service declares its settings once, as a frozen dataclass whose fields
carry :func:`setting` metadata; :func:`load_settings` builds the parser, reads
the environment and checks every value, stopping start-up with a message
that names the setting when one is bad.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

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


def optional(value: str) -> str | None:
    """An optional string: empty means unset."""
    return value or None


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
