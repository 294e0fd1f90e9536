"""``wif``: configuration, the local mesh, the demo and token inspection.

Exit codes: 0 success, 1 the operation failed (a refusal, an invalid
configuration), 2 bad usage, 3 a dependency (etcd, the mesh) unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wif.errors import ConfigError, TemporarilyUnavailable
from wif.trust.config import TRUST_PREFIX, from_etcd_items, load_file

EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3
DEFAULT_STATE_DIR = Path(".wif/dev")


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(
        args.state_dir or os.environ.get("WIF_DEV_STATE_DIR") or DEFAULT_STATE_DIR
    )


def _etcd_endpoint(args: argparse.Namespace) -> str:
    """--etcd, then WIF_ETCD_ENDPOINT, then the running local mesh."""
    if args.etcd:
        return str(args.etcd)
    if os.environ.get("WIF_ETCD_ENDPOINT"):
        return os.environ["WIF_ETCD_ENDPOINT"]
    from wif.dev.mesh import read_endpoints

    try:
        return str(read_endpoints(_state_dir(args))["etcd"])
    except (FileNotFoundError, KeyError):
        raise TemporarilyUnavailable(
            "no etcd endpoint: give --etcd, set WIF_ETCD_ENDPOINT or run `wif dev up`"
        ) from None


def _variables(args: argparse.Namespace) -> dict[str, str]:
    """The environment, over the variables the local mesh was started with."""
    from wif.dev.mesh import read_endpoints

    try:
        local = dict(read_endpoints(_state_dir(args)).get("config_variables", {}))
    except (FileNotFoundError, ValueError):
        local = {}
    return {**local, **os.environ}


def _emit(args: argparse.Namespace, text: str, data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def cmd_config_validate(args: argparse.Namespace) -> int:
    config = load_file(Path(args.file), _variables(args))
    _emit(
        args,
        f"{args.file}: valid ({len(config.providers)} providers, "
        f"{len(config.audiences)} audiences, {len(config.policies)} policies)",
        {"file": args.file, "valid": True},
    )
    return 0


def cmd_config_apply(args: argparse.Namespace) -> int:
    from wif.dev.mesh import apply_config

    endpoint = _etcd_endpoint(args)
    revision = asyncio.run(apply_config(endpoint, Path(args.file), _variables(args)))
    _emit(
        args,
        f"applied {args.file} at etcd revision {revision}",
        {"file": args.file, "revision": revision},
    )
    return 0


def cmd_config_get(args: argparse.Namespace) -> int:
    from wif.store import EtcdStore

    async def read() -> Any:
        async with EtcdStore(_etcd_endpoint(args)) as store:
            return await store.get_prefix(TRUST_PREFIX)

    snapshot = asyncio.run(read())
    config = from_etcd_items(snapshot.items, snapshot.revision)
    print(json.dumps({"revision": config.revision, **config.documents}, indent=2))
    return 0


def cmd_dev_up(args: argparse.Namespace) -> int:
    from wif.dev.mesh import start_mesh, stop_mesh

    state = _state_dir(args)
    stop_mesh(state)
    trust = Path(args.trust_config) if args.trust_config else None
    try:
        endpoints = start_mesh(state.resolve(), with_oidc=args.oidc, trust_config=trust)
    except BaseException:
        stop_mesh(state)
        raise
    _emit(
        args,
        f"the local mesh is up; endpoints in {state / 'endpoints.json'}",
        endpoints,
    )
    return 0


def cmd_dev_down(args: argparse.Namespace) -> int:
    from wif.dev.mesh import stop_mesh

    stopped = stop_mesh(_state_dir(args))
    _emit(
        args,
        f"stopped: {', '.join(stopped) or 'nothing was running'}",
        {"stopped": stopped},
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from wif.dev.demo import run_demo

    return run_demo(_state_dir(args).resolve())


def cmd_token_decode(args: argparse.Namespace) -> int:
    from wif.tokens import parse_compact

    token = sys.stdin.read().strip() if args.token == "-" else args.token
    parsed = parse_compact(token)
    print(
        json.dumps(
            {"header": parsed.header, "claims": parsed.claims, "verified": False},
            indent=2,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser for every ``wif`` command."""
    parser = argparse.ArgumentParser(prog="wif", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--etcd", help="etcd endpoint host:port [WIF_ETCD_ENDPOINT]")
    parser.add_argument(
        "--state-dir", help="local mesh state folder [WIF_DEV_STATE_DIR]"
    )
    groups = parser.add_subparsers(dest="group", required=True)

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
    config.add_parser("get", help="print the configuration in etcd").set_defaults(
        func=cmd_config_get
    )

    dev = groups.add_parser("dev", help="the local mesh").add_subparsers(
        dest="command", required=True
    )
    up = dev.add_parser("up", help="start etcd, the services and the OpenID provider")
    up.add_argument(
        "--no-oidc",
        dest="oidc",
        action="store_false",
        help="do not start the local OpenID provider",
    )
    up.add_argument("--trust-config", help="trust configuration file to apply")
    up.set_defaults(func=cmd_dev_up)
    dev.add_parser("down", help="stop the local mesh").set_defaults(func=cmd_dev_down)

    groups.add_parser("demo", help="run the end-to-end demo").set_defaults(
        func=cmd_demo
    )

    token = groups.add_parser("token", help="tokens").add_subparsers(
        dest="command", required=True
    )
    decode = token.add_parser(
        "decode", help="show a token's header and claims, unverified"
    )
    decode.add_argument("token", help="the token, or - to read it from stdin")
    decode.set_defaults(func=cmd_token_decode)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Runs one ``wif`` command and exits with its code."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except ConfigError as error:
        print(f"wif: invalid configuration: {error.message}", file=sys.stderr)
        code = EXIT_FAILED
    except TemporarilyUnavailable as error:
        print(f"wif: {error.message}", file=sys.stderr)
        code = EXIT_UNAVAILABLE
    except RuntimeError as error:
        print(f"wif: {error}", file=sys.stderr)
        code = EXIT_FAILED
    sys.exit(code)
