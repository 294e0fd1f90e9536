"""``wif dev`` and ``wif demo``: the local mesh."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from wif.cli.common import emit, progress, state_dir


def cmd_dev_up(args: argparse.Namespace) -> int:
    from wif.dev.mesh import start_mesh, stop_mesh

    state = state_dir(args)
    stop_mesh(state)
    trust = Path(args.trust_config) if args.trust_config else None
    try:
        endpoints = start_mesh(
            state.resolve(),
            with_oidc=args.oidc,
            trust_config=trust,
            tls=args.tls,
            progress=progress,
        )
    except BaseException:
        stop_mesh(state)
        raise
    emit(
        args,
        f"the local mesh is up; endpoints in {state / 'endpoints.json'}",
        endpoints,
    )
    return 0


def cmd_dev_down(args: argparse.Namespace) -> int:
    from wif.dev.mesh import stop_mesh

    stopped = stop_mesh(state_dir(args))
    emit(
        args,
        f"stopped: {', '.join(stopped) or 'nothing was running'}",
        {"stopped": stopped},
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """With --json the narration goes to stderr and the outcome to stdout."""
    from wif.dev.demo import run_demo

    if not args.json:
        return run_demo(state_dir(args).resolve())
    with contextlib.redirect_stdout(sys.stderr):
        code = run_demo(state_dir(args).resolve())
    emit(args, "", {"completed": code == 0, "exit_code": code})
    return code


def register(groups: Any) -> None:
    """Adds the ``dev`` and ``demo`` commands."""
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
    up.add_argument(
        "--tls",
        action="store_true",
        help="mTLS between the services, with certificates from a development CA",
    )
    up.set_defaults(func=cmd_dev_up)
    dev.add_parser("down", help="stop the local mesh").set_defaults(func=cmd_dev_down)
    groups.add_parser("demo", help="run the end-to-end demo").set_defaults(
        func=cmd_demo
    )
