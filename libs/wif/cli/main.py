"""``wif``: configuration, the local mesh, the demo and token inspection.

Exit codes: 0 success, 1 the operation failed (a refusal, an invalid
configuration, an invalid token, a tampered audit file, or a configuration
that differs from etcd for ``config diff``), 2 bad usage, 3 a dependency
(etcd, the mesh) unreachable. ``--json`` is accepted before the group or
after any command. Each command group lives in its own module with a
``register`` function.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from wif.cli import audit, config, dev, keys, policy, token
from wif.cli.common import EXIT_FAILED, EXIT_UNAVAILABLE
from wif.errors import ConfigError, TemporarilyUnavailable, WifError

#: The command groups, in the order ``wif --help`` lists them.
GROUPS = (audit, config, dev, keys, policy, token)


def build_parser() -> argparse.ArgumentParser:
    """The parser for every ``wif`` command."""
    # Without allow_abbrev, Python 3.11 takes a command's own --tls for an
    # ambiguous prefix of --tls-cert, --tls-key and --tls-ca and stops.
    parser = argparse.ArgumentParser(
        prog="wif", description=__doc__, allow_abbrev=False
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--etcd", help="etcd endpoint host:port [WIF_ETCD_ENDPOINT]")
    parser.add_argument(
        "--state-dir", help="local mesh state folder [WIF_DEV_STATE_DIR]"
    )
    parser.add_argument(
        "--tls-cert", help="operator certificate for mTLS [WIF_TLS_CERT_FILE]"
    )
    parser.add_argument("--tls-key", help="its private key [WIF_TLS_KEY_FILE]")
    parser.add_argument(
        "--tls-ca", help="CA bundle of the mesh's certificates [WIF_TLS_CA_FILE]"
    )
    groups = parser.add_subparsers(dest="group", required=True)
    for group in GROUPS:
        group.register(groups)
    _accept_json_after_commands(parser)
    return parser


def _accept_json_after_commands(parser: argparse.ArgumentParser) -> None:
    """Lets every command take ``--json`` after its name, not only before."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for sub in action.choices.values():
            if "--json" not in sub._option_string_actions:
                sub.add_argument(
                    "--json",
                    action="store_true",
                    default=argparse.SUPPRESS,
                    help="print JSON",
                )
            _accept_json_after_commands(sub)


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
    except WifError as error:
        print(f"wif: {error.message}", file=sys.stderr)
        code = EXIT_FAILED
    except RuntimeError as error:
        print(f"wif: {error}", file=sys.stderr)
        code = EXIT_FAILED
    sys.exit(code)
