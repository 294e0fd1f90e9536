"""Tests for wif.keyring: key records and the key set they publish."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import pytest

from wif.keyring import (
    KEYS_PREFIX,
    KeyRecord,
    KeyState,
    key_path,
    parse_records,
    published_jwks,
    verification_keys,
)
from wif.tokens import SigningKey, parse_compact, select_key, verify_signature
from wif.tokens.public_jwk import PRIVATE_MEMBERS

SEALED = {"kek_id": "kek-1", "ciphertext": "c2VhbGVk", "nonce": "bm9uY2U="}


@pytest.fixture(scope="module")
def es256() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="module")
def rs256() -> SigningKey:
    return SigningKey.generate("RS256")


@pytest.fixture(scope="module")
def signers() -> dict[KeyState, SigningKey]:
    return {
        KeyState.PENDING: SigningKey.generate("ES256"),
        KeyState.ACTIVE: SigningKey.generate("ES256"),
        KeyState.RETIRING: SigningKey.generate("RS256"),
        KeyState.REVOKED: SigningKey.generate("ES256"),
    }


def record_for(key: SigningKey, state: KeyState = KeyState.ACTIVE) -> KeyRecord:
    return KeyRecord(
        kid=key.kid,
        alg=key.alg,
        state=state,
        created_at=1_700_000_000,
        public_jwk=key.public_jwk(),
        sealed_private=SEALED,
    )


def stored(**changes: Any) -> bytes:
    doc: dict[str, Any] = {
        "kid": "k1",
        "alg": "ES256",
        "state": "active",
        "created_at": 1_700_000_000,
        "public_jwk": {"kty": "EC", "kid": "k1"},
        "sealed_private": SEALED,
    }
    doc.update(changes)
    return json.dumps(doc).encode()


def test_key_record_survives_a_json_round_trip(es256: SigningKey) -> None:
    record = record_for(es256, KeyState.RETIRING)

    assert KeyRecord.from_json(record.to_json()) == record


def test_key_record_json_is_sorted_and_holds_the_state_value(
    es256: SigningKey,
) -> None:
    doc = json.loads(record_for(es256, KeyState.PENDING).to_json())

    assert list(doc) == sorted(doc)
    assert doc["state"] == "pending"
    assert doc["sealed_private"] == SEALED


def test_key_record_repr_leaves_out_the_sealed_private_part(
    es256: SigningKey,
) -> None:
    assert "sealed_private" not in repr(record_for(es256))
    assert "ciphertext" not in repr(record_for(es256))


@dataclass(frozen=True)
class Malformed:
    name: str
    data: bytes
    message: str


MALFORMED = [
    Malformed("not json", b"not json", "Expecting value"),
    Malformed("not utf-8", b"\xff\xfe", "Expecting value"),
    Malformed("an array", b"[1, 2]", "malformed key record: "),
    Malformed("unknown state", stored(state="lost"), "'lost' is not a valid KeyState"),
    Malformed(
        "created_at not a number",
        stored(created_at="yesterday"),
        "invalid literal for int()",
    ),
    Malformed("created_at null", stored(created_at=None), "malformed key record: "),
    Malformed(
        "public_jwk not an object", stored(public_jwk=7), "malformed key record: "
    ),
    Malformed(
        "sealed_private null", stored(sealed_private=None), "malformed key record: "
    ),
]


@pytest.mark.parametrize("case", MALFORMED, ids=lambda case: case.name)
def test_key_record_from_json_refuses_what_is_not_a_record(case: Malformed) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(case.message)):
        KeyRecord.from_json(case.data)


@pytest.mark.parametrize(
    "name", ["kid", "alg", "state", "created_at", "public_jwk", "sealed_private"]
)
def test_key_record_from_json_names_a_missing_member(name: str) -> None:
    doc = json.loads(stored())
    del doc[name]

    with pytest.raises(ValueError, match=rf"^malformed key record: '{name}'$"):
        KeyRecord.from_json(json.dumps(doc).encode())


def test_key_path_puts_the_kid_under_the_keys_prefix() -> None:
    assert key_path("abc") == "/wif/keys/abc"
    assert key_path("abc").startswith(KEYS_PREFIX)


def test_parse_records_skips_and_logs_malformed_records(
    es256: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    good = record_for(es256)
    items = {
        key_path(good.kid): good.to_json(),
        key_path("broken"): b"{not json",
        key_path("unknown-state"): stored(state="lost"),
    }

    with caplog.at_level(logging.ERROR, logger="wif.keyring"):
        records = parse_records(items)

    assert records == [good]
    assert sorted(r.getMessage() for r in caplog.records) == [
        "ignoring a malformed key record at /wif/keys/broken",
        "ignoring a malformed key record at /wif/keys/unknown-state",
    ]


def test_published_jwks_holds_pending_active_and_retiring_but_not_revoked(
    signers: dict[KeyState, SigningKey],
) -> None:
    records = [record_for(key, state) for state, key in signers.items()]

    jwks = published_jwks(records)

    published = {jwk["kid"] for jwk in jwks["keys"]}
    assert published == {
        signers[KeyState.PENDING].kid,
        signers[KeyState.ACTIVE].kid,
        signers[KeyState.RETIRING].kid,
    }


def test_published_jwks_is_sorted_by_kid(
    signers: dict[KeyState, SigningKey],
) -> None:
    records = [record_for(key) for key in signers.values()]

    kids = [jwk["kid"] for jwk in published_jwks(reversed(records))["keys"]]

    assert kids == sorted(key.kid for key in signers.values())


def test_published_jwks_holds_public_members_only(
    es256: SigningKey, rs256: SigningKey
) -> None:
    jwks = published_jwks([record_for(es256), record_for(rs256)])

    assert set(jwks) == {"keys"}
    for jwk in jwks["keys"]:
        assert not PRIVATE_MEMBERS.intersection(jwk)
        assert set(jwk) <= {"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"}
    assert jwks["keys"] == sorted(
        [es256.public_jwk(), rs256.public_jwk()], key=lambda jwk: jwk["kid"]
    )


def test_published_jwks_of_no_records_is_an_empty_set() -> None:
    assert published_jwks([]) == {"keys": []}


def test_verification_keys_hold_every_published_key_with_its_algorithm(
    signers: dict[KeyState, SigningKey],
) -> None:
    records = [record_for(key, state) for state, key in signers.items()]

    keyset = verification_keys(records)

    assert set(keyset) == {
        signers[KeyState.PENDING].kid,
        signers[KeyState.ACTIVE].kid,
        signers[KeyState.RETIRING].kid,
    }
    assert keyset[signers[KeyState.ACTIVE].kid].alg == "ES256"
    assert keyset[signers[KeyState.RETIRING].kid].alg == "RS256"


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_verification_keys_verify_a_token_signed_by_a_published_key(
    alg: str, es256: SigningKey, rs256: SigningKey
) -> None:
    signer = es256 if alg == "ES256" else rs256
    token = signer.sign({"iss": "https://wif.test", "sub": "spiffe://test/a"})
    parsed = parse_compact(token)

    key = select_key(parsed, verification_keys([record_for(es256), record_for(rs256)]))

    assert key.kid == signer.kid
    verify_signature(parsed, key)


def test_verification_keys_skip_and_log_a_key_that_cannot_verify(
    es256: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    symmetric = KeyRecord(
        kid="hmac-1",
        alg="HS256",
        state=KeyState.ACTIVE,
        created_at=1_700_000_000,
        public_jwk={"kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0"},
        sealed_private=SEALED,
    )

    with caplog.at_level(logging.ERROR, logger="wif.keyring"):
        keyset = verification_keys([record_for(es256), symmetric])

    assert set(keyset) == {es256.kid}
    (line,) = caplog.records
    assert line.getMessage().startswith("ignoring a published key: key ")
    assert line.getMessage().endswith(
        ": symmetric keys (kty oct) never verify tokens here"
    )
