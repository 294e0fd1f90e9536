"""What every ``wif`` command group shares: exit codes, endpoints, output."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from wif.errors import TemporarilyUnavailable

EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3
DEFAULT_STATE_DIR = Path(".wif/dev")


def state_dir(args: argparse.Namespace) -> Path:
    return Path(
        args.state_dir or os.environ.get("WIF_DEV_STATE_DIR") or DEFAULT_STATE_DIR
    )


def etcd_endpoint(args: argparse.Namespace) -> str:
    """--etcd, then WIF_ETCD_ENDPOINT, then the running local mesh."""
    if args.etcd:
        return str(args.etcd)
    if os.environ.get("WIF_ETCD_ENDPOINT"):
        return os.environ["WIF_ETCD_ENDPOINT"]
    from wif.dev.mesh import read_endpoints

    try:
        return str(read_endpoints(state_dir(args))["etcd"])
    except (FileNotFoundError, KeyError):
        raise TemporarilyUnavailable(
            "no etcd endpoint: give --etcd, set WIF_ETCD_ENDPOINT or run `wif dev up`"
        ) from None


def variables(args: argparse.Namespace) -> dict[str, str]:
    """The environment, over the variables the local mesh was started with."""
    from wif.dev.mesh import read_endpoints

    try:
        local = dict(read_endpoints(state_dir(args)).get("config_variables", {}))
    except (FileNotFoundError, ValueError):
        local = {}
    return {**local, **os.environ}


def emit(args: argparse.Namespace, text: str, data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2) if args.json else text)
