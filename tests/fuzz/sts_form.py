"""Fuzz target: the STS's HTTP form and the RFC 8693 request it becomes.

Documented: a body is decoded by ``services.sts.http.parse_form`` or refused
with ``InvalidRequest``; the form becomes an ``ExchangeRequest``
(``exchange_request``) or is refused with ``InvalidRequest`` (including
``UnsupportedGrantType``); the request passes ``check_request`` or is
refused with ``InvalidRequest`` or ``UnsupportedTokenType``. A form that
passes holds no parameter twice but ``audience`` and ``resource``, and no
empty value.

The input is the request body as the token endpoint reads it, bytes and
all: nothing is sent over a network.
"""

from __future__ import annotations

from services.sts.http import exchange_request, parse_form
from services.sts.request import check_request
from tests.fuzz.contract import ContractBroken, fuzz, within_contract
from wif.errors import InvalidRequest, UnsupportedTokenType

DOCUMENTED = (InvalidRequest, UnsupportedTokenType)
_REPEATABLE = ("audience", "resource")
SOURCE = "127.0.0.1"


def _decode_and_check(body: bytes) -> None:
    form = parse_form(body)
    for name, values in form.items():
        if len(values) > 1 and name not in _REPEATABLE:
            raise ContractBroken(f"parameter {name!r} accepted twice")
        if not all(values):
            raise ContractBroken(f"parameter {name!r} kept with an empty value")

    request = exchange_request(form, SOURCE)
    if len(set(request.scope)) != len(request.scope):
        raise ContractBroken("a scope is listed twice")
    check_request(request)


def one_input(data: bytes) -> None:
    """Decodes one body as the token endpoint does; raises only on a broken contract."""
    within_contract(lambda: _decode_and_check(data), DOCUMENTED)


if __name__ == "__main__":
    fuzz(one_input)
