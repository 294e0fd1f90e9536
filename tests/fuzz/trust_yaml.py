"""Fuzz target: the trust configuration loader, from YAML text to a config.

Documented: text is parsed (``wif.trust.source.parse_yaml``), its
``${NAME}`` variables expanded (``expand_variables``) and the document
validated (``wif.trust.config.build_config``), as ``load_file`` does for a
file, or it is refused with ``ConfigError``.

The input is the file's text; undecodable bytes stand as lone surrogates,
which the loader must refuse like any other bad text.
"""

from __future__ import annotations

from tests.fuzz.contract import fuzz, text_of, within_contract
from wif.errors import ConfigError
from wif.trust.config import build_config
from wif.trust.source import expand_variables, parse_yaml

DOCUMENTED = (ConfigError,)
#: The variables a template may name; others are refused as unset.
ENVIRON = {
    "WIF_ISSUER": "http://127.0.0.1:1",
    "WIF_DEV_OIDC_ISSUER": "http://127.0.0.1:2",
}


def _load(text: str) -> None:
    raw = parse_yaml(text, "fuzz.yaml")
    build_config(expand_variables(raw, ENVIRON))


def one_input(data: bytes) -> None:
    """Loads one text as a trust configuration; raises only on a broken contract."""
    text = text_of(data)
    within_contract(lambda: _load(text), DOCUMENTED)


if __name__ == "__main__":
    fuzz(one_input)
