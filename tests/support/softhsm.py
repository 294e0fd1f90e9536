"""A SoftHSM2 token in a temporary folder, for the PKCS#11 signer's tests.

SoftHSM2 comes from Debian's ``softhsm2`` package (``make setup`` installs
it). Its configuration is read once per process, when the module is first
loaded, so one token serves every test of a session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: Where Debian installs the SoftHSM2 PKCS#11 module.
MODULE_PATHS = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
)


@dataclass(frozen=True)
class SoftHsmToken:
    """A fresh, initialised token: where its module is and how to log in."""

    module: str
    label: str
    pin: str
    conf: Path


def softhsm_module() -> str:
    """The SoftHSM2 module; raises RuntimeError naming the package if missing."""
    for path in MODULE_PATHS:
        if path.exists():
            return str(path)
    raise RuntimeError("SoftHSM2 is not installed: apt-get install softhsm2")


def init_token(folder: Path, label: str = "wif-test") -> SoftHsmToken:
    """Initialises a token under ``folder``; its configuration is ``conf``.

    A process finds the token through the environment variable
    ``SOFTHSM2_CONF=<conf>``, read when it first loads the module.
    """
    module = softhsm_module()
    util = shutil.which("softhsm2-util")
    if util is None:
        raise RuntimeError("softhsm2-util is not on PATH: apt-get install softhsm2")
    tokens = folder / "tokens"
    tokens.mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
        "log.level = ERROR\n"
    )
    pin, so_pin = secrets.token_hex(4), secrets.token_hex(4)
    command = [util, "--init-token", "--free", "--label", label]
    subprocess.run(
        [*command, "--so-pin", so_pin, "--pin", pin],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    return SoftHsmToken(module=module, label=label, pin=pin, conf=conf)
