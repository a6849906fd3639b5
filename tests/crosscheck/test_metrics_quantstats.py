"""reports.metrics against quantstats (periods passed explicitly; quantstats wants tz-naive indexes).

Where quantstats defines a metric differently (parametric VaR, unannualised information ratio, drawdown
length counted from the first underwater day) the relation is asserted; see docs/metrics.md."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from reports.metrics import compute_metrics, drawdown_durations, rolling_sharpe, rolling_volatility
from tests.reports.inputs import random_curves

qs = pytest.importorskip(
    "quantstats", reason="quantstats is a dev dependency (pip install -e '.[dev]')"
)

PPY = 365
RF = 0.02


def _naive_returns(equity: pd.Series) -> pd.Series:
    return equity.pct_change().dropna().tz_localize(None)


@pytest.fixture(params=[3, 4], ids=lambda s: f"seed{s}")
def curves(request):
    return random_curves(request.param, 800, beta=0.5, start="2019-06-01", start_value=5e4)


def test_metrics_match_quantstats(curves):
    equity, bench = curves
    m = compute_metrics(equity, periods_per_year=PPY, risk_free_rate=RF, benchmark=bench)
    r, rb = _naive_returns(equity), _naive_returns(bench)
    assert m["sharpe"] == pytest.approx(qs.stats.sharpe(r, rf=RF, periods=PPY), rel=1e-10)
    assert m["sortino"] == pytest.approx(qs.stats.sortino(r, rf=RF, periods=PPY), rel=1e-10)
    assert m["volatility"] == pytest.approx(qs.stats.volatility(r, periods=PPY), rel=1e-10)
    assert m["cagr"] == pytest.approx(qs.stats.cagr(r, periods=PPY), rel=1e-10)
    assert m["max_drawdown"] == pytest.approx(qs.stats.max_drawdown(r), rel=1e-10)
    assert m["calmar"] == pytest.approx(qs.stats.calmar(r, periods=PPY), rel=1e-10)
    assert m["hit_rate"] == pytest.approx(qs.stats.win_rate(r), rel=1e-12)
    assert m["best_period"] == pytest.approx(qs.stats.best(r)) and m[
        "worst_period"
    ] == pytest.approx(qs.stats.worst(r))
    assert m["cvar_95"] == pytest.approx(
        qs.stats.conditional_value_at_risk(r, confidence=0.95, method="historical"), rel=1e-10
    )
    # quantstats' information ratio is per period; ours is annualised by sqrt(ppy).
    assert m["information_ratio"] == pytest.approx(
        qs.stats.information_ratio(r, rb) * math.sqrt(PPY), rel=1e-10
    )


def test_var_differs_by_design_parametric_vs_historical(curves):
    equity, _ = curves
    r = _naive_returns(equity)
    ours = compute_metrics(equity, periods_per_year=PPY)["var_95"]
    assert ours == pytest.approx(np.percentile(r, 5), rel=1e-12)  # historical
    from scipy.stats import norm

    assert qs.stats.value_at_risk(r) == pytest.approx(norm.ppf(0.05, r.mean(), r.std()), rel=1e-10)


def test_rolling_helpers_match_quantstats(curves):
    equity, _ = curves
    r = _naive_returns(equity)
    ours = rolling_sharpe(equity, 60, periods_per_year=PPY, risk_free_rate=RF)
    theirs = qs.stats.rolling_sharpe(r, rf=RF, rolling_period=60, periods_per_year=PPY)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-9, equal_nan=True)
    vol = rolling_volatility(equity, 60, periods_per_year=PPY)
    np.testing.assert_allclose(
        vol.to_numpy(),
        qs.stats.rolling_volatility(r, 60, PPY).to_numpy(),
        rtol=1e-10,
        equal_nan=True,
    )


def test_drawdown_length_relation_to_quantstats(curves):
    """quantstats counts days from the first underwater day to the last one, inclusive; we count from
    the peak to the recovery bar. For a recovered daily spell ours = theirs + 1; unrecovered: equal."""
    equity, _ = curves
    spells = drawdown_durations(equity.to_numpy(), pd.DatetimeIndex(equity.index))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        details = qs.stats.drawdown_details(qs.stats.to_drawdown_series(_naive_returns(equity)))
    assert len(details) == len(spells)
    expected = spells["days"].to_numpy() - spells["recovered"].to_numpy().astype(float)
    np.testing.assert_array_equal(details["days"].to_numpy(dtype=float), expected)
