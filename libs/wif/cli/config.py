"""``wif config``: validate, apply and read the trust configuration."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from wif.cli.common import emit, etcd_endpoint, variables
from wif.errors import ConfigError
from wif.store import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
    transaction_problem,
)
from wif.trust.config import TRUST_PREFIX, from_etcd_items, load_file, to_etcd_items


def cmd_config_validate(args: argparse.Namespace) -> int:
    config = load_file(Path(args.file), variables(args))
    problem = transaction_problem(
        to_etcd_items(config),
        max_ops=args.max_txn_ops,
        max_bytes=args.max_request_bytes,
    )
    if problem is not None:
        raise ConfigError(f"{args.file}: too large to apply at once: {problem}")
    emit(
        args,
        f"{args.file}: valid ({len(config.providers)} providers, "
        f"{len(config.audiences)} audiences, {len(config.policies)} policies)",
        {"file": args.file, "valid": True},
    )
    return 0


def cmd_config_apply(args: argparse.Namespace) -> int:
    from wif.dev.mesh import apply_config

    endpoint = etcd_endpoint(args)
    revision = asyncio.run(apply_config(endpoint, Path(args.file), variables(args)))
    emit(
        args,
        f"applied {args.file} at etcd revision {revision}",
        {"file": args.file, "revision": revision},
    )
    return 0


def cmd_config_get(args: argparse.Namespace) -> int:
    from wif.store import EtcdStore

    async def read() -> Any:
        async with EtcdStore(etcd_endpoint(args)) as store:
            return await store.get_prefix(TRUST_PREFIX)

    snapshot = asyncio.run(read())
    config = from_etcd_items(snapshot.items, snapshot.revision)
    print(json.dumps({"revision": config.revision, **config.documents}, indent=2))
    return 0


def register(groups: Any) -> None:
    """Adds the ``config`` commands."""
    config = groups.add_parser("config", help="trust configuration").add_subparsers(
        dest="command", required=True
    )
    for name, func, text in (
        ("validate", cmd_config_validate, "check a file without writing it"),
        ("apply", cmd_config_apply, "validate a file and write it to etcd whole"),
    ):
        sub = config.add_parser(name, help=text)
        sub.add_argument("file")
        sub.set_defaults(func=func)
        if name == "validate":
            _store_limits(sub)
    config.add_parser("get", help="print the configuration in etcd").set_defaults(
        func=cmd_config_get
    )


def _store_limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-txn-ops",
        type=int,
        default=DEFAULT_MAX_TXN_OPS,
        help="the etcd server's --max-txn-ops (default: etcd's, %(default)s)",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="the etcd server's --max-request-bytes (default: etcd's, %(default)s)",
    )
