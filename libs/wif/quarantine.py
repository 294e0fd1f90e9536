"""Temporary restrictions of a principal, kept in etcd so that every replica sees them.

A quarantine is one key under :data:`QUARANTINE_PREFIX`, named by the
base64url form of the principal's SPIFFE ID and bound to an etcd lease of
the quarantine's length, so etcd removes it when it ends. Each record also
holds its end time, which is what a reader checks: a lease may outlive its
record's end by a second or so.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from wif.store import EtcdStore
from wif.tokens import base64url

#: The etcd prefix of quarantine records.
QUARANTINE_PREFIX = "/wif/quarantine/"

#: The longest reason kept with a record, in characters.
MAX_REASON_LENGTH = 200


def quarantine_key(subject: str) -> str:
    """The etcd key of the quarantine of ``subject``."""
    return QUARANTINE_PREFIX + base64url.encode(subject.encode("utf-8"))


def format_time(epoch: float) -> str:
    """An epoch time as an RFC 3339 UTC timestamp to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass(frozen=True)
class Quarantine:
    """One principal's restriction: denied everything until ``until``."""

    subject: str
    until: float
    reason: str = ""
    imposed_by: str = ""

    def describe(self) -> str:
        """The refusal a caller reads, such as ``quarantined until ...``."""
        text = f"quarantined until {format_time(self.until)}"
        return f"{text}: {self.reason}" if self.reason else text

    def to_json(self) -> bytes:
        """The record as stored in etcd."""
        record = {
            "subject": self.subject,
            "until": self.until,
            "reason": self.reason,
            "imposed_by": self.imposed_by,
        }
        return json.dumps(record, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Quarantine:
        """Parses a stored record; raises ``ValueError`` if it is malformed."""
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("a quarantine record must be an object")
        try:
            return cls(
                subject=str(doc["subject"]),
                until=float(doc["until"]),
                reason=str(doc.get("reason", "")),
                imposed_by=str(doc.get("imposed_by", "")),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed quarantine record: {exc}") from exc


async def impose(
    store: EtcdStore,
    subject: str,
    seconds: int,
    *,
    reason: str = "",
    imposed_by: str = "",
    now: float | None = None,
) -> Quarantine:
    """Quarantines ``subject`` for ``seconds`` on every replica.

    Replaces an earlier quarantine of the same subject. Raises
    ``StoreUnavailable`` when etcd cannot be reached.
    """
    if seconds <= 0:
        raise ValueError("a quarantine lasts at least one second")
    start = time.time() if now is None else now
    record = Quarantine(
        subject=subject,
        until=start + seconds,
        reason=reason[:MAX_REASON_LENGTH],
        imposed_by=imposed_by[:MAX_REASON_LENGTH],
    )
    lease = await store.grant_lease(math.ceil(seconds) + 1)
    await store.put(quarantine_key(subject), record.to_json(), lease=lease)
    return record


async def release(store: EtcdStore, subject: str) -> bool:
    """Ends the quarantine of ``subject``; returns whether there was one."""
    return await store.delete(quarantine_key(subject))
