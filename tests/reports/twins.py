"""NumPy twins of the metric loops of ``reports.kernels``: the same figures as one vectorised
NumPy pass per metric (the formulas of docs/metrics.md), the oracle the compiled loop is tested
against."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.kernels import PATH_STATS, RETURN_RESOLUTION
from reports.series import drawdown_durations


def dispersion(x: np.ndarray) -> float:
    """Sample std (ddof=1); 0 when it is only rounding residue, NaN below 2 values."""
    if len(x) < 2:
        return math.nan
    sd = float(np.std(x, ddof=1))
    return 0.0 if sd <= max(1e-12 * float(np.max(np.abs(x))), RETURN_RESOLUTION) else sd


def path_metrics(
    values: np.ndarray, times: pd.DatetimeIndex, r: np.ndarray, ppy: float, rf_p: float
) -> dict[str, float]:
    """The figures of ``reports.kernels.path_stats_nb``, in NumPy."""
    n = len(r)
    years = n / ppy
    total = values[-1] / values[0] - 1.0
    with np.errstate(over="ignore"):  # a short path's CAGR may be inf, as the loop's
        cagr = (1.0 + total) ** (1.0 / years) - 1.0
    excess = r - rf_p
    sd, sd_ex = dispersion(r), dispersion(excess)
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    nonzero = int(np.count_nonzero(r))
    k = int((n - 1) * 0.05) + 1
    tail = np.sort(r)[:k]
    spells = drawdown_durations(values, times)
    mdd = float(np.min(values / np.maximum.accumulate(values) - 1.0))
    bars, days = spells["bars"].to_numpy(), spells["days"].to_numpy()
    out = {
        "start_value": float(values[0]),
        "end_value": float(values[-1]),
        "n_periods": float(n),
        "years": years,
        "total_return": total,
        "cagr": cagr,
        "volatility": sd * math.sqrt(ppy),
        "sharpe": float(np.mean(excess)) / sd_ex * math.sqrt(ppy) if sd_ex > 0 else math.nan,
        "sortino": float(np.mean(excess)) / downside * math.sqrt(ppy) if downside > 0 else math.nan,
        "var_95": float(np.percentile(r, 5.0)),
        "cvar_95": float(np.mean(tail)),
        "best_period": float(np.max(r)),
        "worst_period": float(np.min(r)),
        "hit_rate": float(np.count_nonzero(r > 0)) / nonzero if nonzero else math.nan,
        "max_drawdown": mdd,
        "max_drawdown_duration_bars": float(bars.max()) if len(bars) else 0.0,
        "max_drawdown_duration_days": float(days.max()) if len(days) else 0.0,
        "calmar": cagr / abs(mdd) if mdd < 0 else math.nan,
    }
    assert tuple(out) == PATH_STATS
    return out
