"""Rebalance schedules: calendar periods, every N bars, drift bands and cost-aware bands.

A schedule names the **decision bars**: the bars at whose close the allocator is called. A calendar
schedule decides on the last bar of each period (so with ``execution="next_open"`` the trades fill at
the open of the first bar of the next period). Drift bands are checked by the kernel at every bar
against the standing target; the calendar (or ``bars``) sets when the target itself is refreshed.

The cost-aware band (``band_mode="cost"``) is the no-trade region of an investor with proportional
costs ``c`` (fee + slippage per side) and relative risk aversion ``g``: around a target weight ``w``
the half-width is ``(3 c w^2 (1 - w)^2 / (2 g)) ** (1/3)`` (Janecek & Shreve 2004; Gerhold, Guasoni,
Muhle-Karbe & Schachermayer 2014: the leading term for small costs). Outside it the expected utility
gained by trading the weight back exceeds the cost of the trade; inside it does not. An asset that
leaves its region is traded only back to the region's edge, the others are left alone. The width
depends on neither the volatility nor the bar length (both the drift of a weight and the utility lost
by a deviation scale with the variance), so it needs no estimate beyond the target itself.

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


def _epoch_periods(index: pd.DatetimeIndex, period_ms: int) -> np.ndarray:
    """``floor(milliseconds since the epoch / period_ms)`` of each bar (``period_ms`` a whole number
    of seconds), in one integer division of the index's own integers: no new index, no second
    division (integer division is the slow part on a long hourly index)."""
    raw = index.asi8
    per_ms = {"s": 0, "ms": 1, "us": 1_000, "ns": 1_000_000}[index.unit]
    return raw // (period_ms // 1000) if per_ms == 0 else raw // (period_ms * per_ms)


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
    if unit == "H":
        return _epoch_periods(index, mult * 3_600_000)
    days = _epoch_periods(index, _DAY_MS)
    if unit == "D":
        return days if mult == 1 else days // mult
    if unit == "W":
        start = _WEEKDAYS[anchor or "MON"]
        # 1970-01-01 was a Thursday (weekday 3): shift so that weeks begin on `start`
        return (days + 3 - start) // (7 * mult)
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)  # UTC months
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
    band_mode : {"absolute", "relative", "cost"}
        ``absolute``: band in weight units (0.05 = 5 points); ``relative``: a fraction of the target;
        ``cost``: the cost-aware no-trade region (module docs), its width from the costs and
        ``risk_aversion`` (no ``drift_band``), always traded to its edge.
    band_target : {"full", "edge"}, optional
        On a breach, trade fully back to the target or only back to the band edge (default: full,
        edge for the cost band).
    risk_aversion : float, optional
        The cost band's relative risk aversion ``g`` (default 1; only with ``band_mode="cost"``):
        higher trades more often and keeps closer to the target.

    With only ``drift_band`` (or the cost band) set, the target is refreshed monthly.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")
    >>> Schedule(every="1W").decision_bars(idx).tolist()  # first full window, then each Sunday
    [0, 6]
    """

    every: str | None = "1W"
    bars: int | None = None
    drift_band: float | None = None
    band_mode: Literal["absolute", "relative", "cost"] = "absolute"
    band_target: Literal["full", "edge"] | None = None
    risk_aversion: float | None = None

    def __post_init__(self) -> None:
        if self.every is not None and self.bars is not None:
            raise ValueError("set either `rebalance.every` or `rebalance.bars`, not both")
        if self.bars is not None and self.bars < 1:
            raise ValueError(f"`rebalance.bars` must be >= 1; got {self.bars}")
        if self.drift_band is not None and not 0 < self.drift_band < 1:
            raise ValueError(f"`rebalance.drift_band` must be in (0, 1); got {self.drift_band}")
        if self.band_mode == "cost":
            self._check_cost_band()
        elif self.risk_aversion is not None:
            raise ValueError(
                "`rebalance.risk_aversion` sets the width of the cost band; it needs "
                f"`band_mode = 'cost'` (got band_mode {self.band_mode!r})"
            )
        if self.every is None and self.bars is None and not self.banded:
            raise ValueError(
                "a rebalance schedule needs `every`, `bars`, `drift_band` or `band_mode = 'cost'`"
            )
        if self.every is not None:
            period_labels(pd.DatetimeIndex([pd.Timestamp(0, tz="UTC")]), self.every)

    def _check_cost_band(self) -> None:
        if self.drift_band is not None:
            raise ValueError(
                f"`rebalance.drift_band` ({self.drift_band:g}) is the width of an absolute or relative "
                "band; `band_mode = 'cost'` derives its width from the costs and "
                "`rebalance.risk_aversion`: drop `drift_band`"
            )
        if self.band_target == "full":
            raise ValueError(
                "`band_mode = 'cost'` trades only back to the edge of its no-trade region; drop "
                "`rebalance.band_target` or set it to 'edge'"
            )
        if self.risk_aversion is not None and not (0 < self.risk_aversion < float("inf")):
            raise ValueError(
                f"`rebalance.risk_aversion` must be a positive number; got {self.risk_aversion}"
            )

    @property
    def banded(self) -> bool:
        """Whether the kernel checks a band at every bar (a drift band or the cost band)."""
        return self.drift_band is not None or self.band_mode == "cost"

    @property
    def to_edge(self) -> bool:
        """Whether a breach trades only back to the band edge."""
        return self.band_target == "edge" or self.band_mode == "cost"

    def band_scale(self, cost_rate: float) -> float:
        """The kernel's band parameter: ``drift_band`` (0: none), or for the cost band the factor
        ``(3 c / (2 g)) ** (1/3)`` that the kernel multiplies by ``(w (1 - w)) ** (2/3)`` (0 when
        ``cost_rate`` is 0: without costs every target row is traded in full)."""
        if self.band_mode != "cost":
            return float(self.drift_band or 0.0)
        if cost_rate < 0:
            raise ValueError(f"the cost band needs a cost rate >= 0; got {cost_rate}")
        return float((1.5 * cost_rate / (self.risk_aversion or 1.0)) ** (1.0 / 3.0))

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
        if self.band_mode == "cost":
            text += f", cost band (risk aversion {self.risk_aversion or 1.0:g}, trade to edge)"
        elif self.drift_band is not None:
            target = "edge" if self.to_edge else "full"
            text += f", drift band {self.drift_band:g} ({self.band_mode}, trade to {target})"
        return text
