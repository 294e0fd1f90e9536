"""Tests for wif.cli.main's parser: each command's options reach it."""

from __future__ import annotations

from wif.cli.main import build_parser


def test_dev_up_takes_its_own_tls_flag() -> None:
    # --tls is a prefix of the global --tls-cert, --tls-key and --tls-ca;
    # Python 3.11's argparse refused it as ambiguous before the command saw it.
    args = build_parser().parse_args(["dev", "up", "--tls"])

    assert args.tls is True
    assert args.tls_cert is None


def test_global_tls_options_still_parse_before_the_command() -> None:
    args = build_parser().parse_args(
        ["--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem", "dev", "up"]
    )

    assert (args.tls_cert, args.tls_key, args.tls_ca) == ("c.pem", "k.pem", "ca.pem")
    assert args.tls is False
