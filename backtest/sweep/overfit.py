"""Honest tuning statistics for a sweep: Deflated Sharpe Ratio, PBO by CSCV, walk-forward tuning.

* :func:`deflated_sharpe_ratio` (Bailey and Lopez de Prado, 2014): the probability that the best
  point's Sharpe ratio beats the expected maximum Sharpe ratio of ``n_trials`` skill-less trials,
  corrected for the skewness and kurtosis of its returns and the length of the sample.
* :func:`probability_of_backtest_overfitting` (Bailey, Borwein, Lopez de Prado and Zhu, 2015): by
  combinatorially symmetric cross-validation, how often the in-sample best point ranks below the
  median out of sample.
* :func:`walk_forward_tuning`: choose the best point on each in-sample window, hold it over the next
  out-of-sample window, and stitch the out-of-sample returns.
* :func:`sweep_statistics` also runs combinatorial purged cross-validation
  (:mod:`backtest.sweep.cpcv`) when asked.

All Sharpe ratios here are per period (not annualised) unless a name says ``annual``. Formulas and
the worked example are in docs/sweeps.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from backtest.sweep.cpcv import CPCVResult

EULER_GAMMA = 0.5772156649015329


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _norm_ppf(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def sharpe_ratio(returns: np.ndarray, risk_free: float = 0.0) -> np.ndarray:
    """Per-period Sharpe ratio of each column: ``mean(r - rf) / std(r - rf, ddof=1)``.

    Parameters
    ----------
    returns : ndarray of shape (n_obs,) or (n_obs, n_trials)
    risk_free : float
        Per-period risk-free rate.

    Returns
    -------
    float or ndarray of shape (n_trials,)
        NaN where the standard deviation is 0.
    """
    r = np.asarray(returns, dtype=np.float64) - risk_free
    sd = r.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, r.mean(axis=0) / np.where(sd > 0, sd, 1.0), np.nan)


def expected_max_sharpe(n_trials: int, variance: float, mean: float = 0.0) -> float:
    """Expected maximum of ``n_trials`` Sharpe ratios drawn from N(``mean``, ``variance``).

    ``mean + sqrt(variance) * ((1 - gamma) * Z^-1(1 - 1/N) + gamma * Z^-1(1 - 1/(N e)))`` (the False
    Strategy theorem); ``mean`` for a single trial.

    >>> round(expected_max_sharpe(100, 0.5 / 250), 4)
    0.1132
    """
    if n_trials < 1:
        raise ValueError(f"`n_trials` must be >= 1; got {n_trials}")
    if not variance >= 0:
        raise ValueError(f"`variance` of the trials' Sharpe ratios must be >= 0; got {variance}")
    if n_trials == 1 or variance == 0:
        return float(mean)
    z = (1 - EULER_GAMMA) * _norm_ppf(1 - 1 / n_trials) + EULER_GAMMA * _norm_ppf(
        1 - 1 / (n_trials * math.e)
    )
    return float(mean + math.sqrt(variance) * z)


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """P(true Sharpe > ``benchmark``) given an observed per-period ``sharpe`` over ``n_obs`` returns.

    ``Z[(SR - SR*) sqrt(T - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR^2)]``; ``kurtosis`` is the
    plain (Pearson) kurtosis, 3 for normal returns.
    """
    if n_obs < 2:
        raise ValueError(f"`n_obs` must be >= 2 returns; got {n_obs}")
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not denom > 0:
        raise ValueError(
            f"the Sharpe ratio's variance term is not positive ({denom:.4g}) for skew={skew:.4g}, "
            f"kurtosis={kurtosis:.4g}; check that the returns and moments belong together"
        )
    return _norm_cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom))


@dataclass(frozen=True)
class DeflatedSharpe:
    """The Deflated Sharpe Ratio and its inputs (per-period Sharpe ratios)."""

    dsr: float
    sharpe: float
    benchmark: float  # SR0, the expected maximum Sharpe of n_trials skill-less trials
    n_trials: int
    variance: float
    n_obs: int
    skew: float
    kurtosis: float

    def annual(self, periods_per_year: float) -> tuple[float, float]:
        """``(sharpe, benchmark)`` annualised by ``sqrt(periods_per_year)``."""
        k = math.sqrt(periods_per_year)
        return self.sharpe * k, self.benchmark * k


def deflated_sharpe_ratio(
    sharpe: float,
    *,
    n_trials: int,
    variance: float,
    n_obs: int,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> DeflatedSharpe:
    """Deflated Sharpe Ratio of a per-period ``sharpe`` picked as the best of ``n_trials``.

    Parameters
    ----------
    sharpe : float
        Observed per-period Sharpe ratio of the selected trial.
    n_trials : int
        Number of (independent) trials the selection was made from.
    variance : float
        Variance of the per-period Sharpe ratios across the trials.
    n_obs : int
        Number of returns behind ``sharpe``.
    skew, kurtosis : float
        Skewness and (Pearson) kurtosis of the selected trial's returns.

    Examples
    --------
    The worked example of Bailey and Lopez de Prado (2014): annual Sharpe 2.5 on 5 years of daily
    returns (250 a year), best of 100 trials whose annual Sharpe ratios have variance 0.5, skewness
    -3, kurtosis 10:

    >>> d = deflated_sharpe_ratio(2.5 / 250**0.5, n_trials=100, variance=0.5 / 250, n_obs=1250,
    ...                           skew=-3, kurtosis=10)
    >>> round(d.benchmark, 4), round(d.dsr, 4)
    (0.1132, 0.9004)
    """
    sr0 = expected_max_sharpe(n_trials, variance)
    dsr = probabilistic_sharpe_ratio(sharpe, sr0, n_obs, skew, kurtosis)
    return DeflatedSharpe(
        dsr,
        float(sharpe),
        sr0,
        int(n_trials),
        float(variance),
        int(n_obs),
        float(skew),
        float(kurtosis),
    )


def deflated_sharpe_of_best(
    returns: pd.DataFrame, risk_free: float = 0.0
) -> tuple[str, DeflatedSharpe]:
    """DSR of the column with the highest Sharpe ratio among all columns (the trials).

    Parameters
    ----------
    returns : DataFrame of shape (n_obs, n_trials)
        Per-period returns of every trial over a common period (no NaN).
    risk_free : float
        Per-period risk-free rate subtracted before the Sharpe ratios.

    Returns
    -------
    (column, DeflatedSharpe)
    """
    from scipy.stats import kurtosis, skew

    values = check_returns_matrix(returns, min_trials=1)
    sr = sharpe_ratio(values, risk_free)
    finite = np.isfinite(sr)
    if not finite.any():
        raise ValueError("every trial has constant returns: no Sharpe ratio to deflate")
    best = int(np.nanargmax(sr))
    r = values[:, best] - risk_free
    variance = float(np.var(sr[finite], ddof=1)) if finite.sum() > 1 else 0.0
    result = deflated_sharpe_ratio(
        float(sr[best]),
        n_trials=int(finite.sum()),
        variance=variance,
        n_obs=len(r),
        skew=float(skew(r)),
        kurtosis=float(kurtosis(r, fisher=False)),
    )
    return str(returns.columns[best]), result


def check_returns_matrix(returns: pd.DataFrame | np.ndarray, min_trials: int) -> np.ndarray:
    values = np.asarray(returns, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < min_trials or values.shape[0] < 4:
        raise ValueError(
            f"`returns` must be a (n_obs >= 4, n_trials >= {min_trials}) matrix; got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError(
            "`returns` must be finite over the common period (drop the bars before every trial started)"
        )
    return values


@dataclass(frozen=True)
class PBOResult:
    """Probability of Backtest Overfitting and the CSCV statistics behind it.

    ``logits`` (one per split): ``log(w / (1 - w))`` of the relative out-of-sample rank ``w`` of the
    in-sample best trial; ``is_sharpe`` / ``oos_sharpe``: that trial's per-period Sharpe in and out
    of sample; ``degradation``: the slope of ``oos_sharpe`` on ``is_sharpe``.
    """

    pbo: float
    n_splits: int
    n_combinations: int
    logits: np.ndarray
    is_sharpe: np.ndarray
    oos_sharpe: np.ndarray
    prob_oos_loss: float
    degradation: float


def probability_of_backtest_overfitting(
    returns: pd.DataFrame | np.ndarray, n_splits: int = 16, risk_free: float = 0.0
) -> PBOResult:
    """PBO by combinatorially symmetric cross-validation (CSCV), with the Sharpe ratio as the metric.

    The rows are cut into ``n_splits`` equal blocks (a remainder at the start is dropped); each of the
    ``C(n_splits, n_splits / 2)`` ways to pick half of the blocks is an in-sample set, the rest its
    out-of-sample set. PBO is the share of splits where the in-sample best trial ranks at or below the
    median out of sample (logit <= 0).

    Parameters
    ----------
    returns : DataFrame or ndarray of shape (n_obs, n_trials)
        Per-period returns of every trial over a common period (no NaN), ``n_trials >= 2``.
    n_splits : int
        Even number of blocks, at least 2 (16 in the paper).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noise = rng.normal(0, 0.01, size=(1600, 20))
    >>> noise[:, 3] += 0.004  # one trial with a real edge
    >>> probability_of_backtest_overfitting(noise, n_splits=8).pbo
    0.0
    """
    values = check_returns_matrix(returns, min_trials=2)
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"`n_splits` must be an even number >= 2; got {n_splits}")
    n_obs, n_trials = values.shape
    size = n_obs // n_splits
    if size < 2:
        raise ValueError(f"{n_obs} returns cannot make {n_splits} blocks of >= 2; lower `n_splits`")
    blocks = (values[n_obs - size * n_splits :] - risk_free).reshape(n_splits, size, n_trials)
    sums, sq = blocks.sum(axis=1), (blocks**2).sum(axis=1)  # (n_splits, n_trials)
    combos = np.array(list(combinations(range(n_splits), n_splits // 2)))
    chosen = np.zeros((len(combos), n_splits))
    chosen[np.arange(len(combos))[:, None], combos] = 1.0
    is_sr = _block_sharpe(chosen @ sums, chosen @ sq, size * n_splits // 2)
    oos_sr = _block_sharpe((1 - chosen) @ sums, (1 - chosen) @ sq, size * n_splits // 2)
    best = np.argmax(np.where(np.isfinite(is_sr), is_sr, -np.inf), axis=1)
    rows = np.arange(len(combos))
    oos_best = oos_sr[rows, best]
    logits = rank_logits(oos_sr, best)
    is_best = is_sr[rows, best]
    slope = float(np.polyfit(is_best, oos_best, 1)[0]) if np.ptp(is_best) > 0 else math.nan
    return PBOResult(
        float(np.mean(logits <= 0)),
        n_splits,
        len(combos),
        logits,
        is_best,
        oos_best,
        float(np.mean(oos_best < 0)),
        slope,
    )


def rank_logits(oos_sharpe: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """``log(w / (1 - w))`` of the relative out-of-sample rank ``w`` of each split's chosen trial.

    The rank runs 1..N from the worst trial (ties share the lower rank; NaN ranks last) and
    ``w = rank / (N + 1)``, so a logit <= 0 means the chosen trial is at or below the median.

    Parameters
    ----------
    oos_sharpe : ndarray of shape (n_splits, n_trials)
    chosen : ndarray of int, shape (n_splits,)

    >>> rank_logits(np.array([[0.1, 0.3, 0.2], [0.1, 0.3, 0.2]]), np.array([1, 0])).round(3)
    array([ 1.099, -1.099])
    """
    oos = np.where(np.isfinite(oos_sharpe), oos_sharpe, -np.inf)
    picked = oos_sharpe[np.arange(len(chosen)), chosen]
    rank = (oos < picked[:, None]).sum(axis=1) + 1
    w = rank / (oos_sharpe.shape[1] + 1)
    return np.log(w / (1 - w))


def _block_sharpe(total: np.ndarray, total_sq: np.ndarray, n: int) -> np.ndarray:
    mean = total / n
    var = np.maximum(total_sq - n * mean**2, 0.0) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, mean / np.sqrt(var), np.nan)


@dataclass(frozen=True)
class WalkForwardTuning:
    """Walk-forward tuning: per-window choices and the stitched out-of-sample returns.

    ``windows`` has one row per out-of-sample window: ``train_start``, ``test_start``, ``test_end``
    (timestamps), ``chosen`` (column name), ``train_sharpe`` and ``test_sharpe`` (annualised).
    ``oos_sharpe`` is the annualised Sharpe of the stitched returns; ``hindsight_sharpe`` that of the
    single best column over the whole period and ``hindsight_oos_sharpe`` that column's over the
    stitched span (chosen with hindsight, so an upper bound that no real process reaches).
    """

    windows: pd.DataFrame
    oos_returns: pd.Series
    oos_sharpe: float
    hindsight: str
    hindsight_sharpe: float
    hindsight_oos_sharpe: float


def walk_forward_tuning(
    returns: pd.DataFrame,
    *,
    train_bars: int,
    test_bars: int,
    periods_per_year: float,
    risk_free: float = 0.0,
    anchored: bool = False,
) -> WalkForwardTuning:
    """Choose the best column (Sharpe) on each training window; hold it over the next test window.

    Parameters
    ----------
    returns : DataFrame of shape (n_obs, n_trials)
        Per-period returns of every grid point over a common period (no NaN). Each point's returns
        already come from its own walk-forward backtest, so its out-of-sample returns use no later data.
    train_bars, test_bars : int
        Lengths of the training and test windows; the windows roll by ``test_bars``.
    periods_per_year : float
        Annualises the reported Sharpe ratios.
    anchored : bool
        Training windows all start at the first bar (expanding) instead of rolling.

    Returns
    -------
    WalkForwardTuning
        Switching between points at a window boundary is assumed free (each point's own trading costs
        are in its returns; the cost of moving from one point's portfolio to another's is not).
    """
    values = check_returns_matrix(returns, min_trials=1)
    if train_bars < 2 or test_bars < 1:
        raise ValueError(
            f"`train_bars` must be >= 2 and `test_bars` >= 1; got {train_bars}, {test_bars}"
        )
    n_obs = len(values)
    if train_bars + test_bars > n_obs:
        raise ValueError(
            f"{n_obs} bars cannot hold a {train_bars}-bar training window and a {test_bars}-bar "
            "test window; shorten the windows or sweep a longer period"
        )
    ann = math.sqrt(periods_per_year)
    rows, pieces = [], []
    for test_start in range(train_bars, n_obs, test_bars):
        train_start = 0 if anchored else test_start - train_bars
        test_end = min(test_start + test_bars, n_obs)
        train_sr = sharpe_ratio(values[train_start:test_start], risk_free)
        pick = int(np.nanargmax(np.where(np.isfinite(train_sr), train_sr, -np.inf)))
        segment = values[test_start:test_end, pick]
        pieces.append(segment)
        test_sr = float(sharpe_ratio(segment, risk_free)) if len(segment) > 1 else math.nan
        rows.append(
            {
                "train_start": returns.index[train_start],
                "test_start": returns.index[test_start],
                "test_end": returns.index[test_end - 1],
                "chosen": str(returns.columns[pick]),
                "train_sharpe": float(train_sr[pick]) * ann,
                "test_sharpe": test_sr * ann,
            }
        )
    oos = pd.Series(
        np.concatenate(pieces), index=returns.index[train_bars:], name="walk_forward_oos"
    )
    full = sharpe_ratio(values, risk_free)
    best = int(np.nanargmax(np.where(np.isfinite(full), full, -np.inf)))
    return WalkForwardTuning(
        pd.DataFrame(rows),
        oos,
        float(sharpe_ratio(oos.to_numpy(), risk_free)) * ann,
        str(returns.columns[best]),
        float(full[best]) * ann,
        float(sharpe_ratio(values[train_bars:, best], risk_free)) * ann,
    )


def common_period(returns: pd.DataFrame) -> pd.DataFrame:
    """The rows where every column has a return (the period all grid points share)."""
    return returns.loc[returns.notna().all(axis=1)]


@dataclass
class SweepStatistics:
    """DSR, PBO, walk-forward tuning and CPCV of a sweep, on the period every grid point shares."""

    start: pd.Timestamp | None
    end: pd.Timestamp | None
    n_obs: int
    n_trials: int
    best: str | None = None
    dsr: DeflatedSharpe | None = None
    pbo: PBOResult | None = None
    walk_forward: WalkForwardTuning | None = None
    notes: list[str] | None = None
    cpcv: CPCVResult | None = None
    names: list[str] | None = None  # the columns (grid points) the CPCV choices index

    def to_dict(self, periods_per_year: float) -> dict[str, object]:
        """Plain values for ``overfit.json`` and the report (annualised Sharpe ratios)."""
        out: dict[str, object] = {
            "period": {"start": _iso(self.start), "end": _iso(self.end), "n_obs": self.n_obs},
            "n_trials": self.n_trials,
            "notes": list(self.notes or []),
        }
        if self.dsr is not None:
            sr, sr0 = self.dsr.annual(periods_per_year)
            out["dsr"] = {
                "best": self.best,
                "dsr": self.dsr.dsr,
                "sharpe_annual": sr,
                "benchmark_annual": sr0,
                "sharpe": self.dsr.sharpe,
                "benchmark": self.dsr.benchmark,
                "n_trials": self.dsr.n_trials,
                "variance": self.dsr.variance,
                "n_obs": self.dsr.n_obs,
                "skew": self.dsr.skew,
                "kurtosis": self.dsr.kurtosis,
            }
        if self.pbo is not None:
            p = self.pbo
            out["pbo"] = {
                "pbo": p.pbo,
                "n_splits": p.n_splits,
                "n_combinations": p.n_combinations,
                "prob_oos_loss": p.prob_oos_loss,
                "degradation": p.degradation,
                "median_logit": float(np.median(p.logits)),
            }
        if self.walk_forward is not None:
            w = self.walk_forward
            out["walk_forward"] = {
                "oos_sharpe": w.oos_sharpe,
                "hindsight": w.hindsight,
                "hindsight_sharpe": w.hindsight_sharpe,
                "hindsight_oos_sharpe": w.hindsight_oos_sharpe,
                "windows": [
                    {k: _iso(v) if isinstance(v, pd.Timestamp) else v for k, v in row.items()}
                    for row in w.windows.to_dict("records")
                ],
            }
        if self.cpcv is not None:
            out["cpcv"] = self.cpcv.to_dict(periods_per_year, self.names)
        return out


def _iso(value: pd.Timestamp | None) -> str | None:
    return None if value is None else pd.Timestamp(value).isoformat()


def sweep_statistics(
    returns: pd.DataFrame,
    *,
    periods_per_year: float,
    risk_free_rate: float = 0.0,
    n_splits: int = 16,
    train_bars: int | None = None,
    test_bars: int | None = None,
    cpcv: Mapping[str, int] | None = None,
) -> SweepStatistics:
    """DSR of the best point, PBO by CSCV, walk-forward tuning and optionally CPCV of a sweep's returns.

    Parameters
    ----------
    returns : DataFrame of shape (n_bars, n_points)
        Per-bar returns of each grid point (NaN before a point's first bar); the statistics use the
        rows where every point has a return.
    periods_per_year : float
    risk_free_rate : float
        Annual rate, de-annualised geometrically as in the metrics.
    n_splits : int
        CSCV blocks (lowered when the common period is short).
    train_bars, test_bars : int, optional
        Walk-forward windows; default one year and one quarter of bars (half and an eighth of the
        common period when that is shorter than 1.5 years).
    cpcv : dict, optional
        Keyword arguments of :func:`backtest.sweep.cpcv.combinatorial_purged_cv` (``n_groups``,
        ``n_test_groups``, ``purge``, ``embargo``); CPCV runs only when given.
    """
    rf = (1.0 + risk_free_rate) ** (1.0 / periods_per_year) - 1.0
    common = common_period(returns) if returns.shape[1] else returns
    stats = SweepStatistics(
        common.index[0] if len(common) else None,
        common.index[-1] if len(common) else None,
        len(common),
        returns.shape[1],
        notes=[],
    )
    notes = stats.notes
    assert notes is not None
    if returns.shape[1] == 0 or len(common) < 8:
        notes.append(
            f"only {len(common)} bars are common to every grid point: no overfitting statistics"
        )
        return stats
    stats.best, stats.dsr = deflated_sharpe_of_best(common, rf)
    if returns.shape[1] < 2:
        notes.append("a single grid point: PBO and walk-forward tuning need at least two")
        return stats
    splits = n_splits
    while splits > 2 and len(common) // splits < 4:
        splits -= 2
    if splits != n_splits:
        notes.append(f"PBO uses {splits} blocks (the common period of {len(common)} bars is short)")
    stats.pbo = probability_of_backtest_overfitting(common, splits, rf)
    if train_bars is None or test_bars is None:
        long_enough = len(common) >= 1.5 * periods_per_year
        train_bars = train_bars or (round(periods_per_year) if long_enough else len(common) // 2)
        test_bars = test_bars or (
            max(1, round(periods_per_year / 4)) if long_enough else max(2, len(common) // 8)
        )
    try:
        stats.walk_forward = walk_forward_tuning(
            common,
            train_bars=train_bars,
            test_bars=test_bars,
            periods_per_year=periods_per_year,
            risk_free=rf,
        )
    except ValueError as exc:
        notes.append(f"walk-forward tuning skipped: {exc}")
    if cpcv is not None:
        from backtest.sweep.cpcv import combinatorial_purged_cv

        try:
            stats.cpcv = combinatorial_purged_cv(common, risk_free=rf, **cpcv)
            stats.names = [str(c) for c in common.columns]
        except ValueError as exc:
            notes.append(f"CPCV skipped: {exc}")
    return stats
