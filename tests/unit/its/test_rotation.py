"""Tests for services.its.rotation against a real etcd: one leader, safe commits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import jwt
import pytest

from services.its.custody import KeyCustody, Pkcs11Custody, SealedCustody
from services.its.keys import KeyManager
from services.its.pkcs11 import Pkcs11Error, Pkcs11Token
from services.its.rotation import LEADER_KEY, KeyRotator
from services.its.schedule import RotationSchedule
from wif.audit import AuditLog
from wif.envelope import KeyEncryptionKey
from wif.keyring import KEYS_PREFIX, KeyState, parse_records
from wif.store import EtcdStore

SCHEDULE = RotationSchedule(
    period=3600, publish_ahead=60, max_token_lifetime=600, retention=600
)
SHORT = RotationSchedule(period=1, publish_ahead=1, max_token_lifetime=1, retention=1)
WAIT = 10.0


@pytest.fixture
async def clean(store: EtcdStore) -> AsyncIterator[EtcdStore]:
    """The store with no key records and no leader."""
    await store.replace_prefix(KEYS_PREFIX, {})
    await store.delete(LEADER_KEY)
    yield store
    await store.replace_prefix(KEYS_PREFIX, {})


@pytest.fixture(scope="module")
def sealed() -> SealedCustody:
    return SealedCustody(KeyEncryptionKey.from_text(KeyEncryptionKey.generate_text()))


def rotator(
    store: EtcdStore,
    custody: KeyCustody,
    audit_path: Path | None = None,
    schedule: RotationSchedule = SCHEDULE,
) -> KeyRotator:
    return KeyRotator(
        store,
        custody,
        schedule,
        AuditLog("its", str(audit_path) if audit_path else None),
        algorithm="ES256",
        check_interval=0.1,
        lease_seconds=2,
    )


async def records_in(store: EtcdStore) -> dict[str, KeyState]:
    snapshot = await store.get_prefix(KEYS_PREFIX)
    return {r.kid: r.state for r in parse_records(snapshot.items)}


async def eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


async def test_exactly_one_replica_leads_and_another_takes_over(
    clean: EtcdStore, sealed: SealedCustody
) -> None:
    replicas = [rotator(clean, sealed) for _ in range(3)]
    tasks = [asyncio.create_task(r.run()) for r in replicas]
    try:
        await eventually(lambda: any(r.is_leader for r in replicas))
        await asyncio.sleep(1.0)
        leaders = [r for r in replicas if r.is_leader]
        assert len(leaders) == 1
        first = replicas.index(leaders[0])

        tasks[first].cancel()
        await eventually(
            lambda: any(r.is_leader for i, r in enumerate(replicas) if i != first)
        )
        assert sum(r.is_leader for r in replicas) == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    states = await records_in(clean)
    assert list(states.values()) == [KeyState.ACTIVE]


async def test_concurrent_rotations_make_one_pending_key(
    clean: EtcdStore, sealed: SealedCustody
) -> None:
    first, second = rotator(clean, sealed), rotator(clean, sealed)
    await first.tick()

    await asyncio.gather(first.rotate(), second.rotate())

    assert sorted(s.value for s in (await records_in(clean)).values()) == [
        "active",
        "pending",
    ]


async def test_changes_are_audited_with_the_key_id(
    clean: EtcdStore, sealed: SealedCustody, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    keys = rotator(clean, sealed, audit)

    await keys.tick()
    (active,) = await records_in(clean)
    await keys.revoke(active)

    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["event"], r["state"]) for r in lines] == [
        ("key.created", "active"),
        ("key.revoked", "revoked"),
        ("key.created", "active"),
    ]
    assert lines[1]["key_id"] == active
    assert all("sealed" not in json.dumps(r) for r in lines)


async def test_revoke_of_an_unknown_kid_raises_key_error(
    clean: EtcdStore, sealed: SealedCustody
) -> None:
    with pytest.raises(KeyError):
        await rotator(clean, sealed).revoke("no-such-kid")


async def test_sealed_records_hold_no_private_key_in_the_clear(
    clean: EtcdStore, sealed: SealedCustody
) -> None:
    await rotator(clean, sealed).tick()

    snapshot = await clean.get_prefix(KEYS_PREFIX)

    (stored,) = snapshot.items.values()
    assert b"PRIVATE KEY" not in stored
    assert b'"d"' not in stored


async def test_hsm_keys_sign_verify_and_are_destroyed_with_their_record(
    clean: EtcdStore, hsm_token: Pkcs11Token
) -> None:
    custody = Pkcs11Custody(hsm_token)
    keys = KeyManager(clean, custody)
    follow = asyncio.create_task(keys.follow())
    try:
        leader = rotator(clean, custody, schedule=SHORT)
        await leader.tick()
        await keys.wait_until_loaded(WAIT)
        record, signer = keys.signer()
        token = signer.sign({"sub": "spiffe://acme.example/a/b"})
        jwk = next(k for k in keys.jwks()["keys"] if k["kid"] == record.kid)  # type: ignore[index]

        claims = jwt.decode(token, jwt.PyJWK.from_dict(jwk), algorithms=["ES256"])

        assert claims == {"sub": "spiffe://acme.example/a/b"}
        assert record.hsm_key_id
        assert not record.sealed_private
        await leader.revoke(record.kid)
        await asyncio.sleep(2.1)
        await leader.tick()
        assert record.kid not in await records_in(clean)
        with pytest.raises(Pkcs11Error):
            hsm_token.load(record.hsm_key_id, "ES256")
    finally:
        follow.cancel()
        await asyncio.gather(follow, return_exceptions=True)
