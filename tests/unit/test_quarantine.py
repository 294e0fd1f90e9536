"""Tests for wif.quarantine and wif.durations."""

from __future__ import annotations

import pytest

from services.policy.restrictions import Revocations
from wif.durations import parse_duration
from wif.quarantine import Quarantine, quarantine_key
from wif.store import EtcdStore, Snapshot
from wif.tokens import base64url


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("2h", 7200), (" 1d ", 86400)]
)
def test_parse_duration_reads_a_number_and_a_unit(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "0m", "-5m", "1.5h", "10y", "31d"])
def test_parse_duration_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|30 days"):
        parse_duration(text)


def test_a_quarantine_record_round_trips_and_describes_itself() -> None:
    record = Quarantine("spiffe://acme.example/t/j", 1_800_000_600.0, "incident", "cli")

    assert Quarantine.from_json(record.to_json()) == record
    assert record.describe() == "quarantined until 2027-01-15T08:10:00Z: incident"


@pytest.mark.parametrize("data", [b"[]", b'{"until": 5}', b"not json"])
def test_a_malformed_quarantine_record_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        Quarantine.from_json(data)


def test_quarantine_key_is_the_base64url_of_the_subject() -> None:
    key = quarantine_key("spiffe://acme.example/t/j")

    suffix = key.removeprefix("/wif/quarantine/")
    assert base64url.decode(suffix) == b"spiffe://acme.example/t/j"
    assert "/" not in suffix


def test_revocations_follow_token_ids_and_subjects_by_presence() -> None:
    revocations = Revocations(EtcdStore("127.0.0.1:1"))
    subject = "spiffe://acme.example/t/j"
    encoded = base64url.encode(subject.encode())
    revocations._on_snapshot(
        Snapshot(
            3,
            {
                "/wif/revocations/jti/token-1": b"{}",
                f"/wif/revocations/sub/{encoded}": b"",
            },
        )
    )

    assert revocations.revoked("token-1", "spiffe://acme.example/t/other")
    assert revocations.revoked("token-2", subject)
    assert not revocations.revoked("token-2", "spiffe://acme.example/t/other")
    assert revocations.generation == 1
