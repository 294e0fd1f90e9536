"""Tests for the store's lease keep-alive and compare-and-swap prefix updates."""

from __future__ import annotations

import pytest

from wif.store import EtcdStore


async def test_put_if_absent_with_a_lease_goes_when_the_lease_is_revoked(
    store: EtcdStore, prefix: str
) -> None:
    lease = await store.grant_lease(30)
    assert await store.put_if_absent(f"{prefix}leader", b"me", lease=lease)

    await store.revoke_lease(lease)

    assert await store.get(f"{prefix}leader") is None


async def test_refresh_lease_is_true_while_alive_and_false_once_revoked(
    store: EtcdStore,
) -> None:
    lease = await store.grant_lease(30)
    assert await store.refresh_lease(lease) is True

    await store.revoke_lease(lease)

    assert await store.refresh_lease(lease) is False


async def test_update_prefix_applies_when_nothing_changed(
    store: EtcdStore, prefix: str
) -> None:
    await store.put(f"{prefix}old", b"1")
    snapshot = await store.get_prefix(prefix)

    applied = await store.update_prefix_if_unchanged(
        prefix, snapshot.revision, {f"{prefix}new": b"2"}, [f"{prefix}old"]
    )

    assert applied is True
    assert dict((await store.get_prefix(prefix)).items) == {f"{prefix}new": b"2"}


async def test_update_prefix_refuses_after_a_concurrent_write(
    store: EtcdStore, prefix: str
) -> None:
    snapshot = await store.get_prefix(prefix)
    await store.put(f"{prefix}theirs", b"1")

    applied = await store.update_prefix_if_unchanged(
        prefix, snapshot.revision, {f"{prefix}mine": b"2"}
    )

    assert applied is False
    assert await store.get(f"{prefix}mine") is None


async def test_update_prefix_rejects_keys_outside_the_prefix(
    store: EtcdStore, prefix: str
) -> None:
    with pytest.raises(ValueError, match=r"^keys outside the prefix"):
        await store.update_prefix_if_unchanged(prefix, 0, {"/elsewhere": b"x"})
