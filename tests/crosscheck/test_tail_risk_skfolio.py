"""Minimum CVaR and minimum CDaR against skfolio's ``MeanRisk`` on windows of the real Binance
daily data.

skfolio is configured like ours: ``MINIMIZE_RISK`` with ``RiskMeasure.CVAR`` / ``CDAR`` at the
same ``beta``, equally weighted observations, the same bounds (``min_weights``, ``max_weights``),
budget 1, the group cap as ``left_inequality @ w <= right_inequality``; skfolio's CDaR is on the
uncompounded cumulative returns with the peak starting at 0 (``get_drawdowns(compounded=False)``),
as ours. Both weight vectors are scored by one formula, skfolio's ``measures.cvar`` and
``measures.cdar(get_drawdowns(...))``: ours must not be worse and must be within 1e-7. Clarabel
runs at 1e-10 tolerances (its defaults leave it up to 4e-9 above the optimum).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from strategies import MinCDaR, MinCVaR

pytest.importorskip("skfolio")
from skfolio import RiskMeasure
from skfolio.measures import cdar, cvar, get_drawdowns
from skfolio.optimization import MeanRisk, ObjectiveFunction

pytestmark = pytest.mark.shared

TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
OURS = {"cvar": MinCVaR, "cdar": MinCDaR}
MEASURE = {"cvar": RiskMeasure.CVAR, "cdar": RiskMeasure.CDAR}


@pytest.fixture(scope="module")
def daily_returns(daily_market):
    return daily_market.close.pct_change()


def window(daily_returns, end, n_obs, n_assets=20):
    frame = daily_returns.iloc[end - n_obs + 1 : end + 1].dropna(axis=1)
    assert frame.shape[1] >= n_assets
    return frame.iloc[:, :n_assets].to_numpy()


def score(measure, returns, weights, beta):
    """skfolio's own measure of a weight vector: the one formula both sides are judged by."""
    path = returns @ weights
    return cvar(path, beta) if measure == "cvar" else cdar(get_drawdowns(path), beta)


def skfolio_weights(measure, returns, beta, lo, hi, G=None, h=None):
    model = MeanRisk(
        objective_function=ObjectiveFunction.MINIMIZE_RISK,
        risk_measure=MEASURE[measure],
        cvar_beta=beta,
        cdar_beta=beta,
        min_weights=lo,
        max_weights=hi,
        left_inequality=G,
        right_inequality=h,
        solver_params=TIGHT,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Solution may be inaccurate" at 1e-10: checked below
        return model.fit(returns).weights_


@pytest.mark.parametrize("measure", ["cvar", "cdar"])
@pytest.mark.parametrize("end", [300, 700, 1100])
@pytest.mark.parametrize("n_obs", [90, 200])
@pytest.mark.parametrize(
    ("lo", "hi", "beta"), [(0.0, 1.0, 0.95), (0.01, 0.15, 0.95), (0.0, 0.2, 0.9)]
)
def test_reaches_skfolios_tail_risk_with_bounds(daily_returns, measure, end, n_obs, lo, hi, beta):
    returns = window(daily_returns, end, n_obs)
    got = OURS[measure](beta=beta).allocate_detailed(returns, {"min_weight": lo, "max_weight": hi})
    assert got.method == f"min_{measure}" and got.extras["solver"] == "simplex", got.notes
    w = got.weights
    assert abs(w.sum() - 1) <= 1e-12 and w.min() >= lo and w.max() <= hi
    peer = skfolio_weights(measure, returns, beta, lo, hi)
    ours, theirs = score(measure, returns, w, beta), score(measure, returns, peer, beta)
    assert ours <= theirs + 1e-12, (ours, theirs)
    assert theirs - ours <= 1e-7, (ours, theirs)
    assert got.extras[measure] == pytest.approx(ours, abs=1e-15)


@pytest.mark.parametrize("measure", ["cvar", "cdar"])
@pytest.mark.parametrize("end", [300, 700, 1100])
@pytest.mark.parametrize("n_obs", [90, 200])
def test_reaches_skfolios_tail_risk_with_a_binding_group_cap(daily_returns, measure, end, n_obs):
    """The group is the four largest weights of the solution without it, capped at half their
    total: the cap binds."""
    returns = window(daily_returns, end, n_obs)
    n, hi = returns.shape[1], 0.3
    free = OURS[measure]().allocate(returns, {"max_weight": hi})
    members = np.argsort(-free)[:4]
    cap = float(free[members].sum()) / 2
    got = OURS[measure]().allocate(
        returns, {"max_weight": hi, "groups": {"top": (members.tolist(), 0.0, cap)}}
    )
    assert got[members].sum() <= cap + 1e-12
    assert got[members].sum() == pytest.approx(cap, abs=1e-9)  # binding
    G = np.zeros((1, n))
    G[0, members] = 1.0
    peer = skfolio_weights(measure, returns, 0.95, 0.0, hi, G, np.array([cap]))
    assert peer[members].sum() <= cap + 1e-8
    ours, theirs = score(measure, returns, got, 0.95), score(measure, returns, peer, 0.95)
    assert ours <= theirs + 1e-12, (ours, theirs)
    assert theirs - ours <= 1e-7, (ours, theirs)
    assert ours >= score(measure, returns, free, 0.95) - 1e-12  # the cap costs risk, never saves it


@pytest.mark.parametrize("measure", ["cvar", "cdar"])
def test_target_return_matches_skfolios_min_return(daily_returns, measure):
    """``target_return`` (annualised, 365 bars) against skfolio's ``min_return`` (per bar)."""
    returns = window(daily_returns, 1000, 200)
    mean = returns.mean(axis=0)
    free = OURS[measure]().allocate(returns, {"max_weight": 0.5})
    best = np.sort(mean)[-2:].sum() / 2  # the highest mean return at max_weight 0.5
    target = (mean @ free + 0.5 * (best - mean @ free)) * 365  # halfway: reachable and binding
    got = OURS[measure](target_return=target).allocate_detailed(returns, {"max_weight": 0.5})
    assert mean @ got.weights * 365 == pytest.approx(target, abs=1e-10)
    assert got.extras["expected_return"] == pytest.approx(mean @ got.weights * 365, rel=1e-12)
    model = MeanRisk(
        objective_function=ObjectiveFunction.MINIMIZE_RISK,
        risk_measure=MEASURE[measure],
        max_weights=0.5,
        min_return=target / 365,
        solver_params=TIGHT,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = model.fit(returns).weights_
    ours, theirs = score(measure, returns, got.weights, 0.95), score(measure, returns, peer, 0.95)
    assert ours <= theirs + 1e-12 and theirs - ours <= 1e-7, (ours, theirs)
