"""``wif token``: exchange, validate, introspect, look at and revoke tokens.

``exchange`` and ``validate`` call the STS over gRPC at ``--sts``, then
``WIF_STS_ADDRESS``, then the STS of the running local mesh. ``exchange``
prints the issued token to stdout and nowhere else; ``validate`` exits 1
with the STS's reason when the token is not valid.

``introspect`` and ``revoke --token`` call the STS's HTTP ``/introspect``
and ``/revoke`` as the caller whose mesh token for the STS they are given
(see :mod:`wif.cli.sts_http`); ``introspect`` exits 1 when the token is not
active. ``revoke --jti`` and ``revoke --subject`` write to etcd directly,
for operators who hold etcd access and not the token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format

from wif.cli import sts_http
from wif.cli.common import (
    EXIT_FAILED,
    call_failed,
    emit,
    etcd_endpoint,
    grpc_channel,
    resolve_address,
)
from wif.grpc_errors import error_info

T = TypeVar("T")

#: Seconds a call to the STS may take.
CALL_TIMEOUT_SECONDS = 15.0
#: RFC 8693 section 3: the type of a JWT, as every platform token here is.
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"


def sts_address(args: argparse.Namespace) -> str:
    """--sts, then WIF_STS_ADDRESS, then the running local mesh."""
    return resolve_address(args, "sts", "WIF_STS_ADDRESS", ("sts", "grpc"))


def read_token(source: str) -> str:
    """The token in the file ``source``, or on stdin when it is ``-``."""
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RuntimeError(f"cannot read a token from {source}: {exc}") from None
    token = text.strip()
    if not token:
        raise RuntimeError(f"no token in {'stdin' if source == '-' else source}")
    return token


def _call(args: argparse.Namespace, method: Callable[[Any], Awaitable[T]]) -> T:
    """Runs one SecurityTokenService call; gRPC errors propagate."""
    from wif.v1 import sts_pb2_grpc

    async def run() -> T:
        async with grpc_channel(args, sts_address(args)) as channel:
            return await method(sts_pb2_grpc.SecurityTokenServiceStub(channel))

    return asyncio.run(run())


def _words(values: list[str] | None) -> list[str]:
    """Repeated options, each of which may also hold several space-separated."""
    return [word for value in values or () for word in value.split()]


def cmd_token_exchange(args: argparse.Namespace) -> int:
    from wif.v1 import sts_pb2

    actor = read_token(args.actor_token_file) if args.actor_token_file else ""
    request = sts_pb2.ExchangeTokenRequest(
        subject_token=read_token(args.subject_token_file),
        subject_token_type=args.subject_token_type,
        actor_token=actor,
        actor_token_type=args.actor_token_type if actor else "",
        audience=args.audience or [],
        resource=args.resource or [],
        scope=_words(args.scope),
    )
    try:
        reply = _call(
            args,
            lambda stub: stub.ExchangeToken(request, timeout=CALL_TIMEOUT_SECONDS),
        )
    except grpc.aio.AioRpcError as exc:
        raise call_failed(exc, "STS") from None
    emit(
        args,
        reply.access_token,
        {
            "access_token": reply.access_token,
            "issued_token_type": reply.issued_token_type,
            "token_type": reply.token_type,
            "expires_in": reply.expires_in,
            "scope": list(reply.scope),
            "token_id": reply.token_id,
        },
    )
    return 0


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def cmd_token_validate(args: argparse.Namespace) -> int:
    from wif.v1 import sts_pb2

    request = sts_pb2.ValidateTokenRequest(
        token=read_token(args.source), audience=args.audience or ""
    )
    try:
        reply = _call(
            args,
            lambda stub: stub.ValidateToken(request, timeout=CALL_TIMEOUT_SECONDS),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise call_failed(exc, "STS") from None
        info = error_info(exc)
        reason = info.reason if info else "INVALID_TOKEN"
        if args.json:
            emit(args, "", {"valid": False, "reason": reason, "detail": exc.details()})
        else:
            print(f"wif: invalid token: {exc.details()} ({reason})", file=sys.stderr)
        return EXIT_FAILED
    emit(
        args,
        f"valid\nsubject: {reply.subject}\ntoken id: {reply.token_id}\n"
        f"expires: {_when(reply.expires_at)}",
        {
            "valid": True,
            "subject": reply.subject,
            "token_id": reply.token_id,
            "expires_at": reply.expires_at,
            "claims": json_format.MessageToDict(reply.claims),
        },
    )
    return 0


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


def cmd_token_introspect(args: argparse.Namespace) -> int:
    """Asks the STS's /introspect (RFC 7662) about a token; exits 1 if inactive."""
    caller = read_token(sts_http.caller_token_file(args))
    answer = sts_http.post(args, "/introspect", read_token(args.source), caller)
    if answer.get("active") is not True:
        emit(args, "inactive", {"active": False})
        return EXIT_FAILED
    expires = answer.get("exp")
    text = f"active\nsubject: {answer.get('sub')}\ntoken id: {answer.get('jti')}"
    if isinstance(expires, int):
        text += f"\nexpires: {_when(expires)}"
    emit(args, text, answer)
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    """Revokes through the STS given ``--token``, else writes to etcd.

    The STS revokes the token it is given if it is valid and answers alike
    if not (RFC 7009 section 2.2). In etcd, where every STS and Policy
    replica sees it, a token id revoked without the token is revoked for
    the longest lifetime a mesh token can have; a subject for the same time.
    """
    if args.token:
        return _revoke_through_the_sts(args)
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


def _revoke_through_the_sts(args: argparse.Namespace) -> int:
    from wif.errors import InvalidGrant
    from wif.tokens import parse_compact

    caller = read_token(sts_http.caller_token_file(args))
    token = read_token(args.token)
    sts_http.post(args, "/revoke", token, caller)
    try:
        token_id = str(parse_compact(token).claims.get("jti", "")) or None
    except InvalidGrant:
        token_id = None
    emit(
        args,
        f"revoked token {token_id or '(no id)'}, if it was a valid mesh token",
        {"revoked": {"jti": token_id, "through": "sts"}},
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
    _register_exchange(token)
    validate = token.add_parser(
        "validate", help="ask the STS whether a mesh token is valid (exit 1 if not)"
    )
    validate.add_argument(
        "source",
        nargs="?",
        default="-",
        help="file holding the token (default: -, stdin)",
    )
    validate.add_argument("--audience", help="the audience the token must carry")
    validate.add_argument("--sts", help="gRPC address of the STS [WIF_STS_ADDRESS]")
    validate.set_defaults(func=cmd_token_validate)
    _register_introspect(token)
    revoke = token.add_parser(
        "revoke",
        help="revoke a mesh token through the STS, or by id or subject in etcd",
    )
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--token",
        help="file holding the token to revoke (- for stdin), revoked through "
        "the STS's /revoke as the caller of --caller-token-file",
    )
    which.add_argument("--jti", help="the token id (jti) to revoke, in etcd")
    which.add_argument(
        "--subject", help="the SPIFFE ID whose tokens to revoke, in etcd"
    )
    sts_http.add_arguments(revoke)
    revoke.set_defaults(func=cmd_token_revoke)


def _register_introspect(token: Any) -> None:
    introspect = token.add_parser(
        "introspect",
        help="ask the STS whether a mesh token is active, and its claims "
        "(exit 1 if not)",
    )
    introspect.add_argument(
        "source",
        nargs="?",
        default="-",
        help="file holding the token (default: -, stdin)",
    )
    sts_http.add_arguments(introspect)
    introspect.set_defaults(func=cmd_token_introspect)


def _register_exchange(token: Any) -> None:
    exchange = token.add_parser(
        "exchange", help="exchange a platform token for a mesh token at the STS"
    )
    exchange.add_argument(
        "--subject-token-file",
        default="-",
        help="file holding the subject token (default: -, stdin)",
    )
    exchange.add_argument(
        "--subject-token-type",
        default=TOKEN_TYPE_JWT,
        help="its RFC 8693 token type (default: %(default)s)",
    )
    exchange.add_argument(
        "--actor-token-file", help="file holding an actor token, for delegation"
    )
    exchange.add_argument(
        "--actor-token-type",
        default=TOKEN_TYPE_JWT,
        help="its RFC 8693 token type (default: %(default)s)",
    )
    for name, text in (
        ("--audience", "an audience to ask for; repeat for several"),
        ("--resource", "a resource URI to ask for; repeat for several"),
        ("--scope", "scopes to ask for; repeat or separate with spaces"),
    ):
        exchange.add_argument(name, action="append", help=text)
    exchange.add_argument("--sts", help="gRPC address of the STS [WIF_STS_ADDRESS]")
    exchange.set_defaults(func=cmd_token_exchange)
