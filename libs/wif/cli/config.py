"""``wif config``: validate, apply, compare and read the trust configuration.

``diff`` exits 0 when the file matches etcd, 1 when they differ (like
``diff(1)``) and 3 when etcd is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from wif.cli.common import EXIT_FAILED, emit, etcd_endpoint, progress, variables
from wif.errors import ConfigError
from wif.store import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
    oversized_document,
)
from wif.trust.config import from_etcd_items, load_file, to_etcd_items
from wif.trust.diff import DocumentDiff, diff_items


def cmd_config_validate(args: argparse.Namespace) -> int:
    config = load_file(Path(args.file), variables(args))
    # Any number of documents is applied in chunks, but each document must
    # fit in one etcd request.
    problem = oversized_document(
        to_etcd_items(config), max_bytes=args.max_request_bytes
    )
    if problem is not None:
        raise ConfigError(f"{args.file}: cannot be applied: {problem}")
    emit(
        args,
        f"{args.file}: valid ({len(config.providers)} providers, "
        f"{len(config.audiences)} audiences, {len(config.policies)} policies)",
        {"file": args.file, "valid": True},
    )
    return 0


def cmd_config_apply(args: argparse.Namespace) -> int:
    from wif.store import EtcdStore
    from wif.trust.stored import apply_items

    endpoint = etcd_endpoint(args)
    progress(f"validating {args.file}")
    items = to_etcd_items(load_file(Path(args.file), variables(args)))

    async def write() -> int:
        async with EtcdStore(
            endpoint,
            max_txn_ops=args.max_txn_ops,
            max_request_bytes=args.max_request_bytes,
        ) as store:
            progress(f"writing {len(items)} documents to etcd at {endpoint}")
            applied = await apply_items(store, items)
        return applied.revision

    revision = asyncio.run(write())
    progress(f"etcd revision {revision}")
    emit(
        args,
        f"applied {args.file} at etcd revision {revision}",
        {"file": args.file, "revision": revision},
    )
    return 0


_MARKS = {"added": "+", "removed": "-", "changed": "~"}


def _diff_line(diff: DocumentDiff) -> str:
    line = f"{_MARKS[diff.change]} {diff.document}"
    return f"{line}: {', '.join(diff.fields)}" if diff.fields else line


def cmd_config_diff(args: argparse.Namespace) -> int:
    """Exit 0 when the file matches etcd, 1 when they differ."""
    from wif.store import EtcdStore
    from wif.trust.stored import read_items

    wanted = to_etcd_items(load_file(Path(args.file), variables(args)))

    async def read() -> Any:
        async with EtcdStore(etcd_endpoint(args)) as store:
            return await read_items(store)

    snapshot = asyncio.run(read())
    diffs = diff_items(wanted, snapshot.items)
    where = f"etcd revision {snapshot.revision}"
    text = "\n".join(
        [_diff_line(d) for d in diffs]
        + [f"{len(diffs)} documents differ from {where}" if diffs else ""]
    ).strip()
    emit(
        args,
        text or f"{args.file} is identical to {where}",
        {
            "file": args.file,
            "revision": snapshot.revision,
            "identical": not diffs,
            "documents": [d.as_dict() for d in diffs],
        },
    )
    return EXIT_FAILED if diffs else 0


def cmd_config_get(args: argparse.Namespace) -> int:
    from wif.store import EtcdStore
    from wif.trust.stored import read_items

    async def read() -> Any:
        async with EtcdStore(etcd_endpoint(args)) as store:
            return await read_items(store)

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
        (
            "diff",
            cmd_config_diff,
            "compare a file with etcd, per document (exit 1 when they differ)",
        ),
    ):
        sub = config.add_parser(name, help=text)
        sub.add_argument("file")
        sub.set_defaults(func=func)
        if name in ("validate", "apply"):
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
