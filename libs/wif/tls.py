"""Mutual TLS between the mesh's services, from certificate files that may change.

A service's certificate, key and CA bundle are three PEM files
(:class:`TlsFiles`), written by a development CA, cert-manager or a SPIFFE
agent. They are replaced on disk before they expire, and nothing restarts:

- servers use gRPC's dynamic credentials, whose fetcher gRPC calls at each
  new handshake; the fetcher compares the files' fingerprints (inode, size,
  modification time) and re-reads them only when they changed;
- clients use :class:`ReloadingChannel`, which opens a new channel when the
  files changed and lets calls in flight on the old one finish.

A certificate and key that do not belong together (one file replaced, the
other not yet) are never used: the last good pair stays until both agree.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from wif import spiffe
from wif.settings import SettingsError

log = logging.getLogger(__name__)

#: Seconds between checks of a client's files for a new certificate.
CLIENT_CHECK_INTERVAL_SECONDS = 1.0

#: Seconds that calls on a replaced client channel get to finish.
CLIENT_CLOSE_GRACE_SECONDS = 10.0

Fingerprint = tuple[tuple[int, int, int], ...]


class TlsFilesError(ValueError):
    """A TLS file cannot be read or does not hold what it should."""


class TlsSettings(Protocol):
    """The TLS settings every service has (see :class:`wif.settings.CommonSettings`)."""

    @property
    def tls_cert_file(self) -> str | None: ...
    @property
    def tls_key_file(self) -> str | None: ...
    @property
    def tls_ca_file(self) -> str | None: ...


@dataclass(frozen=True)
class TlsMaterial:
    """The PEM bytes of one consistent certificate, key and CA bundle."""

    cert_chain: bytes
    private_key: bytes
    ca_bundle: bytes
    spiffe_id: str | None
    #: The certificate's DNS names, such as its mesh service name.
    dns_names: tuple[str, ...]
    serial: int
    #: The files' fingerprint taken before they were read.
    fingerprint: Fingerprint

    def __repr__(self) -> str:
        # The private key never reaches a log line or a traceback.
        return f"TlsMaterial(spiffe_id={self.spiffe_id!r}, serial={self.serial:x})"


@dataclass(frozen=True)
class TlsFiles:
    """Where a service's certificate chain, private key and CA bundle live."""

    cert: Path
    key: Path
    ca: Path

    @classmethod
    def from_settings(cls, settings: TlsSettings) -> TlsFiles | None:
        """The files the settings name, or None when TLS is off."""
        cert, key, ca = (
            settings.tls_cert_file,
            settings.tls_key_file,
            settings.tls_ca_file,
        )
        if not (cert and key and ca):
            return None
        return cls(Path(cert), Path(key), Path(ca))

    def fingerprint(self) -> Fingerprint:
        """Changes whenever one of the files is replaced or rewritten."""
        stats = (os.stat(p) for p in (self.cert, self.key, self.ca))
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)

    def read(self) -> TlsMaterial:
        """Reads and checks the three files; raises :class:`TlsFilesError`."""
        try:
            fingerprint = self.fingerprint()
        except OSError as exc:
            raise TlsFilesError(f"cannot read {exc.filename}: {exc.strerror}") from None
        cert_pem = _read(self.cert)
        key_pem = _read(self.key)
        ca_pem = _read(self.ca)
        try:
            chain = x509.load_pem_x509_certificates(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
            x509.load_pem_x509_certificates(ca_pem)
        except ValueError as exc:
            raise TlsFilesError(
                f"{self.cert}, {self.key} or {self.ca}: {exc}"
            ) from None
        leaf = chain[0]
        if leaf.public_key() != key.public_key():
            raise TlsFilesError(f"the key in {self.key} does not match {self.cert}")
        return TlsMaterial(
            cert_pem,
            key_pem,
            ca_pem,
            spiffe_id_of(leaf),
            dns_names_of(leaf),
            leaf.serial_number,
            fingerprint,
        )

    def read_at_start(self) -> TlsMaterial:
        """Like :meth:`read`, but a failure stops start-up naming the settings."""
        try:
            return self.read()
        except TlsFilesError as exc:
            raise SettingsError(f"settings tls_*_file: {exc}") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsFilesError(f"cannot read {path}: {exc.strerror}") from None


def spiffe_id_of(cert: x509.Certificate) -> str | None:
    """The certificate's SPIFFE ID: its one URI SAN, if that is a SPIFFE ID."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1 or spiffe.trust_domain_of(uris[0]) is None:
        return None
    return uris[0]


def dns_names_of(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names among the certificate's subject alternative names."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(names.value.get_values_for_type(x509.DNSName))


class _ServerCertificates:
    """The fetcher gRPC calls at each handshake; None keeps the current pair."""

    def __init__(self, files: TlsFiles, material: TlsMaterial) -> None:
        self._files = files
        self._fingerprint = material.fingerprint

    def __call__(self) -> Any:
        # Called on a gRPC core thread: it must not raise and must stay cheap.
        try:
            fingerprint = self._files.fingerprint()
            if fingerprint == self._fingerprint:
                return None
            material = self._files.read()
        except (OSError, TlsFilesError) as exc:
            log.warning("keeping the current server certificate: %s", exc)
            return None
        self._fingerprint = material.fingerprint
        log.info(
            "server certificate reloaded",
            extra={
                "fields": {
                    "spiffe_id": material.spiffe_id,
                    "serial": f"{material.serial:x}",
                }
            },
        )
        return _certificate_configuration(material)


def _certificate_configuration(material: TlsMaterial) -> Any:
    return grpc.ssl_server_certificate_configuration(
        [(material.private_key, material.cert_chain)], material.ca_bundle
    )


def server_credentials(
    files: TlsFiles, material: TlsMaterial, *, require_client_certificate: bool
) -> grpc.ServerCredentials:
    """Server credentials that follow the files at each new connection.

    gRPC offers no "request but do not require" mode: without
    ``require_client_certificate`` the server does not ask for a client
    certificate at all, so callers have no mesh identity.
    """
    return grpc.dynamic_ssl_server_credentials(
        _certificate_configuration(material),
        _ServerCertificates(files, material),
        require_client_authentication=require_client_certificate,
    )


ChannelFactory = Callable[[TlsMaterial], grpc.aio.Channel]


class ReloadingChannel:
    """A client channel that re-opens itself when its certificate files change.

    gRPC's client credentials are fixed when a channel is made, so this
    stands in for a ``grpc.aio.Channel`` in generated stubs: each call goes
    to the newest channel, checked at most once per ``check_interval``.
    """

    def __init__(
        self,
        files: TlsFiles,
        open_channel: ChannelFactory,
        *,
        check_interval: float = CLIENT_CHECK_INTERVAL_SECONDS,
    ) -> None:
        self._files = files
        self._open = open_channel
        self._check_interval = check_interval
        material = files.read()
        self._fingerprint = material.fingerprint
        self._channel = open_channel(material)
        self._checked = time.monotonic()
        self._closing: set[asyncio.Task[None]] = set()

    def current(self) -> grpc.aio.Channel:
        """The channel for the next call, re-opened if the files changed."""
        now = time.monotonic()
        if now - self._checked >= self._check_interval:
            self._checked = now
            self._reload_if_changed()
        return self._channel

    def _reload_if_changed(self) -> None:
        try:
            fingerprint = self._files.fingerprint()
            if fingerprint == self._fingerprint:
                return
            material = self._files.read()
        except (OSError, TlsFilesError) as exc:
            log.warning("keeping the current client certificate: %s", exc)
            return
        old, self._channel = self._channel, self._open(material)
        self._fingerprint = material.fingerprint
        task = asyncio.get_running_loop().create_task(
            old.close(CLIENT_CLOSE_GRACE_SECONDS)
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        log.info(
            "client certificate reloaded",
            extra={
                "fields": {
                    "spiffe_id": material.spiffe_id,
                    "serial": f"{material.serial:x}",
                }
            },
        )

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> _Delegate:
        return _Delegate(self, "unary_unary", method, args, kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> _Delegate:
        return _Delegate(self, "unary_stream", method, args, kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> _Delegate:
        return _Delegate(self, "stream_unary", method, args, kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> _Delegate:
        return _Delegate(self, "stream_stream", method, args, kwargs)

    async def close(self, grace: float | None = None) -> None:
        """Closes the current channel and waits for replaced ones to close."""
        await self._channel.close(grace)
        await asyncio.gather(*self._closing, return_exceptions=True)


class _Delegate:
    """A stub's multicallable that resolves the channel at each call."""

    def __init__(
        self,
        owner: ReloadingChannel,
        kind: str,
        method: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
    ) -> None:
        self._owner = owner
        self._kind = kind
        self._method = method
        self._args = args
        self._kwargs = kwargs
        self._bound: tuple[grpc.aio.Channel, Any] | None = None

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        channel = self._owner.current()
        if self._bound is None or self._bound[0] is not channel:
            factory = getattr(channel, self._kind)
            self._bound = (channel, factory(self._method, *self._args, **self._kwargs))
        return self._bound[1](request, **kwargs)
