"""Durations written the way operators write them: ``90s``, ``10m``, ``2h``, ``1d``."""

from __future__ import annotations

import re

_DURATION = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

#: The longest duration accepted: a restriction or a grace is never open-ended.
MAX_DURATION_SECONDS = 30 * 86400


def parse_duration(text: str) -> int:
    """Seconds in ``text`` (a positive whole number and one of s, m, h, d).

    Raises ``ValueError`` for anything else, or for more than 30 days.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 10m, 2h or 1d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"{text!r} is longer than 30 days")
    return seconds
