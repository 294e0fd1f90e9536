"""``wif token``: look at tokens and revoke them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from wif.cli.common import emit, etcd_endpoint


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


def cmd_token_revoke(args: argparse.Namespace) -> int:
    """Writes the revocation to etcd, where every STS and Policy replica sees it.

    A token id revoked here, without the token, is revoked for the longest
    lifetime a mesh token can have; a subject for the same time.
    """
    from wif import revocations
    from wif.store import EtcdStore

    async def revoke() -> None:
        async with EtcdStore(etcd_endpoint(args)) as store:
            if args.jti:
                await revocations.revoke_token(store, args.jti)
            else:
                await revocations.revoke_subject(store, args.subject)

    asyncio.run(revoke())
    what = {"jti": args.jti} if args.jti else {"subject": args.subject}
    name = f"token {args.jti}" if args.jti else f"every token of {args.subject}"
    emit(args, f"revoked {name}", {"revoked": what})
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
    revoke = token.add_parser(
        "revoke", help="revoke a mesh token by id, or every token of a subject"
    )
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--jti", help="the token id (jti) to revoke")
    which.add_argument("--subject", help="the SPIFFE ID whose tokens to revoke")
    revoke.set_defaults(func=cmd_token_revoke)
