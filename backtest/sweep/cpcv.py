"""Combinatorial purged cross-validation (CPCV) of a sweep's choice of grid point.

Lopez de Prado (2018, *Advances in Financial Machine Learning*, ch. 12): the bars are cut into
``n_groups`` contiguous groups; each of the ``C(n_groups, n_test_groups)`` ways to pick
``n_test_groups`` of them is a test set, the other groups (less ``purge`` bars before each test block
and ``purge + embargo`` bars after it) the training set. Every group is tested in
``C(n_groups - 1, n_test_groups - 1)`` splits, so the test blocks recombine into
``n_paths = C(n_groups, n_test_groups) * n_test_groups / n_groups`` complete out-of-sample paths.

* :func:`cpcv_folds`: the folds and path ids, index for index those of skfolio's
  ``CombinatorialPurgedCV(n_folds, n_test_folds, purged_size, embargo_size)`` (tested).
* :func:`combinatorial_purged_cv`: on each split, the grid point with the best training Sharpe is
  held over the test groups; each path's stitched returns give one out-of-sample Sharpe ratio, so the
  selection is judged by a distribution rather than by one number; plus the share of splits where the
  chosen point ranks at or below the median on its test bars (PBO's rank statistic on CPCV splits).

Sharpe ratios are per period here (``CPCVResult.to_dict`` annualises). Formulas: docs/sweeps.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from backtest.sweep.overfit import check_returns_matrix, rank_logits, sharpe_ratio

MAX_SPLITS = 10_000  # C(n_groups, n_test_groups) above this is a misconfiguration, not a use case
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def check_cpcv(n_groups: int, n_test_groups: int, purge: int = 0, embargo: int = 0) -> None:
    """Raise ``ValueError`` unless the CPCV settings are usable (the number of bars aside).

    >>> check_cpcv(6, 2, purge=5, embargo=2)
    >>> check_cpcv(6, 6)
    Traceback (most recent call last):
    ...
    ValueError: `n_test_groups` must be < `n_groups` (6) so that something is left to train on; got 6
    """
    if n_groups < 2:
        raise ValueError(f"`n_groups` must be >= 2; got {n_groups}")
    if n_test_groups < 1:
        raise ValueError(f"`n_test_groups` must be >= 1; got {n_test_groups}")
    if n_test_groups >= n_groups:
        raise ValueError(
            f"`n_test_groups` must be < `n_groups` ({n_groups}) so that something is left to train "
            f"on; got {n_test_groups}"
        )
    if purge < 0 or embargo < 0:
        raise ValueError(f"`purge` and `embargo` must be >= 0 bars; got {purge}, {embargo}")
    n_splits = math.comb(n_groups, n_test_groups)
    if n_splits > MAX_SPLITS:
        raise ValueError(
            f"C({n_groups}, {n_test_groups}) = {n_splits:,} splits is more than {MAX_SPLITS:,}; "
            "use fewer groups or move `n_test_groups` away from half of them"
        )


@dataclass(frozen=True)
class CPCVFolds:
    """The groups, splits and paths of CPCV on ``n_bars`` bars.

    ``bounds`` (shape (n_groups + 1,)): group ``g`` holds bars ``bounds[g]:bounds[g + 1]`` (groups of
    ``n_bars // n_groups`` bars, the last one also takes the remainder). ``test_groups`` (shape
    (n_splits, n_test_groups)): the tested groups of each split, in the order of
    ``itertools.combinations``. ``path_ids`` (same shape): the path each test group belongs to.
    ``paths`` (shape (n_groups, n_paths)): the split that supplies group ``g`` of path ``p``.
    """

    n_bars: int
    n_groups: int
    n_test_groups: int
    purge: int
    embargo: int
    bounds: np.ndarray
    test_groups: np.ndarray
    path_ids: np.ndarray
    paths: np.ndarray

    @property
    def n_splits(self) -> int:
        return len(self.test_groups)

    @property
    def n_paths(self) -> int:
        return self.paths.shape[1]

    def is_test(self) -> np.ndarray:
        """Bool array of shape (n_splits, n_groups): group ``g`` is tested in split ``s``."""
        out = np.zeros((self.n_splits, self.n_groups), dtype=bool)
        out[np.arange(self.n_splits)[:, None], self.test_groups] = True
        return out

    def train_ranges(self) -> np.ndarray:
        """Int array of shape (n_groups, 2, 2, 2): the bars ``[start, stop)`` that group ``g`` trains
        on, by whether the group before (axis 1) and after (axis 2) it are tested.

        A test block removes the ``purge`` bars before it and the ``purge + embargo`` bars after it
        from the training set; where both cuts meet, nothing of the group is left (``start = stop``).
        """
        start, stop = self.bounds[:-1], self.bounds[1:]
        out = np.empty((self.n_groups, 2, 2, 2), dtype=np.int64)
        for before in (0, 1):
            for after in (0, 1):
                lo = start + before * (self.purge + self.embargo)
                hi = stop - after * self.purge
                out[:, before, after, 0] = lo
                out[:, before, after, 1] = np.maximum(lo, hi)
        return out

    def neighbours_tested(self) -> tuple[np.ndarray, np.ndarray]:
        """``(before, after)``, int arrays of shape (n_splits, n_groups): 1 where the group before
        (after) group ``g`` is tested in split ``s``."""
        test = self.is_test().astype(np.int64)
        before, after = np.zeros_like(test), np.zeros_like(test)
        before[:, 1:], after[:, :-1] = test[:, :-1], test[:, 1:]
        return before, after

    def train_index(self, split: int) -> np.ndarray:
        """Bars of the training set of ``split`` (ascending)."""
        ranges, test = self.train_ranges(), self.is_test()[split]
        before, after = (a[split] for a in self.neighbours_tested())
        pieces = [
            np.arange(*ranges[g, before[g], after[g]]) for g in range(self.n_groups) if not test[g]
        ]
        return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)

    def test_index(self, split: int) -> list[np.ndarray]:
        """Bars of each test group of ``split``, one array per group, groups ascending."""
        return [np.arange(self.bounds[g], self.bounds[g + 1]) for g in self.test_groups[split]]


#: Fewest training bars a split may keep (a Sharpe ratio needs a variance).
MIN_TRAIN_BARS = 2


def cpcv_folds(
    n_bars: int, n_groups: int, n_test_groups: int, purge: int = 0, embargo: int = 0
) -> CPCVFolds:
    """The CPCV folds of ``n_bars`` bars.

    Parameters
    ----------
    n_bars : int
        Number of bars.
    n_groups : int
        Contiguous groups (skfolio's ``n_folds``): ``n_bars // n_groups`` bars each, the remainder
        in the last one.
    n_test_groups : int
        Groups in each test set (skfolio's ``n_test_folds``), ``1 <= n_test_groups < n_groups``.
    purge : int
        Bars dropped from the training set on both sides of each test block (``purged_size``).
    embargo : int
        Further bars dropped from the training set after each test block (``embargo_size``);
        ``purge + embargo`` must be below the group size minus 1.

    Returns
    -------
    CPCVFolds

    Examples
    --------
    >>> f = cpcv_folds(12, 3, 2, purge=1)
    >>> f.n_splits, f.n_paths
    (3, 2)
    >>> f.train_index(1), f.test_index(1)
    (array([5, 6]), [array([0, 1, 2, 3]), array([ 8,  9, 10, 11])])
    >>> f.path_ids.tolist()
    [[0, 0], [1, 0], [1, 1]]
    """
    check_cpcv(n_groups, n_test_groups, purge, embargo)
    size = n_bars // n_groups
    if purge + embargo >= size - 1:
        raise ValueError(
            f"`purge` + `embargo` ({purge} + {embargo} bars) must be below the group size minus 1 "
            f"({n_bars} bars // {n_groups} groups - 1 = {size - 1}); lower them or use fewer groups"
        )
    bounds = np.minimum(np.arange(n_groups + 1) * size, n_bars)
    bounds[-1] = n_bars
    test_groups = np.array(list(combinations(range(n_groups), n_test_groups)), dtype=np.int64)
    is_test = np.zeros((len(test_groups), n_groups), dtype=bool)
    is_test[np.arange(len(test_groups))[:, None], test_groups] = True
    # path of (split, group): how many earlier splits tested the same group
    order = np.cumsum(is_test, axis=0) - 1
    path_ids = np.take_along_axis(order, test_groups, axis=1)
    n_paths = len(test_groups) * n_test_groups // n_groups
    paths = np.empty((n_groups, n_paths), dtype=np.int64)
    splits, groups = np.nonzero(is_test)
    paths[groups, order[splits, groups]] = splits
    folds = CPCVFolds(
        n_bars, n_groups, n_test_groups, purge, embargo, bounds, test_groups, path_ids, paths
    )
    smallest = min(len(folds.train_index(k)) for k in range(folds.n_splits))
    if smallest < MIN_TRAIN_BARS:
        raise ValueError(
            f"`purge` + `embargo` ({purge} + {embargo} bars) leave a split only {smallest} training "
            f"bar(s) ({n_bars} bars in {n_groups} groups, {n_test_groups} tested at once; a group "
            f"between two test blocks loses 2 x purge + embargo bars); at least {MIN_TRAIN_BARS} "
            "are needed: lower them or use fewer test groups"
        )
    return folds


@dataclass(frozen=True)
class CPCVResult:
    """CPCV of the choice of the best grid point (per-period Sharpe ratios).

    Per split: ``chosen`` (column index of the training-best point), ``is_sharpe`` and
    ``oos_sharpe`` (its Sharpe on the training and on the test bars) and ``logits`` (``log(w / (1 -
    w))`` of its relative rank ``w`` among all points on the test bars). Per path: ``path_sharpe``,
    the Sharpe ratio of the stitched test returns. ``pbo``: share of splits with a logit <= 0.
    """

    folds: CPCVFolds
    chosen: np.ndarray
    is_sharpe: np.ndarray
    oos_sharpe: np.ndarray
    logits: np.ndarray
    path_sharpe: np.ndarray
    pbo: float

    @property
    def median(self) -> float:
        """Median per-path out-of-sample Sharpe ratio."""
        return float(np.median(self.path_sharpe))

    @property
    def share_negative(self) -> float:
        """Share of paths whose out-of-sample Sharpe ratio is below 0."""
        return float(np.mean(self.path_sharpe < 0))

    def path_returns(self, returns: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The stitched out-of-sample returns of every path, shape (n_bars, n_paths)."""
        return stitch_paths(np.asarray(returns, dtype=np.float64), self.folds, self.chosen)

    def to_dict(self, periods_per_year: float, names: list[str] | None = None) -> dict[str, object]:
        """Plain values for ``overfit.json`` and the report (annualised Sharpe ratios)."""
        f, ann = self.folds, math.sqrt(periods_per_year)
        picks, counts = np.unique(self.chosen, return_counts=True)
        top = int(picks[np.argmax(counts)])
        return {
            "groups": f.n_groups,
            "test_groups": f.n_test_groups,
            "purge": f.purge,
            "embargo": f.embargo,
            "n_splits": f.n_splits,
            "n_paths": f.n_paths,
            "path_sharpe_annual": [float(s) * ann for s in self.path_sharpe],
            "median_sharpe_annual": self.median * ann,
            "quantiles_annual": {
                f"{q:g}": float(np.quantile(self.path_sharpe, q)) * ann for q in QUANTILES
            },
            "share_negative": self.share_negative,
            "pbo": self.pbo,
            "prob_oos_loss": float(np.mean(self.oos_sharpe < 0)),
            "median_is_sharpe_annual": float(np.median(self.is_sharpe)) * ann,
            "n_chosen": len(picks),
            "most_chosen": names[top] if names is not None else top,
            "most_chosen_share": float(counts.max() / f.n_splits),
        }


def combinatorial_purged_cv(
    returns: pd.DataFrame | np.ndarray,
    *,
    n_groups: int = 6,
    n_test_groups: int = 2,
    purge: int = 0,
    embargo: int = 0,
    risk_free: float = 0.0,
) -> CPCVResult:
    """Out-of-sample Sharpe ratios of "pick the best grid point" on every CPCV path.

    Parameters
    ----------
    returns : DataFrame or ndarray of shape (n_bars, n_trials)
        Per-bar returns of every grid point over a common period (no NaN), ``n_trials >= 2``.
    n_groups, n_test_groups, purge, embargo : int
        The folds (:func:`cpcv_folds`).
    risk_free : float
        Per-period risk-free rate subtracted before the Sharpe ratios.

    Returns
    -------
    CPCVResult
        Switching points between groups is free, as in walk-forward tuning.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noise = rng.normal(0, 0.01, size=(1200, 20))
    >>> noise[:, 3] += 0.004  # one trial with a real edge
    >>> cv = combinatorial_purged_cv(noise, n_groups=6, n_test_groups=2, purge=5)
    >>> cv.folds.n_paths, set(cv.chosen.tolist()), cv.pbo, cv.share_negative
    (5, {3}, 0.0, 0.0)
    """
    values = check_returns_matrix(returns, min_trials=2) - risk_free
    folds = cpcv_folds(len(values), n_groups, n_test_groups, purge, embargo)
    # centre each column on its first return: a constant column then has exactly zero variance
    centre = values[0]
    count, total, total_sq = _range_sums(values - centre, folds)  # (n_groups, 4[, n_trials])
    train, m = _train_weights(folds), values.shape[1]
    is_sr = _sharpe(
        train @ total.reshape(-1, m),
        train @ total_sq.reshape(-1, m),
        (train @ count.reshape(-1))[:, None],
        centre,
    )
    chosen = np.argmax(np.where(np.isfinite(is_sr), is_sr, -np.inf), axis=1)
    t = folds.is_test().astype(np.float64)  # range 0 of a group (nothing tested beside it): all
    oos_sr = _sharpe(t @ total[:, 0], t @ total_sq[:, 0], (t @ count[:, 0])[:, None], centre)
    rows = np.arange(folds.n_splits)
    logits = rank_logits(oos_sr, chosen)
    path_sr = np.concatenate(
        [
            sharpe_ratio(stitch_paths(values, folds, chosen, part))
            for part in np.array_split(np.arange(folds.n_paths), -(-folds.n_paths // 256))
        ]
    )
    pbo = float(np.mean(logits <= 0))
    return CPCVResult(
        folds, chosen, is_sr[rows, chosen], oos_sr[rows, chosen], logits, path_sr, pbo
    )


def stitch_paths(
    values: np.ndarray, folds: CPCVFolds, chosen: np.ndarray, paths: np.ndarray | None = None
) -> np.ndarray:
    """Out-of-sample returns of CPCV paths: group ``g`` of path ``p`` is the test return of the
    column chosen by the split that tested ``g`` for that path.

    Parameters
    ----------
    values : ndarray of shape (n_bars, n_trials)
    folds : CPCVFolds
    chosen : ndarray of shape (n_splits,)
        Column chosen by each split.
    paths : ndarray of int, optional
        The paths to stitch (default all).

    Returns
    -------
    ndarray of shape (n_bars, len(paths))
    """
    paths = np.arange(folds.n_paths) if paths is None else np.asarray(paths)
    out = np.empty((folds.n_bars, len(paths)))
    for g in range(folds.n_groups):
        rows = slice(folds.bounds[g], folds.bounds[g + 1])
        out[rows] = values[rows][:, chosen[folds.paths[g, paths]]]
    return out


def _train_weights(folds: CPCVFolds) -> np.ndarray:
    """Float array of shape (n_splits, n_groups * 4): 1 where split ``s`` trains on range ``code``
    of group ``g`` (column ``4 g + code``, ``code = 2 * before_tested + after_tested``), else 0."""
    test = folds.is_test()
    before, after = folds.neighbours_tested()
    code = 2 * before + after
    keep = ~test[:, :, None] & (code[:, :, None] == np.arange(4))
    return keep.reshape(folds.n_splits, -1).astype(np.float64)


def _range_sums(centred: np.ndarray, folds: CPCVFolds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bar count, sum and sum of squares of ``centred`` over each group's four training ranges
    (:meth:`CPCVFolds.train_ranges`); shapes (n_groups, 4), (n_groups, 4, n_trials) twice.

    One pass: the sums between consecutive range ends (``np.add.reduceat``), then their prefix sums
    at those ends only.
    """
    ranges = folds.train_ranges().reshape(folds.n_groups, 4, 2)
    ends = np.unique(np.concatenate([ranges.ravel(), [0, len(centred)]]))
    at = np.searchsorted(ends, ranges)  # where each range's start and stop sit among the ends
    out = []
    for x in (centred, centred**2):
        segments = np.add.reduceat(x, ends[:-1], axis=0)  # ends strictly increase: no empty segment
        prefix = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(segments, axis=0)])
        out.append(prefix[at[:, :, 1]] - prefix[at[:, :, 0]])
    return (ranges[:, :, 1] - ranges[:, :, 0]).astype(np.float64), out[0], out[1]


def _sharpe(
    total: np.ndarray, total_sq: np.ndarray, n: np.ndarray | int, centre: np.ndarray
) -> np.ndarray:
    """Per-period Sharpe ratio from sums of centred returns (``r - centre``) over ``n`` bars."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        var = np.maximum(total_sq - n * mean**2, 0.0) / (n - 1)
        return np.where((var > 0) & (n >= 2), (mean + centre) / np.sqrt(var), np.nan)
