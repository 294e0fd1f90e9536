"""A development CA for the local mesh and the tests: never for production.

:class:`DevCa` makes a short-lived EC P-256 CA and issues X.509-SVID-style
certificates: the one URI SAN is the SPIFFE ID
``spiffe://<trust domain>/wif/<name>``; the DNS name
``<name>.<trust domain>.wif.internal`` (:func:`wif.spiffe.service_name`)
names the same member to the services that call it; ``localhost`` and
``127.0.0.1`` let clients that check the address (the ``wif`` commands, the
tests) reach it on loopback.
Private keys are written with mode 0600 and replaced atomically. In
production the same three files come from cert-manager or a SPIFFE agent.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wif import spiffe

#: How long the development CA is valid.
CA_LIFETIME = datetime.timedelta(days=7)

#: How long a service or operator certificate is valid.
LEAF_LIFETIME = datetime.timedelta(hours=24)

#: Validity starts this much in the past, for clocks a little behind.
BACKDATE = datetime.timedelta(minutes=1)

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"


@dataclass(frozen=True)
class IssuedFiles:
    """Where an issued certificate, its key and the CA bundle were written."""

    cert: Path
    key: Path
    ca: Path


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private(path: Path, data: bytes) -> None:
    """Writes a secret file with mode 0600, replacing any old one atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def write_public(path: Path, data: bytes) -> None:
    """Writes a certificate file, replacing any old one atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class DevCa:
    """A self-signed CA that issues SPIFFE certificates under one trust domain."""

    def __init__(
        self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, trust_domain: str
    ) -> None:
        self._key = key
        self.cert = cert
        self.trust_domain = trust_domain

    def __repr__(self) -> str:
        return f"DevCa(trust_domain={self.trust_domain!r})"

    @classmethod
    def create(
        cls,
        trust_domain: str = "acme.example",
        lifetime: datetime.timedelta = CA_LIFETIME,
    ) -> DevCa:
        """A new CA; raises ValueError for a bad trust domain."""
        if not spiffe.is_trust_domain(trust_domain):
            raise ValueError(f"not a valid SPIFFE trust domain: {trust_domain!r}")
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wif development"),
                x509.NameAttribute(
                    NameOID.COMMON_NAME, f"{trust_domain} development CA"
                ),
            ]
        )
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert, trust_domain)

    def save(self, folder: Path) -> Path:
        """Writes ``ca.pem`` and ``ca.key`` (0600); returns the certificate's path."""
        folder.mkdir(parents=True, exist_ok=True)
        write_private(folder / CA_KEY_FILE, _pem_key(self._key))
        write_public(
            folder / CA_CERT_FILE, self.cert.public_bytes(serialization.Encoding.PEM)
        )
        return folder / CA_CERT_FILE

    @classmethod
    def load(cls, folder: Path, trust_domain: str = "acme.example") -> DevCa:
        """The CA that :meth:`save` wrote to ``folder``.

        The CA carries no name constraints: BoringSSL, inside gRPC, refuses
        a chain whose CA constrains URI names, which a SPIFFE CA would.
        """
        key = serialization.load_pem_private_key(
            (folder / CA_KEY_FILE).read_bytes(), password=None
        )
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{folder / CA_KEY_FILE} is not an EC private key")
        cert = x509.load_pem_x509_certificate((folder / CA_CERT_FILE).read_bytes())
        return cls(key, cert, trust_domain)

    def spiffe_id(self, name: str) -> str:
        """The SPIFFE ID the CA gives the mesh member ``name``."""
        return spiffe.make_id(self.trust_domain, f"wif/{name}")

    def service_name(self, name: str) -> str:
        """The DNS name the CA gives the mesh member ``name``; may raise ValueError."""
        return spiffe.service_name(self.trust_domain, name)

    def issue_pem(
        self,
        spiffe_id: str,
        lifetime: datetime.timedelta = LEAF_LIFETIME,
        *,
        dns_names: Sequence[str] = (),
    ) -> tuple[bytes, bytes]:
        """A new key and certificate for ``spiffe_id``, as PEM (key, certificate).

        ``dns_names`` come before ``localhost`` among the DNS names.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        not_after = min(now + lifetime, self.cert.not_valid_after_utc)
        names = [
            x509.UniformResourceIdentifier(spiffe_id),
            *(x509.DNSName(name) for name in dns_names),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(
                            NameOID.ORGANIZATION_NAME, "wif development"
                        ),
                        x509.NameAttribute(
                            NameOID.COMMON_NAME, spiffe_id.rpartition("/")[2]
                        ),
                    ]
                )
            )
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.BasicConstraints(ca=False, path_length=None), critical=True
            )
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self._key.public_key()
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return _pem_key(key), cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        name: str,
        folder: Path,
        *,
        spiffe_id: str | None = None,
        lifetime: datetime.timedelta = LEAF_LIFETIME,
    ) -> IssuedFiles:
        """Writes ``<name>.pem``, ``<name>.key`` (0600) and ``ca.pem`` in ``folder``.

        The certificate names the member ``name`` twice, bound together here:
        by ``spiffe_id`` (by default :meth:`spiffe_id`) and by the DNS name
        :meth:`service_name`. The key is written before the certificate, each
        atomically; a reader that sees a key and certificate that do not
        match yet keeps its old pair (see :mod:`wif.tls`). Raises ValueError
        when ``name`` gives no DNS name.
        """
        folder.mkdir(parents=True, exist_ok=True)
        key_pem, cert_pem = self.issue_pem(
            spiffe_id or self.spiffe_id(name),
            lifetime,
            dns_names=(self.service_name(name),),
        )
        files = IssuedFiles(
            folder / f"{name}.pem", folder / f"{name}.key", folder / CA_CERT_FILE
        )
        write_private(files.key, key_pem)
        write_public(files.cert, cert_pem)
        if not files.ca.exists():
            write_public(files.ca, self.cert.public_bytes(serialization.Encoding.PEM))
        return files
