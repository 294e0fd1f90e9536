"""Entry point of the Identity Token Service (``wif-its``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc

from services.its.http import build_app
from services.its.keys import KeyManager
from services.its.servicer import IdentityTokenServicer
from services.its.settings import ItsSettings
from wif.audit import AuditLog
from wif.envelope import KeyEncryptionKey
from wif.server import ServiceParts, run_main
from wif.settings import SettingsError
from wif.store import EtcdStore
from wif.trust.follower import TrustFollower
from wif.v1 import its_pb2, its_pb2_grpc

SERVICE_NAME = its_pb2.DESCRIPTOR.services_by_name["IdentityTokenService"].full_name

#: Seconds the service waits for etcd and its first key before giving up.
STARTUP_TIMEOUT = 30.0


def load_kek(settings: ItsSettings) -> KeyEncryptionKey:
    """The key-encryption key from a file or the environment, else stop."""
    try:
        if settings.kek_file:
            return KeyEncryptionKey.from_file(Path(settings.kek_file))
        if settings.kek:
            return KeyEncryptionKey.from_text(settings.kek)
    except (OSError, ValueError) as exc:
        raise SettingsError(f"setting kek_file / kek: {exc}") from exc
    raise SettingsError("setting kek_file (WIF_KEK_FILE) or kek (WIF_KEK) is required")


async def build(settings: ItsSettings) -> ServiceParts:
    """Wires the ITS from its settings."""
    store = EtcdStore(settings.etcd_endpoint)
    keys = KeyManager(store, load_kek(settings), settings.signing_algorithm)
    trust = TrustFollower(store)
    servicer = IdentityTokenServicer(keys, trust, AuditLog("its", settings.audit_log))

    async def ready() -> None:
        await store.connect()
        await keys.ensure_first_key()
        await keys.wait_until_loaded(STARTUP_TIMEOUT)

    def issuer() -> str | None:
        return trust.current.issuer if trust.current else None

    def register(server: grpc.aio.Server) -> None:
        its_pb2_grpc.add_IdentityTokenServiceServicer_to_server(servicer, server)

    return ServiceParts(
        name="its",
        register=register,
        service_names=(SERVICE_NAME,),
        background=[keys.follow(), trust.run()],
        http_app=build_app(keys.jwks, issuer),
        http_listen=settings.http_listen,
        ready=ready,
        close=store.close,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the ITS until SIGTERM."""
    run_main("its", ItsSettings, build, argv)


if __name__ == "__main__":
    main()
