"""``wif token exchange|validate|introspect|revoke``, ``wif config diff``, and
every command's help."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.mesh import REPO_ROOT, caller_token, job_token
from wif.cli.main import build_parser

WIF = [sys.executable, "-c", "from wif.cli.main import main; main()"]


def _wif(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WIF, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every group and command path under ``parser``, ``()`` for ``wif`` itself."""
    paths = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _commands(sub, (*path, name))
    return paths


COMMANDS = _commands(build_parser())


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_prints_its_help(command: tuple[str, ...]) -> None:
    result = _wif(*command, "--help")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: wif")


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if len(c) == 2], ids=lambda c: " ".join(c)
)
def test_every_command_accepts_json_after_its_name(command: tuple[str, ...]) -> None:
    result = _wif(*command, "--help")

    assert "--json" in result.stdout


def _exchange(mesh: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    return _wif(
        "token",
        "exchange",
        "--sts",
        mesh["sts"]["grpc"],
        "--audience",
        "payments-api",
        *extra,
        stdin=job_token(mesh, "github-payments-deploy"),
    )


def test_token_exchange_prints_only_the_issued_token(mesh: dict[str, Any]) -> None:
    result = _exchange(mesh)

    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2
    assert len(result.stdout.strip().splitlines()) == 1
    assert result.stderr == ""


def test_token_exchange_json_has_the_whole_response(mesh: dict[str, Any]) -> None:
    result = _exchange(mesh, "--scope", "payments.read", "--json")

    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["scope"] == ["payments.read"]
    assert reply["expires_in"] > 0
    assert reply["token_id"]
    assert reply["token_type"]


def test_token_exchange_refusal_exits_1_with_the_reason(mesh: dict[str, Any]) -> None:
    result = _exchange(mesh, "--scope", "payments.admin")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("wif: permission_denied: ")


def test_token_exchange_without_an_sts_exits_3(tmp_path: Path) -> None:
    env = {"WIF_STS_ADDRESS": "", "WIF_DEV_STATE_DIR": str(tmp_path)}
    result = _wif("token", "exchange", "--audience", "x", stdin="a.b.c", env=env)

    assert result.returncode == 3
    assert "wif dev up" in result.stderr


def test_token_validate_shows_subject_id_and_expiry(
    mesh: dict[str, Any], tmp_path: Path
) -> None:
    issued = json.loads(_exchange(mesh, "--json").stdout)
    token_file = tmp_path / "token"
    token_file.write_text(issued["access_token"])
    sts = mesh["sts"]["grpc"]

    text = _wif("token", "validate", str(token_file), "--sts", sts)
    data = _wif("--json", "token", "validate", str(token_file), "--sts", sts)

    assert text.returncode == 0, text.stderr
    assert f"token id: {issued['token_id']}" in text.stdout
    assert "subject: spiffe://" in text.stdout
    assert "expires: " in text.stdout
    assert data.returncode == 0, data.stderr
    assert json.loads(data.stdout)["token_id"] == issued["token_id"]


def test_token_validate_exits_1_with_the_reason(mesh: dict[str, Any]) -> None:
    issued = json.loads(_exchange(mesh, "--json").stdout)["access_token"]
    sts = mesh["sts"]["grpc"]

    text = _wif(
        "token", "validate", "--sts", sts, "--audience", "search-api", stdin=issued
    )
    data = _wif(
        "token",
        "validate",
        "--sts",
        sts,
        "--audience",
        "search-api",
        "--json",
        stdin=issued,
    )

    assert text.returncode == 1
    assert "AUDIENCE_MISMATCH" in text.stderr
    assert issued not in text.stderr + text.stdout
    assert data.returncode == 1
    assert json.loads(data.stdout) == {
        "valid": False,
        "reason": "AUDIENCE_MISMATCH",
        "detail": json.loads(data.stdout)["detail"],
    }


async def test_token_introspect_and_revoke_go_through_the_sts_as_the_caller(
    mesh: dict[str, Any], tmp_path: Path
) -> None:
    caller = tmp_path / "caller.jwt"
    caller.write_text(await caller_token(mesh))
    issued = json.loads((await asyncio.to_thread(_exchange, mesh, "--json")).stdout)
    sts = ("--sts-url", mesh["sts"]["http"], "--caller-token-file", str(caller))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _wif(*args, stdin=issued["access_token"])

    active = await asyncio.to_thread(run, "--json", "token", "introspect", *sts)
    text = await asyncio.to_thread(run, "token", "introspect", *sts)
    revoked = await asyncio.to_thread(run, "token", "revoke", "--token", "-", *sts)
    after = await asyncio.to_thread(run, "token", "introspect", *sts)

    assert active.returncode == 0, active.stderr
    assert json.loads(active.stdout)["jti"] == issued["token_id"]
    assert json.loads(active.stdout)["active"] is True
    assert f"token id: {issued['token_id']}" in text.stdout
    assert revoked.returncode == 0, revoked.stderr
    assert issued["token_id"] in revoked.stdout
    assert (after.returncode, after.stdout) == (1, "inactive\n")


async def test_token_introspect_as_a_refused_caller_exits_1_with_the_error(
    mesh: dict[str, Any], tmp_path: Path
) -> None:
    issued = json.loads((await asyncio.to_thread(_exchange, mesh, "--json")).stdout)
    caller = tmp_path / "caller.jwt"
    caller.write_text(issued["access_token"])  # for payments-api, not the STS
    sts = ("--sts-url", mesh["sts"]["http"], "--caller-token-file", str(caller))

    result = await asyncio.to_thread(
        _wif, "token", "introspect", *sts, stdin=issued["access_token"]
    )
    unnamed = await asyncio.to_thread(
        _wif,
        "token",
        "introspect",
        "--sts-url",
        mesh["sts"]["http"],
        stdin=issued["access_token"],
        env={"WIF_CALLER_TOKEN_FILE": ""},
    )

    assert result.returncode == 1
    assert result.stderr.startswith("wif: the STS refused: invalid_client: ")
    assert "(401)" in result.stderr
    assert issued["access_token"] not in result.stderr + result.stdout
    assert unnamed.returncode == 1
    assert "--caller-token-file" in unnamed.stderr


def test_config_diff_of_the_applied_file_is_empty(mesh: dict[str, Any]) -> None:
    result = _wif(
        "--etcd",
        mesh["etcd"],
        "config",
        "diff",
        mesh["trust_config"],
        "--json",
        env=mesh["config_variables"],
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["identical"] is True
    assert report["documents"] == []


def test_config_diff_names_added_removed_and_changed_documents(
    mesh: dict[str, Any], tmp_path: Path
) -> None:
    document = yaml.safe_load(Path(mesh["trust_config"]).read_text())
    document["providers"][0]["clock_skew_seconds"] += 1
    document["pools"].append({"id": "reports", "parent": "acme"})
    removed = document["policies"].pop()["id"]
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(document))
    etcd = ("--etcd", mesh["etcd"])
    env = mesh["config_variables"]

    data = _wif(*etcd, "--json", "config", "diff", str(edited), env=env)
    human = _wif(*etcd, "config", "diff", str(edited), env=env)

    assert data.returncode == 1, data.stderr
    assert json.loads(data.stdout)["documents"] == [
        {"document": f"policies/{removed}", "change": "removed", "fields": []},
        {"document": "pools/reports", "change": "added", "fields": []},
        {
            "document": f"providers/{document['providers'][0]['id']}",
            "change": "changed",
            "fields": ["clock_skew_seconds"],
        },
    ]
    assert human.returncode == 1
    assert human.stdout.splitlines()[:3] == [
        f"- policies/{removed}",
        "+ pools/reports",
        f"~ providers/{document['providers'][0]['id']}: clock_skew_seconds",
    ]
    assert human.stdout.splitlines()[3].startswith("3 documents differ from etcd")


def test_config_diff_with_etcd_down_exits_3(tmp_path: Path) -> None:
    result = _wif(
        "--etcd", "127.0.0.1:9", "config", "diff", "config/dev-trust.yaml",
        env={"WIF_DEV_OIDC_ISSUER": "http://127.0.0.1:9", "WIF_ISSUER": "http://127.0.0.1:9"},
    )  # fmt: skip

    assert result.returncode == 3, result.stderr


def test_json_outputs_parse(mesh: dict[str, Any]) -> None:
    outputs = [
        _wif("--etcd", mesh["etcd"], "config", "get"),
        _wif("--state-dir", mesh["state_dir"], "keys", "list", "--json"),
        _wif("--state-dir", mesh["state_dir"], "policy", "report", "--json"),
        _wif("--state-dir", mesh["state_dir"], "--json", "audit", "verify"),
        _wif(
            "--json", "config", "validate", mesh["trust_config"],
            env=mesh["config_variables"],
        ),
    ]  # fmt: skip

    for result in outputs:
        assert result.returncode == 0, result.stderr
        json.loads(result.stdout)
