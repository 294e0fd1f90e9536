"""Entry point of the Identity Token Service (``wif-its``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import grpc

from services.its.admin import KeyAdminServicer
from services.its.custody import KeyCustody, Pkcs11Custody, SealedCustody
from services.its.http import build_app
from services.its.keys import KeyManager
from services.its.pkcs11 import Pkcs11Error, Pkcs11Token
from services.its.rotation import KeyRotator
from services.its.schedule import RotationSchedule
from services.its.servicer import IdentityTokenServicer
from services.its.settings import ItsSettings
from wif.audit import AuditLog
from wif.envelope import KeyEncryptionKey
from wif.server import ServiceParts, run_main
from wif.settings import SettingsError
from wif.store import EtcdStore
from wif.trust.follower import TrustFollower
from wif.v1 import its_pb2, its_pb2_grpc, key_admin_pb2, key_admin_pb2_grpc

SERVICE_NAMES = (
    its_pb2.DESCRIPTOR.services_by_name["IdentityTokenService"].full_name,
    key_admin_pb2.DESCRIPTOR.services_by_name["KeyAdminService"].full_name,
)

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


def load_token(settings: ItsSettings) -> Pkcs11Token:
    """The PKCS#11 token named by the settings, logged in, else stop."""
    module, label = settings.pkcs11_module, settings.pkcs11_token_label
    if not module or not label:
        raise SettingsError(
            "settings pkcs11_module (WIF_PKCS11_MODULE) and pkcs11_token_label "
            "(WIF_PKCS11_TOKEN_LABEL) are required when signer is pkcs11"
        )
    try:
        if settings.pkcs11_pin_file:
            pin = Path(settings.pkcs11_pin_file).read_text(encoding="utf-8").strip()
        elif settings.pkcs11_pin:
            pin = settings.pkcs11_pin
        else:
            raise SettingsError(
                "setting pkcs11_pin_file (WIF_PKCS11_PIN_FILE) or pkcs11_pin "
                "(WIF_PKCS11_PIN) is required when signer is pkcs11"
            )
        return Pkcs11Token(module, label, pin, settings.pkcs11_key_label)
    except (OSError, Pkcs11Error) as exc:
        raise SettingsError(f"setting pkcs11_*: {exc}") from exc


def load_schedule(settings: ItsSettings) -> RotationSchedule:
    """The key schedule, refused when a valid token could stop verifying."""
    schedule = RotationSchedule(
        period=math.ceil(settings.key_rotation_period),
        publish_ahead=math.ceil(settings.key_publish_ahead),
        max_token_lifetime=math.ceil(settings.max_token_lifetime),
        retention=math.ceil(settings.retired_key_retention),
    )
    schedule.check(settings.jwks_cache_seconds)
    return schedule


def load_custody(settings: ItsSettings) -> KeyCustody:
    """Sealed keys under the KEK, or keys inside a PKCS#11 token."""
    if settings.signer == "sealed":
        return SealedCustody(load_kek(settings))
    return Pkcs11Custody(load_token(settings))


async def build(settings: ItsSettings) -> ServiceParts:
    """Wires the ITS from its settings."""
    schedule = load_schedule(settings)
    custody = load_custody(settings)
    store = EtcdStore(settings.etcd_endpoint)
    audit = AuditLog("its", settings.audit_log)
    keys = KeyManager(store, custody)
    rotator = KeyRotator(
        store,
        custody,
        schedule,
        audit,
        algorithm=settings.signing_algorithm,
        check_interval=settings.key_check_interval,
        lease_seconds=settings.leader_lease,
    )
    trust = TrustFollower(store, audit=audit)
    servicer = IdentityTokenServicer(keys, trust, audit, schedule)
    admin = KeyAdminServicer(rotator)

    async def ready() -> None:
        await store.connect()
        await keys.wait_until_loaded(STARTUP_TIMEOUT)

    def issuer() -> str | None:
        return trust.current.issuer if trust.current else None

    def register(server: grpc.aio.Server) -> None:
        its_pb2_grpc.add_IdentityTokenServiceServicer_to_server(servicer, server)
        key_admin_pb2_grpc.add_KeyAdminServiceServicer_to_server(admin, server)

    return ServiceParts(
        name="its",
        register=register,
        service_names=SERVICE_NAMES,
        background=[keys.follow(), trust.run(), rotator.run()],
        http_app=build_app(keys.jwks, issuer, settings.jwks_cache_seconds),
        http_listen=settings.http_listen,
        ready=ready,
        close=store.close,
        audit=audit,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the ITS until SIGTERM."""
    run_main("its", ItsSettings, build, argv)


if __name__ == "__main__":
    main()
