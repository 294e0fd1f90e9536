"""The STS's HTTP ``/introspect`` and ``/revoke``, as ``wif token`` calls them.

Both endpoints authenticate their caller by a mesh token for the STS's own
audience (``wif-sts`` unless the STS says otherwise), sent as
``Authorization: Bearer``: introspection needs the scope
``wif.tokens.introspect``; revocation needs ``wif.tokens.revoke``, except of
a token of the caller's own subject. The commands read that caller token
from ``--caller-token-file``, then the file ``WIF_CALLER_TOKEN_FILE`` names.
The STS is found at ``--sts-url``, then ``WIF_STS_URL``, then the running
local mesh.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from wif.cli.common import resolve_address
from wif.errors import TemporarilyUnavailable

#: Seconds one call to the STS may take.
TIMEOUT_SECONDS = 15.0
#: The variable naming the caller token's file when no flag does.
CALLER_TOKEN_ENV = "WIF_CALLER_TOKEN_FILE"


def sts_url(args: argparse.Namespace) -> str:
    """--sts-url, then WIF_STS_URL, then the running local mesh."""
    return resolve_address(args, "sts_url", "WIF_STS_URL", ("sts", "http"))


def caller_token_file(args: argparse.Namespace) -> str:
    """--caller-token-file, then WIF_CALLER_TOKEN_FILE; raises RuntimeError."""
    path = args.caller_token_file or os.environ.get(CALLER_TOKEN_ENV)
    if not path:
        raise RuntimeError(
            "name the caller's mesh token for the STS: --caller-token-file "
            f"or {CALLER_TOKEN_ENV}"
        )
    return str(path)


def post(
    args: argparse.Namespace, path: str, token: str, caller: str
) -> dict[str, Any]:
    """POSTs ``token`` to the STS's ``path`` as ``caller``; the JSON answer.

    Raises ``TemporarilyUnavailable`` when the STS cannot be reached or is
    overloaded, ``RuntimeError`` with the RFC error for any other refusal.
    """
    body = urllib.parse.urlencode([("token", token)]).encode()
    request = urllib.request.Request(  # noqa: S310 (the URL is the operator's)
        sts_url(args) + path,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {caller}"},
    )
    # No proxy from the environment: the token goes to the STS and nowhere else.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as error:
        refusal = _refusal(error)
        if error.code in (429, 503):
            raise TemporarilyUnavailable(f"the STS is unavailable: {refusal}") from None
        raise RuntimeError(f"the STS refused: {refusal}") from None
    except (urllib.error.URLError, OSError) as error:
        raise TemporarilyUnavailable(f"the STS is unavailable: {error}") from None


def _refusal(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
        return f"{body['error']}: {body.get('error_description', '')} ({error.code})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {error.code}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --caller-token-file and --sts-url to a command."""
    parser.add_argument(
        "--caller-token-file",
        help=f"file holding the caller's mesh token for the STS [{CALLER_TOKEN_ENV}]",
    )
    parser.add_argument("--sts-url", help="HTTP base URL of the STS [WIF_STS_URL]")
