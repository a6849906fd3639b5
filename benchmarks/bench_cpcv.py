"""Combinatorial purged cross-validation benchmark (issue 20): CPCV of the choice of the best point
of a real 1,000-point sweep (the grid of bench_sweep.py on the 20 longest-history Binance daily pairs;
1,606 bars common to every point), against skfolio's ``CombinatorialPurgedCV`` folds with the
statistic computed split by split in NumPy.

Parity first, per job: the same point chosen on every split, the same rank logits (1e-12) and the same
per-path out-of-sample Sharpe ratios (1e-10 relative). Ours: ``combinatorial_purged_cv`` end to end
(validation, folds, the training Sharpe ratios of every point on every split from per-group sums,
the ranks, the stitched paths). Peer: ``CombinatorialPurgedCV(n_folds, n_test_folds, purged_size,
embargo_size).split`` plus, per split, ``mean / std(ddof=1)`` of every point on the training and the
test rows, the argmax, the rank, and the paths stitched by ``get_path_ids``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sweep import longest_pairs, write_config  # noqa: E402
from common import median_time, row  # noqa: E402

from backtest.sweep import run_sweep  # noqa: E402
from backtest.sweep.cpcv import combinatorial_purged_cv  # noqa: E402
from backtest.sweep.overfit import common_period  # noqa: E402

JOBS = [  # (n_groups, n_test_groups, purge, embargo)
    (6, 2, 5, 5),
    (10, 3, 5, 5),
    (12, 4, 5, 5),
]


def peer_cpcv(values: np.ndarray, n_groups: int, n_test: int, purge: int, embargo: int):
    """skfolio's folds, the statistic split by split: (chosen, logits, path Sharpe ratios)."""
    from skfolio.model_selection import CombinatorialPurgedCV

    cv = CombinatorialPurgedCV(
        n_folds=n_groups, n_test_folds=n_test, purged_size=purge, embargo_size=embargo
    )

    def sharpe(r: np.ndarray) -> np.ndarray:
        sd = r.std(axis=0, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sd > 0, r.mean(axis=0) / sd, np.nan)

    path_ids = cv.get_path_ids()
    chosen, logits = [], []
    paths = np.empty((len(values), cv.n_test_paths))
    for i, (train, tests) in enumerate(cv.split(values)):
        star = int(np.nanargmax(sharpe(values[train])))
        oos = sharpe(values[np.concatenate(tests)])
        rank = int((np.nan_to_num(oos, nan=-np.inf) < oos[star]).sum()) + 1
        w = rank / (values.shape[1] + 1)
        chosen.append(star)
        logits.append(np.log(w / (1 - w)))
        for test, path in zip(tests, path_ids[i], strict=True):
            paths[test, path] = values[test, star]
    return np.array(chosen), np.array(logits), sharpe(paths)


def _sweep_returns() -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), longest_pairs(20))
        result = run_sweep(config, Path(tmp) / "out", jobs=2)
    return common_period(result.returns).to_numpy()


def main() -> list[dict]:
    values = _sweep_returns()
    n_bars, n_points = values.shape
    rows = []
    for n_groups, n_test, purge, embargo in JOBS:
        kw = {"n_groups": n_groups, "n_test_groups": n_test, "purge": purge, "embargo": embargo}
        ours = combinatorial_purged_cv(values, **kw)
        chosen, logits, path_sr = peer_cpcv(values, n_groups, n_test, purge, embargo)
        np.testing.assert_array_equal(ours.chosen, chosen)
        np.testing.assert_allclose(ours.logits, logits, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours.path_sharpe, path_sr, rtol=1e-10, atol=0)
        f = ours.folds
        ours_s = median_time(lambda kw=kw: combinatorial_purged_cv(values, **kw), repeats=7)
        peer_s = median_time(
            lambda a=(n_groups, n_test, purge, embargo): peer_cpcv(values, *a),
            repeats=3 if f.n_splits > 100 else 5,
        )
        rows.append(
            row(
                f"CPCV N={n_groups} k={n_test} ({f.n_splits} splits, {f.n_paths} paths), "
                f"{n_points} points x {n_bars} bars",
                ours_s,
                "skfolio CombinatorialPurgedCV + NumPy",
                peer_s,
                note="parity: same choices, path Sharpe 1e-10",
            )
        )
    return rows


if __name__ == "__main__":
    main()
