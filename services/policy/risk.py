"""Risk of a request, scored from the principal's own recent history.

Each principal (per action) has a small history: the source networks and
audiences of its allowed requests, the hours of the day they came at, and
the times of its recent requests. A request is scored against that history
before it is decided:

- ``new_source_network``: its /24 (IPv4) or /64 (IPv6) was never seen;
- ``unusual_hour``: no allowed request came within an hour of this one's
  hour of the day (UTC);
- ``new_audience``: the principal never had this audience allowed;
- ``burst``: more requests than the burst limit in the burst window;
- ``no_history``: too few allowed requests yet to tell what is unusual.

Only allowed requests teach the history what is usual, so a refused
request from a new network is still new the next time. Every request
counts towards a burst. Histories are kept per replica, in memory, for at
most ``max_principals`` principals, least recently seen dropped first.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from services.policy.engine import Risk

NEW_SOURCE_NETWORK = "new_source_network"
UNUSUAL_HOUR = "unusual_hour"
NEW_AUDIENCE = "new_audience"
BURST = "burst"
NO_HISTORY = "no_history"

#: How much each signal adds to the score; the sum is capped at 100.
SIGNAL_WEIGHTS = {
    NEW_SOURCE_NETWORK: 35,
    UNUSUAL_HOUR: 20,
    NEW_AUDIENCE: 25,
    BURST: 40,
    NO_HISTORY: 10,
}


@dataclass(frozen=True)
class RiskSettings:
    """Limits of the risk history."""

    #: Allowed requests a principal needs before anything counts as new.
    baseline: int = 5
    #: Requests within ``burst_window_seconds`` beyond which it is a burst.
    burst_limit: int = 30
    burst_window_seconds: float = 60.0
    #: Histories kept; the least recently seen principal is dropped first.
    max_principals: int = 10_000
    #: Networks and audiences remembered per principal.
    max_networks: int = 32
    max_audiences: int = 64


@dataclass
class _History:
    allowed: int = 0
    networks: OrderedDict[str, None] = field(default_factory=OrderedDict)
    audiences: OrderedDict[str, None] = field(default_factory=OrderedDict)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    recent: deque[float] = field(default_factory=deque)


@functools.lru_cache(maxsize=4096)
def source_network(address: str) -> str | None:
    """The network ``address`` belongs to, or None when it is not an address."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _remember(items: OrderedDict[str, None], item: str, limit: int) -> None:
    items[item] = None
    items.move_to_end(item)
    while len(items) > limit:
        items.popitem(last=False)


def _hour(now: float) -> int:
    return time.gmtime(now).tm_hour


class RiskTracker:
    """Scores requests against each principal's history, and keeps it."""

    def __init__(self, settings: RiskSettings | None = None) -> None:
        self.settings = settings or RiskSettings()
        self._histories: OrderedDict[tuple[str, str], _History] = OrderedDict()

    def __len__(self) -> int:
        return len(self._histories)

    def _history(self, key: tuple[str, str]) -> _History:
        history = self._histories.get(key)
        if history is None:
            history = self._histories[key] = _History()
            while len(self._histories) > self.settings.max_principals:
                self._histories.popitem(last=False)
        self._histories.move_to_end(key)
        return history

    def assess(
        self, subject: str, action: str, audience: str, source: str, now: float
    ) -> Risk:
        """Scores one request and counts it towards a burst."""
        settings = self.settings
        history = self._history((subject, action))
        window_start = now - settings.burst_window_seconds
        while history.recent and history.recent[0] < window_start:
            history.recent.popleft()
        history.recent.append(now)
        while len(history.recent) > settings.burst_limit + 1:
            history.recent.popleft()

        signals = []
        if len(history.recent) > settings.burst_limit:
            signals.append(BURST)
        if history.allowed < settings.baseline:
            signals.append(NO_HISTORY)
        else:
            network = source_network(source)
            if network is not None and network not in history.networks:
                signals.append(NEW_SOURCE_NETWORK)
            hour = _hour(now)
            if not any(history.hours[(hour + d) % 24] for d in (-1, 0, 1)):
                signals.append(UNUSUAL_HOUR)
            if audience not in history.audiences:
                signals.append(NEW_AUDIENCE)
        score = min(100, sum(SIGNAL_WEIGHTS[s] for s in signals))
        return Risk(score=score, signals=tuple(sorted(signals)))

    def observe_allowed(
        self, subject: str, action: str, audience: str, source: str, now: float
    ) -> None:
        """Teaches the history that this allowed request is usual."""
        settings = self.settings
        history = self._history((subject, action))
        history.allowed += 1
        history.hours[_hour(now)] += 1
        network = source_network(source)
        if network is not None:
            _remember(history.networks, network, settings.max_networks)
        _remember(history.audiences, audience, settings.max_audiences)
