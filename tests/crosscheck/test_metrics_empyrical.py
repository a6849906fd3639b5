"""reports.metrics against empyrical-reloaded, configured identically (annualization = periods_per_year,
risk-free rate de-annualised the same way). Differences of definition are asserted, not skipped; they
are documented in docs/metrics.md."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reports.metrics import compute_metrics, monthly_returns, periodic_risk_free
from tests.reports.inputs import random_curves

ep = pytest.importorskip(
    "empyrical", reason="empyrical-reloaded is a dev dependency (pip install -e '.[dev]')"
)

PPY = 365.0
RF = 0.02


@pytest.fixture(params=[0, 1, 2], ids=lambda s: f"seed{s}")
def curves(request):
    return random_curves(request.param)


def _check_against_empyrical(equity: pd.Series, benchmark: pd.Series, ppy: float) -> None:
    m = compute_metrics(equity, periods_per_year=ppy, risk_free_rate=RF, benchmark=benchmark)
    r = equity.pct_change().dropna()
    rb = benchmark.pct_change().dropna()
    rf_p = periodic_risk_free(RF, ppy)
    assert m["total_return"] == pytest.approx(ep.cum_returns_final(r), rel=1e-10)
    assert m["cagr"] == pytest.approx(ep.annual_return(r, annualization=ppy), rel=1e-10)
    assert m["volatility"] == pytest.approx(ep.annual_volatility(r, annualization=ppy), rel=1e-10)
    assert m["sharpe"] == pytest.approx(
        ep.sharpe_ratio(r, risk_free=rf_p, annualization=ppy), rel=1e-10
    )
    assert m["sortino"] == pytest.approx(
        ep.sortino_ratio(r, required_return=rf_p, annualization=ppy), rel=1e-10
    )
    assert m["max_drawdown"] == pytest.approx(ep.max_drawdown(r), rel=1e-10)
    assert m["calmar"] == pytest.approx(ep.calmar_ratio(r, annualization=ppy), rel=1e-10)
    assert m["var_95"] == pytest.approx(ep.value_at_risk(r, cutoff=0.05), rel=1e-10)
    assert m["cvar_95"] == pytest.approx(ep.conditional_value_at_risk(r, cutoff=0.05), rel=1e-10)
    assert m["beta"] == pytest.approx(ep.beta(r, rb), rel=1e-8)
    # empyrical's excess_sharpe is the per-period information ratio; ours is annualised.
    assert m["information_ratio"] == pytest.approx(
        ep.excess_sharpe(r, rb) * math.sqrt(ppy), rel=1e-10
    )


def test_metrics_match_empyrical_on_random_walks(curves):
    _check_against_empyrical(*curves, PPY)


def test_metrics_match_empyrical_hourly_annualisation():
    equity, bench = random_curves(7, n=2000)
    hourly = pd.date_range("2022-01-01", periods=len(equity), freq="h", tz="UTC")
    _check_against_empyrical(equity.set_axis(hourly), bench.set_axis(hourly), 8760.0)


@pytest.mark.shared
def test_metrics_match_empyrical_on_real_binance_daily(daily_market):
    close = daily_market.close
    btc = close["BTC/USDT"] / close["BTC/USDT"].iloc[0] * 1e5
    basket = (close / close.iloc[0]).mean(axis=1) * 1e5  # buy-and-hold equal-weight basket
    _check_against_empyrical(basket, btc, PPY)


def test_monthly_returns_match_empyrical_aggregate(curves):
    equity, _ = curves
    ours = monthly_returns(equity).stack().dropna()
    theirs = ep.aggregate_returns(equity.pct_change().dropna(), "monthly")
    # empyrical compounds the returns that *end* in each month, so its first month lacks the return
    # of the very first bar: we measure it from E_0, which is the same here because E_0 opens January.
    assert ours.to_numpy() == pytest.approx(theirs.to_numpy(), rel=1e-10)


def test_sortino_target_is_the_risk_free_rate_not_zero(curves):
    """empyrical's default required_return is 0; ours is the risk-free rate. They differ by design."""
    equity, _ = curves
    r = equity.pct_change().dropna()
    m = compute_metrics(equity, periods_per_year=PPY, risk_free_rate=RF)
    assert m["sortino"] != pytest.approx(ep.sortino_ratio(r, annualization=PPY), rel=1e-6)
    assert compute_metrics(equity, periods_per_year=PPY, risk_free_rate=0.0)[
        "sortino"
    ] == pytest.approx(ep.sortino_ratio(r, annualization=PPY), rel=1e-10)
