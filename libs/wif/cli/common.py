"""What every ``wif`` command group shares: exit codes, endpoints, channels, output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from wif.errors import TemporarilyUnavailable
from wif.grpc_errors import error_info
from wif.tls import TlsFiles, TlsFilesError

EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3
DEFAULT_STATE_DIR = Path(".wif/dev")


def state_dir(args: argparse.Namespace) -> Path:
    return Path(
        args.state_dir or os.environ.get("WIF_DEV_STATE_DIR") or DEFAULT_STATE_DIR
    )


def resolve_address(
    args: argparse.Namespace, flag: str, env: str, endpoint: tuple[str, ...]
) -> str:
    """``--<flag>``, then the variable ``env``, then the running local mesh.

    ``endpoint`` is the path to the address in the local mesh's
    endpoints.json, such as ``("sts", "grpc")``.
    """
    given = getattr(args, flag, None)
    if given:
        return str(given)
    if os.environ.get(env):
        return os.environ[env]
    from wif.dev.mesh import read_endpoints

    try:
        found: Any = read_endpoints(state_dir(args))
        for part in endpoint:
            found = found[part]
        return str(found)
    except (FileNotFoundError, KeyError, ValueError):
        raise TemporarilyUnavailable(
            f"no address for {endpoint[0]}: give --{flag}, set {env} "
            "or run `wif dev up`"
        ) from None


def etcd_endpoint(args: argparse.Namespace) -> str:
    """--etcd, then WIF_ETCD_ENDPOINT, then the running local mesh."""
    return resolve_address(args, "etcd", "WIF_ETCD_ENDPOINT", ("etcd",))


def tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The operator's certificate, key and CA bundle, or None for plaintext.

    --tls-cert, --tls-key and --tls-ca, then WIF_TLS_CERT_FILE,
    WIF_TLS_KEY_FILE and WIF_TLS_CA_FILE, then the operator certificate of
    the running local mesh when it speaks mTLS.
    """
    given: list[str | None] = [
        getattr(args, name, None) for name in ("tls_cert", "tls_key", "tls_ca")
    ]
    if not any(given):
        names = ("WIF_TLS_CERT_FILE", "WIF_TLS_KEY_FILE", "WIF_TLS_CA_FILE")
        given = [os.environ.get(name) for name in names]
    if all(given):
        cert, key, ca = (Path(str(p)) for p in given)
        return TlsFiles(cert, key, ca)
    if any(given):
        raise RuntimeError(
            "--tls-cert, --tls-key and --tls-ca (or WIF_TLS_CERT_FILE, "
            "WIF_TLS_KEY_FILE and WIF_TLS_CA_FILE) go together"
        )
    from wif.dev.mesh import read_endpoints

    try:
        local = read_endpoints(state_dir(args)).get("tls")
    except (FileNotFoundError, ValueError):
        return None
    if not local:
        return None
    return TlsFiles(
        Path(local["operator_cert"]), Path(local["operator_key"]), Path(local["ca"])
    )


def grpc_channel(args: argparse.Namespace, target: str) -> grpc.aio.Channel:
    """A channel to a mesh service; mTLS as the operator when TLS is on."""
    files = tls_files(args)
    if files is None:
        return grpc.aio.insecure_channel(target)
    try:
        material = files.read()
    except TlsFilesError as exc:
        raise RuntimeError(str(exc)) from None
    credentials = grpc.ssl_channel_credentials(
        material.ca_bundle, material.private_key, material.cert_chain
    )
    return grpc.aio.secure_channel(target, credentials)


def call_failed(exc: grpc.aio.AioRpcError, service: str) -> Exception:
    """The error ``main`` reports for a failed call to ``service``."""
    code = exc.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return TemporarilyUnavailable(f"the {service} is unavailable: {exc.details()}")
    info = error_info(exc)
    reason = f" ({info.reason})" if info else ""
    return RuntimeError(f"{code.name.lower()}: {exc.details()}{reason}")


def variables(args: argparse.Namespace) -> dict[str, str]:
    """The environment, over the variables the local mesh was started with."""
    from wif.dev.mesh import read_endpoints

    try:
        local = dict(read_endpoints(state_dir(args)).get("config_variables", {}))
    except (FileNotFoundError, ValueError):
        local = {}
    return {**local, **os.environ}


def emit(args: argparse.Namespace, text: str, data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def progress(message: str) -> None:
    """One step of something slow, on stderr so stdout stays parseable."""
    print(f"... {message}", file=sys.stderr, flush=True)
