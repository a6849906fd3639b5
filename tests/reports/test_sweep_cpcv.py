"""The CPCV part of the sweep report, built from plain dicts (as ``overfit.json`` holds them)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports.sweep import read_cpcv, signed, write_sweep_report


def _cpcv(paths, pbo=0.2, median=None):
    paths = list(paths)
    return {
        "groups": 6,
        "test_groups": 2,
        "purge": 3,
        "embargo": 1,
        "n_splits": 15,
        "n_paths": len(paths),
        "path_sharpe_annual": paths,
        "median_sharpe_annual": float(np.median(paths)) if median is None else median,
        "quantiles_annual": {
            f"{q:g}": float(np.quantile(paths, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)
        },
        "share_negative": float(np.mean(np.array(paths) < 0)),
        "pbo": pbo,
        "prob_oos_loss": 0.3,
        "median_is_sharpe_annual": 1.4,
        "n_chosen": 2,
        "most_chosen": "abc123",
        "most_chosen_share": 0.8,
    }


@pytest.mark.parametrize(
    ("paths", "phrase"),
    [
        ([0.5, 0.7, 0.9, 1.1, 0.6], "Every path kept a positive Sharpe ratio out of sample"),
        ([0.5, -0.2, 0.9, 1.1, 0.6], "not on every path: fragile"),
        ([-0.5, -0.2, 0.1, -1.1, 0.6], "shows no out-of-sample edge"),
    ],
)
def test_cpcv_reading(paths, phrase):
    text = read_cpcv(_cpcv(paths))
    assert phrase in text
    assert text.startswith(
        "15 splits of the history into 6 groups (2 tested at a time; training drops 3 bars on "
        "each side of a test block and 1 more after it) recombine into 5 out-of-sample paths"
    )
    assert f"{sum(p < 0 for p in paths)} of 5 paths lost money" in text
    assert "(in sample: 1.40)" in text and "On 20% of the splits the chosen point ranked" in text


def test_the_median_prints_with_the_sign_the_verdict_uses():
    assert signed(0.004) == "0.004" and signed(0.25) == "0.25" and signed(-0.004) == "-0.00"
    assert signed(float("nan")) == "n/a"
    text = read_cpcv(_cpcv([0.004, 0.003, 0.005], median=0.004))
    assert "median annualised Sharpe ratio is 0.004" in text and "holds up" in text
    nan_path = {**_cpcv([0.2, 0.1, -0.3]), "path_sharpe_annual": [None, 0.1, -0.3]}
    nan_path["median_sharpe_annual"] = None  # NaN is written to overfit.json as null
    text = read_cpcv(nan_path)
    assert "median annualised Sharpe ratio is n/a" in text and "no out-of-sample edge" in text


def test_report_shows_cpcv_beside_dsr_and_pbo(tmp_path):
    table = pd.DataFrame(
        {
            "point_id": ["abc123", "def456"],
            "strategy.lookback_days": [30, 60],
            "rebalance.every": ["1W", "1W"],
            "sharpe": [0.5, 0.3],
            "max_drawdown": [-0.2, -0.3],
            "error": ["", ""],
        }
    )
    idx = pd.date_range("2021-01-01", periods=50, freq="D", tz="UTC")
    equity = {f"path {i}": pd.Series(1.0 + 0.001 * i * np.arange(50), index=idx) for i in (1, 2)}
    stats = {"period": {"n_obs": 50, "start": "2021-01-01", "end": "2021-02-19"}}
    stats["cpcv"] = _cpcv([0.5, -0.2, 0.9, 1.1, 0.6])
    path = write_sweep_report(
        tmp_path,
        table,
        x="strategy.lookback_days",
        y="rebalance.every",
        statistics=stats,
        labels={"abc123": "lookback=30"},
        cpcv_equity=equity,
    )
    html = path.read_text()
    assert 'id="cpcv-reading"' in html and 'data-key="cpcv"' in html
    assert '0.60</div><div class="l">median out-of-sample Sharpe (ann.), 5 paths' in html
    assert "1 of 5</div>" in html and "PBO on the 15 CPCV splits" in html
    assert "the most frequent, lookback=30, in 80% of them" in html
    assert "Sharpe ratio (ann.) of each path: 0.50, -0.20, 0.90, 1.10, 0.60." in html
    without = write_sweep_report(
        tmp_path / "plain", table, x="strategy.lookback_days", y="rebalance.every"
    )
    assert "cpcv" not in without.read_text().lower()
