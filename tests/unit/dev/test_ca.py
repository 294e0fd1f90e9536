"""Tests for wif.dev.ca: the development CA and the certificates it issues."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification

from wif.dev.ca import LEAF_LIFETIME, DevCa
from wif.tls import TlsFiles, spiffe_id_of


@pytest.fixture(scope="module")
def ca() -> DevCa:
    return DevCa.create("acme.example")


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_issue_writes_a_spiffe_certificate_with_service_and_loopback_names(
    ca: DevCa, tmp_path: Path
) -> None:
    cert = load(ca.issue("its", tmp_path).cert)

    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://acme.example/wif/its"
    ]
    assert names.get_values_for_type(x509.DNSName) == [
        "its.acme.example.wif.internal",
        "localhost",
    ]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1")
    ]
    assert spiffe_id_of(cert) == "spiffe://acme.example/wif/its"


def test_issue_makes_short_lived_p256_certificates(ca: DevCa, tmp_path: Path) -> None:
    cert = load(ca.issue("sts", tmp_path).cert)

    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime <= LEAF_LIFETIME + datetime.timedelta(minutes=1)
    assert cert.not_valid_after_utc <= ca.cert.not_valid_after_utc


def test_issue_writes_the_key_for_the_owner_only(ca: DevCa, tmp_path: Path) -> None:
    files = ca.issue("policy", tmp_path)

    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    ca.save(tmp_path / "ca")
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600


def test_issued_certificate_verifies_as_client_and_server(
    ca: DevCa, tmp_path: Path
) -> None:
    cert = load(ca.issue("sts", tmp_path).cert)
    store = verification.Store([ca.cert])
    builder = verification.PolicyBuilder().store(store)

    server = builder.build_server_verifier(verification.DNSName("localhost"))
    server.verify(cert, [])
    client = builder.build_client_verifier()
    assert client.verify(cert, []).subjects is not None


def test_issued_certificate_verifies_only_for_its_own_service_name(
    ca: DevCa, tmp_path: Path
) -> None:
    cert = load(ca.issue("its", tmp_path).cert)
    builder = verification.PolicyBuilder().store(verification.Store([ca.cert]))

    builder.build_server_verifier(
        verification.DNSName("its.acme.example.wif.internal")
    ).verify(cert, [])
    with pytest.raises(verification.VerificationError):
        builder.build_server_verifier(
            verification.DNSName("policy.acme.example.wif.internal")
        ).verify(cert, [])


def test_issue_refuses_a_name_that_gives_no_dns_name(ca: DevCa, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a single DNS label"):
        ca.issue("Its", tmp_path)


def test_certificate_of_another_ca_does_not_verify(ca: DevCa, tmp_path: Path) -> None:
    other = load(DevCa.create("acme.example").issue("sts", tmp_path).cert)
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([ca.cert]))
        .build_server_verifier(verification.DNSName("localhost"))
    )

    with pytest.raises(verification.VerificationError):
        verifier.verify(other, [])


def test_each_issue_has_a_new_serial_and_key(ca: DevCa, tmp_path: Path) -> None:
    first = ca.issue("its", tmp_path)
    material = TlsFiles(first.cert, first.key, first.ca).read()
    ca.issue("its", tmp_path)
    again = TlsFiles(first.cert, first.key, first.ca).read()

    assert material.serial != again.serial
    assert material.private_key != again.private_key


def test_load_returns_the_saved_ca(ca: DevCa, tmp_path: Path) -> None:
    ca.save(tmp_path)
    loaded = DevCa.load(tmp_path)

    cert = load(loaded.issue("operator", tmp_path / "out").cert)
    assert cert.issuer == ca.cert.subject
    assert loaded.cert == ca.cert


def test_create_refuses_a_bad_trust_domain() -> None:
    with pytest.raises(ValueError, match="trust domain"):
        DevCa.create("Not A Domain")


def test_repr_shows_no_key(ca: DevCa) -> None:
    assert "PRIVATE" not in repr(ca)
