"""``wif token``: look at tokens."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


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


def register(groups: Any) -> None:
    """Adds the ``token`` commands."""
    token = groups.add_parser("token", help="tokens").add_subparsers(
        dest="command", required=True
    )
    decode = token.add_parser(
        "decode", help="show a token's header and claims, unverified"
    )
    decode.add_argument("token", help="the token, or - to read it from stdin")
    decode.set_defaults(func=cmd_token_decode)
