"""Timeframe strings (ccxt notation) and annualisation.

A timeframe is a ccxt string such as ``"1m"``, ``"15m"``, ``"1h"``, ``"4h"``, ``"1d"``, ``"1w"``.
Crypto trades around the clock, so by default a year has 365 days of bars; equity calendars pass
``days_per_year=252`` (see :func:`periods_per_year`).
"""

from __future__ import annotations

import re

_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_PATTERN = re.compile(r"^(\d+)([smhdw])$")
DAY_MS = 86_400_000


def timeframe_to_ms(timeframe: str) -> int:
    """Length of one bar in milliseconds.

    >>> timeframe_to_ms("4h")
    14400000
    """
    match = _PATTERN.match(str(timeframe).strip())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(
            f"`timeframe` must look like '1m', '15m', '1h', '4h', '1d' or '1w'; got {timeframe!r}"
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def bars_per_day(timeframe: str) -> float:
    """Number of bars in one calendar day (24 for ``"1h"``, 1 for ``"1d"``)."""
    return DAY_MS / timeframe_to_ms(timeframe)


def periods_per_year(timeframe: str, days_per_year: float = 365.0) -> float:
    """Bars per year for annualisation: ``days_per_year * bars_per_day(timeframe)``.

    >>> periods_per_year("1h")
    8760.0
    >>> periods_per_year("1d", days_per_year=252)
    252.0
    """
    return float(days_per_year) * bars_per_day(timeframe)


def days_to_bars(days: float, timeframe: str) -> int:
    """Convert a window in days to a whole number of bars (at least 2).

    >>> days_to_bars(30, "1h")
    720
    """
    if days <= 0:
        raise ValueError(f"`lookback_days` must be > 0; got {days}")
    return max(2, round(days * bars_per_day(timeframe)))
