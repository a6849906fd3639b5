"""Rebalance schedules: calendar periods, every N bars, and drift bands.

A schedule names the **decision bars**: the bars at whose close the allocator is called. A calendar
schedule decides on the last bar of each period (so with ``execution="next_open"`` the trades fill at
the open of the first bar of the next period). Drift bands are checked by the kernel at every bar
against the standing target; the calendar (or ``bars``) sets when the target itself is refreshed.

Calendar strings: ``"1D"``, ``"1W"`` (weeks start Monday; ``"W-FRI"`` etc. move the anchor),
``"1M"`` (calendar months), ``"1Q"``, multiples such as ``"2W"``, and intraday ``"4h"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

_DAY_MS = 86_400_000
_WEEKDAYS = {"MON": 0, "TUE": 1, "WED": 2, "THU": 3, "FRI": 4, "SAT": 5, "SUN": 6}
_ALIASES = {
    "D": "1D",
    "DAILY": "1D",
    "W": "1W",
    "WEEKLY": "1W",
    "M": "1M",
    "MS": "1M",
    "MONTHLY": "1M",
    "Q": "1Q",
    "QS": "1Q",
    "QUARTERLY": "1Q",
    "H": "1H",
    "HOURLY": "1H",
}
_PATTERN = re.compile(r"^(\d*)([DWMQH])(?:-(MON|TUE|WED|THU|FRI|SAT|SUN))?$")


def _epoch_ms(index: pd.DatetimeIndex) -> np.ndarray:
    """Milliseconds since the epoch (floored) of each bar, without building a new index."""
    raw = index.asi8
    if index.unit == "s":
        return raw * 1000
    return raw // {"ms": 1, "us": 1_000, "ns": 1_000_000}[index.unit]


def period_labels(index: pd.DatetimeIndex, every: str) -> np.ndarray:
    """Integer label of the calendar period of each bar (bars with equal labels share a period)."""
    key = _ALIASES.get(every.strip().upper(), every.strip().upper())
    match = _PATTERN.match(key)
    if not match:
        raise ValueError(
            f"`rebalance.every` must be a calendar period such as '1D', '1W', 'W-FRI', '1M', '1Q' or "
            f"'4h'; got {every!r}"
        )
    mult = int(match.group(1) or 1)
    unit, anchor = match.group(2), match.group(3)
    if mult < 1:
        raise ValueError(f"`rebalance.every` needs a positive multiple; got {every!r}")
    ms = _epoch_ms(index)
    if unit == "H":
        return ms // (mult * 3_600_000)
    days = ms // _DAY_MS
    if unit == "D":
        return days // mult
    if unit == "W":
        start = _WEEKDAYS[anchor or "MON"]
        # 1970-01-01 was a Thursday (weekday 3): shift so that weeks begin on `start`
        return (days + 3 - start) // (7 * mult)
    months = ms.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)  # UTC months
    if unit == "M":
        return months // mult
    return months // (3 * mult)


@dataclass(frozen=True)
class Schedule:
    """When to decide and when to trade.

    Parameters
    ----------
    every : str, optional
        Calendar period of target refreshes (see module docs).
    bars : int, optional
        Refresh the target every N bars instead (counted from the first bar with a full window).
    drift_band : float, optional
        Trade only when some ``|w - w_target|`` exceeds the band (checked every bar).
    band_mode : {"absolute", "relative"}
        ``absolute``: band in weight units (0.05 = 5 points); ``relative``: a fraction of the target.
    band_target : {"full", "edge"}
        On a breach, trade fully back to the target or only back to the band edge.

    With only ``drift_band`` set, the target is refreshed monthly.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")
    >>> Schedule(every="1W").decision_bars(idx).tolist()  # first full window, then each Sunday
    [0, 6]
    """

    every: str | None = "1W"
    bars: int | None = None
    drift_band: float | None = None
    band_mode: Literal["absolute", "relative"] = "absolute"
    band_target: Literal["full", "edge"] = "full"

    def __post_init__(self) -> None:
        if self.every is not None and self.bars is not None:
            raise ValueError("set either `rebalance.every` or `rebalance.bars`, not both")
        if self.bars is not None and self.bars < 1:
            raise ValueError(f"`rebalance.bars` must be >= 1; got {self.bars}")
        if self.drift_band is not None and not 0 < self.drift_band < 1:
            raise ValueError(f"`rebalance.drift_band` must be in (0, 1); got {self.drift_band}")
        if self.every is None and self.bars is None and self.drift_band is None:
            raise ValueError("a rebalance schedule needs `every`, `bars` or `drift_band`")
        if self.every is not None:
            period_labels(pd.DatetimeIndex([pd.Timestamp(0, tz="UTC")]), self.every)

    @property
    def refresh(self) -> str:
        """A short label of the target refresh rule, e.g. ``'1W'`` or ``'24 bars'``."""
        if self.bars is not None:
            return f"{self.bars} bars"
        return self.every or "1M"

    def decision_bars(self, index: pd.DatetimeIndex, first: int = 0) -> np.ndarray:
        """Indices of the decision bars at or after ``first`` (the first bar with a full window)."""
        n = len(index)
        if self.bars is not None:
            return np.arange(first, n, self.bars, dtype=np.int64)
        labels = period_labels(index, self.every or "1M")
        last_of_period = np.flatnonzero(labels[1:] != labels[:-1])  # bar t ends its period
        out = last_of_period[last_of_period >= first]
        if first < n and (out.size == 0 or out[0] != first):
            out = np.concatenate([[first], out])  # start invested as soon as a window is full
        return out.astype(np.int64)

    def describe(self) -> str:
        text = f"target refresh {self.refresh}"
        if self.drift_band is not None:
            text += (
                f", drift band {self.drift_band:g} ({self.band_mode}, trade to {self.band_target})"
            )
        return text
