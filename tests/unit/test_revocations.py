"""Tests for wif.revocations: key format and the followed list."""

from __future__ import annotations

import pytest

from wif.revocations import RevocationList, subject_key, token_key
from wif.store import EtcdStore, Snapshot
from wif.tokens import base64url

SUBJECT = "spiffe://acme.example/t/j"


def test_keys_follow_the_shared_format() -> None:
    assert token_key("abc") == "/wif/revocations/jti/abc"
    suffix = subject_key(SUBJECT).removeprefix("/wif/revocations/sub/")
    assert base64url.decode(suffix).decode() == SUBJECT
    assert "/" not in suffix


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 257])
def test_unsafe_token_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="token id"):
        token_key(bad)


def test_list_follows_presence_of_keys_and_ignores_malformed_ones() -> None:
    revoked = RevocationList(EtcdStore("127.0.0.1:1"))
    revoked.apply(
        Snapshot(
            4,
            {
                token_key("t-1"): b"{}",
                subject_key(SUBJECT): b"{}",
                "/wif/revocations/sub/not*base64": b"",
            },
        )
    )

    assert revoked.token_revoked("t-1")
    assert not revoked.token_revoked("")
    assert revoked.revoked("t-2", SUBJECT)
    assert not revoked.revoked("t-2", SUBJECT + "/other")
    assert revoked.generation == 1

    revoked.apply(Snapshot(5, {}))
    assert not revoked.token_revoked("t-1")
