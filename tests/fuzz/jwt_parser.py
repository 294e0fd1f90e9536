"""Fuzz target: the strict JWS compact parser (``wif.tokens.parse_compact``).

Documented: any text is parsed or refused with ``InvalidGrant``; so are
``unverified_issuer`` and the token's fingerprint and repr once parsed.

An input whose first byte is ``.`` is taken as the token's text itself; any
other input is split at the bytes ``0xFF`` into header, payload and
signature, each base64url-encoded, so that most inputs reach the JSON and
header checks instead of stopping at the base64url check.
"""

from __future__ import annotations

from tests.fuzz.contract import fuzz, text_of, within_contract
from wif.errors import InvalidGrant
from wif.tokens import base64url
from wif.tokens.compact import parse_compact, unverified_issuer

DOCUMENTED = (InvalidGrant,)


def token_of(data: bytes) -> str:
    """The token an input stands for (see the module's docstring)."""
    if data.startswith(b"."):
        return text_of(data[1:])
    return ".".join(base64url.encode(part) for part in data.split(b"\xff"))


def _parse_all(token: str) -> None:
    parsed = parse_compact(token)
    repr(parsed)
    assert len(parsed.fingerprint) == 16
    unverified_issuer(parsed)


def one_input(data: bytes) -> None:
    """Parses one input as a token; raises only when the contract is broken."""
    token = token_of(data)
    within_contract(lambda: _parse_all(token), DOCUMENTED)


if __name__ == "__main__":
    fuzz(one_input)
