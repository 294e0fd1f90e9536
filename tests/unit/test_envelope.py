"""Tests for wif.envelope: sealing private keys at rest under a KEK."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from wif.envelope import KeyEncryptionKey, SealError

SECRET = b"-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n"
CONTEXT = "signing-key/kid-1"


@pytest.fixture
def kek() -> KeyEncryptionKey:
    return KeyEncryptionKey.from_text(KeyEncryptionKey.generate_text())


def _flip_first_byte(text: str) -> str:
    data = bytearray(base64.b64decode(text))
    data[0] ^= 0x01
    return base64.b64encode(bytes(data)).decode("ascii")


def test_seal_then_open_returns_the_secret(kek: KeyEncryptionKey) -> None:
    sealed = kek.seal(SECRET, CONTEXT)

    assert kek.open(sealed, CONTEXT) == SECRET


def test_seal_names_the_kek_and_never_holds_the_secret(
    kek: KeyEncryptionKey,
) -> None:
    sealed = kek.seal(SECRET, CONTEXT)

    assert sealed["kek_id"] == kek.id
    assert set(sealed) == {"kek_id", "nonce", "ciphertext", "key_nonce", "wrapped_key"}
    assert all(
        SECRET not in base64.b64decode(v) for k, v in sealed.items() if k != "kek_id"
    )


def test_seal_uses_fresh_nonces_and_data_keys(kek: KeyEncryptionKey) -> None:
    first, second = kek.seal(SECRET, CONTEXT), kek.seal(SECRET, CONTEXT)

    assert first["nonce"] != second["nonce"]
    assert first["ciphertext"] != second["ciphertext"]
    assert first["wrapped_key"] != second["wrapped_key"]


def test_open_with_another_kek_raises_seal_error(kek: KeyEncryptionKey) -> None:
    other = KeyEncryptionKey.from_text(KeyEncryptionKey.generate_text())
    sealed = kek.seal(SECRET, CONTEXT)

    with pytest.raises(SealError, match="another key-encryption key"):
        other.open(sealed, CONTEXT)


def test_open_with_another_kek_under_the_same_id_raises_seal_error(
    kek: KeyEncryptionKey,
) -> None:
    other = KeyEncryptionKey(bytes(32))
    sealed = {**kek.seal(SECRET, CONTEXT), "kek_id": other.id}

    with pytest.raises(SealError, match="cannot be opened"):
        other.open(sealed, CONTEXT)


@pytest.mark.parametrize("member", ["ciphertext", "wrapped_key", "nonce", "key_nonce"])
def test_open_of_a_tampered_record_raises_seal_error(
    member: str, kek: KeyEncryptionKey
) -> None:
    sealed = kek.seal(SECRET, CONTEXT)
    sealed[member] = _flip_first_byte(sealed[member])

    with pytest.raises(SealError, match="cannot be opened"):
        kek.open(sealed, CONTEXT)


def test_open_of_a_truncated_ciphertext_raises_seal_error(
    kek: KeyEncryptionKey,
) -> None:
    sealed = kek.seal(SECRET, CONTEXT)
    sealed["ciphertext"] = base64.b64encode(b"short").decode("ascii")

    with pytest.raises(SealError):
        kek.open(sealed, CONTEXT)


def test_open_of_a_record_missing_a_member_raises_seal_error(
    kek: KeyEncryptionKey,
) -> None:
    sealed = kek.seal(SECRET, CONTEXT)
    del sealed["wrapped_key"]

    with pytest.raises(SealError):
        kek.open(sealed, CONTEXT)


def test_open_of_a_record_moved_to_another_kid_raises_seal_error(
    kek: KeyEncryptionKey,
) -> None:
    sealed = kek.seal(SECRET, CONTEXT)

    with pytest.raises(SealError, match="cannot be opened"):
        kek.open(sealed, "signing-key/kid-2")


def test_repr_and_str_never_show_the_material(kek: KeyEncryptionKey) -> None:
    shown = [repr(kek), str(kek), f"{kek}", repr([kek])]
    material = kek.material

    for text in shown:
        assert f"KeyEncryptionKey(id={kek.id})" in text
        assert material.hex() not in text
        assert base64.b64encode(material).decode() not in text
        assert repr(material) not in text


def test_id_is_short_stable_and_not_the_material(kek: KeyEncryptionKey) -> None:
    again = KeyEncryptionKey(kek.material)

    assert again.id == kek.id
    assert len(kek.id) == 16
    assert kek.id not in kek.material.hex()


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_from_text_refuses_keys_that_are_not_32_bytes(size: int) -> None:
    text = base64.b64encode(b"k" * size).decode("ascii")

    with pytest.raises(ValueError, match="must be base64 of 32 random bytes"):
        KeyEncryptionKey.from_text(text)


@pytest.mark.parametrize("text", ["not base64!", "", "QUJD=="])
def test_from_text_refuses_text_that_is_not_base64(text: str) -> None:
    with pytest.raises(ValueError, match="must be base64 of 32 random bytes"):
        KeyEncryptionKey.from_text(text)


def test_from_text_ignores_surrounding_whitespace() -> None:
    text = KeyEncryptionKey.generate_text()

    assert KeyEncryptionKey.from_text(f"  {text}\n").material == base64.b64decode(text)


def test_from_file_reads_a_kek_file(tmp_path: Path) -> None:
    text = KeyEncryptionKey.generate_text()
    path = tmp_path / "kek"
    path.write_text(text + "\n", encoding="ascii")

    assert KeyEncryptionKey.from_file(path) == KeyEncryptionKey.from_text(text)


def test_constructor_refuses_material_that_is_not_32_bytes() -> None:
    with pytest.raises(ValueError, match="must be 32 bytes"):
        KeyEncryptionKey(b"k" * 31)
