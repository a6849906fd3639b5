"""Deflated Sharpe Ratio (the 2014 paper's worked example), PBO by CSCV on constructed cases, and
walk-forward tuning."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from backtest.sweep.overfit import (
    deflated_sharpe_of_best,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratio,
    sweep_statistics,
    walk_forward_tuning,
)


def test_dsr_reproduces_the_worked_example_of_bailey_and_lopez_de_prado_2014():
    """Annual SR 2.5 over 5 years of daily returns (T = 1250, 250 a year), best of N = 100 trials
    whose annual SRs have variance 1/2, skewness -3, kurtosis 10: SR0 = 0.1132, DSR = 0.9004."""
    d = deflated_sharpe_ratio(
        2.5 / math.sqrt(250), n_trials=100, variance=0.5 / 250, n_obs=1250, skew=-3.0, kurtosis=10.0
    )
    assert d.benchmark == pytest.approx(0.1132, abs=5e-5)
    assert d.dsr == pytest.approx(0.9004, abs=5e-5)
    sr, sr0 = d.annual(250)
    assert sr == pytest.approx(2.5) and sr0 == pytest.approx(0.1132 * math.sqrt(250), abs=1e-3)


def test_dsr_of_one_trial_is_the_probabilistic_sharpe_ratio_against_zero():
    d = deflated_sharpe_ratio(0.05, n_trials=1, variance=0.0, n_obs=500)
    assert d.benchmark == 0.0
    assert d.dsr == pytest.approx(probabilistic_sharpe_ratio(0.05, 0.0, 500))
    # normal returns: PSR = Phi(SR sqrt(T - 1) / sqrt(1 + SR^2 / 2))
    from scipy.stats import norm

    assert d.dsr == pytest.approx(
        norm.cdf(0.05 * math.sqrt(499) / math.sqrt(1 + 0.05**2 / 2)), rel=1e-12
    )


def test_expected_max_sharpe_grows_with_trials_like_the_max_of_normals():
    rng = np.random.default_rng(0)
    simulated = rng.standard_normal((20_000, 50)).max(axis=1).mean()
    assert expected_max_sharpe(50, 1.0) == pytest.approx(simulated, rel=0.02)
    assert (
        expected_max_sharpe(10, 1.0)
        < expected_max_sharpe(100, 1.0)
        < expected_max_sharpe(1000, 1.0)
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: expected_max_sharpe(0, 1.0), r"`n_trials` must be >= 1; got 0"),
        (
            lambda: expected_max_sharpe(5, -1.0),
            r"`variance` of the trials' Sharpe ratios must be >= 0; got -1.0",
        ),
        (lambda: probabilistic_sharpe_ratio(0.1, 0.0, 1), r"`n_obs` must be >= 2 returns; got 1"),
        (
            lambda: probabilistic_sharpe_ratio(2.0, 0.0, 100, skew=5.0, kurtosis=1.0),
            r"variance term is not positive",
        ),
        (
            lambda: probability_of_backtest_overfitting(np.zeros((100, 3)), n_splits=5),
            r"`n_splits` must be an even number",
        ),
        (
            lambda: probability_of_backtest_overfitting(np.zeros((100, 1))),
            r"\(n_obs >= 4, n_trials >= 2\) matrix",
        ),
        (
            lambda: probability_of_backtest_overfitting(np.full((100, 3), np.nan)),
            r"`returns` must be finite",
        ),
    ],
)
def test_errors_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_best_of_noise_is_deflated_and_a_real_edge_is_not():
    rng = np.random.default_rng(3)
    noise = pd.DataFrame(rng.normal(0, 0.01, size=(1000, 40)))
    _, lucky = deflated_sharpe_of_best(noise)
    # undeflated, the luckiest column looks significant; deflated for 40 trials it does not
    assert (
        probabilistic_sharpe_ratio(lucky.sharpe, 0.0, lucky.n_obs, lucky.skew, lucky.kurtosis)
        > 0.95
    )
    assert lucky.dsr < 0.6 and lucky.n_trials == 40
    edge = noise.copy()
    edge[7] += 0.003  # per-period Sharpe about 0.3
    best, real = deflated_sharpe_of_best(edge)
    assert best == "7" and real.dsr > 0.99


def _pbo_slow(values: np.ndarray, n_splits: int) -> float:
    """The paper's algorithm, literally: every half of the blocks in sample, the rest out of sample."""
    n_obs, n = values.shape
    size = n_obs // n_splits
    blocks = np.split(values[n_obs - size * n_splits :], n_splits)
    below = []
    for chosen in combinations(range(n_splits), n_splits // 2):
        train = np.vstack([blocks[i] for i in chosen])
        test = np.vstack([blocks[i] for i in range(n_splits) if i not in chosen])
        star = int(np.argmax(train.mean(axis=0) / train.std(axis=0, ddof=1)))
        oos = test.mean(axis=0) / test.std(axis=0, ddof=1)
        rank = int((oos < oos[star]).sum()) + 1
        w = rank / (n + 1)
        below.append(math.log(w / (1 - w)) <= 0)
    return float(np.mean(below))


def test_pbo_equals_the_literal_cscv_algorithm():
    rng = np.random.default_rng(5)
    values = rng.normal(0.0002, 0.01, size=(803, 12))
    assert probability_of_backtest_overfitting(values, n_splits=8).pbo == _pbo_slow(values, 8)


def test_pbo_of_pure_noise_is_near_one_half():
    pbos = [
        probability_of_backtest_overfitting(
            np.random.default_rng(seed).normal(0, 0.01, size=(1600, 30)), n_splits=10
        ).pbo
        for seed in range(12)
    ]
    assert 0.38 < float(np.mean(pbos)) < 0.62


def test_pbo_of_one_strategy_with_a_real_edge_is_low():
    rng = np.random.default_rng(8)
    values = rng.normal(0, 0.01, size=(1600, 30))
    values[:, 11] += 0.002  # per-period Sharpe 0.2 against noise
    result = probability_of_backtest_overfitting(values, n_splits=16)
    assert result.pbo < 0.05 and result.prob_oos_loss < 0.05
    assert result.n_combinations == 12870 and result.logits.shape == (12870,)


def test_walk_forward_tuning_follows_a_regime_switch_and_stitches_oos_returns():
    """Column a is best for the first 600 bars, column b after: tuning switches to b one test window
    after the switch; the stitched returns are the chosen columns' returns."""
    rng = np.random.default_rng(1)
    idx = pd.date_range("2020-01-01", periods=1200, freq="D", tz="UTC")
    data = pd.DataFrame(rng.normal(0, 0.01, size=(1200, 3)), index=idx, columns=["a", "b", "c"])
    data.iloc[:600, 0] += 0.004
    data.iloc[600:, 1] += 0.004
    wf = walk_forward_tuning(data, train_bars=100, test_bars=100, periods_per_year=365)
    # test windows start at 100, 200, ..., 1100; the one at 700 is the first trained after the switch
    assert list(wf.windows["chosen"]) == ["a"] * 6 + ["b"] * 5
    chosen = np.repeat(wf.windows["chosen"].to_numpy(), 100)
    expected = [data.iloc[100 + i][c] for i, c in enumerate(chosen)]
    np.testing.assert_array_equal(wf.oos_returns.to_numpy(), expected)
    assert wf.oos_sharpe == pytest.approx(
        float(sharpe_ratio(np.asarray(expected))) * math.sqrt(365)
    )
    assert wf.hindsight in ("a", "b") and wf.oos_sharpe > 0


def test_walk_forward_needs_room_for_one_window():
    data = pd.DataFrame(np.zeros((50, 2)), index=pd.date_range("2020", periods=50, tz="UTC"))
    with pytest.raises(
        ValueError, match="50 bars cannot hold a 40-bar training window and a 20-bar test window"
    ):
        walk_forward_tuning(data, train_bars=40, test_bars=20, periods_per_year=365)


def test_sweep_statistics_use_the_common_period():
    rng = np.random.default_rng(2)
    idx = pd.date_range("2020-01-01", periods=900, freq="D", tz="UTC")
    returns = pd.DataFrame(rng.normal(0, 0.01, size=(900, 4)), index=idx, columns=list("wxyz"))
    returns.iloc[:100, 2] = np.nan  # a longer lookback starts later
    stats = sweep_statistics(returns, periods_per_year=365, risk_free_rate=0.0)
    assert stats.n_obs == 800 and stats.start == idx[100]
    assert stats.dsr is not None and stats.pbo is not None and stats.walk_forward is not None
    summary = stats.to_dict(365)
    assert summary["period"]["n_obs"] == 800 and summary["dsr"]["n_trials"] == 4
    assert len(summary["walk_forward"]["windows"]) == len(stats.walk_forward.windows)
    short = sweep_statistics(returns.iloc[:5], periods_per_year=365)
    assert short.dsr is None and "no overfitting statistics" in short.notes[0]
