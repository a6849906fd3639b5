"""Black-Litterman against PyPortfolioOpt's ``BlackLittermanModel`` on windows of the real Binance
daily data.

PyPortfolioOpt is configured like ours: the same annualised sample covariance
(``risk_models.sample_cov(returns_data=True, frequency=365)``), the same ``tau``, views as
``absolute_views`` or ``(P, Q)``, ``omega="default"`` or ``"idzorek"`` with the same confidences,
and the prior given as returns (``pi=``), implied by weights (``market_implied_prior_returns(w,
delta, S, risk_free_rate)``; our ``prior="equal"`` is that with equal weights, not PyPortfolioOpt's
``pi="equal"``, which is ``1/n`` for every asset), or zero (``pi=None``). The max-Sharpe step runs
PyPortfolioOpt's cvxpy back end with Clarabel at 1e-10 (see test_allocators_pypfopt.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from strategies import BlackLittermanStrategy

pytest.importorskip("pypfopt")
from pypfopt import EfficientFrontier, risk_models
from pypfopt.black_litterman import (
    BlackLittermanModel,
    market_implied_prior_returns,
)

pytestmark = pytest.mark.shared

SYMBOLS = [
    "BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT", "LINK/USDT", "LTC/USDT",
    "TRX/USDT", "ATOM/USDT", "XLM/USDT", "ETC/USDT", "BCH/USDT",
]  # fmt: skip
WINDOWS = [("2020-01-01", "2020-03-31"), ("2021-01-01", "2021-06-30"), ("2022-06-01", "2022-12-31")]
ABSOLUTE = {"BTC/USDT": 0.30, "ETH/USDT": 0.45, "XRP/USDT": -0.10}
RELATIVE = {
    "ETH/USDT - BTC/USDT": 0.05,
    "0.5*LINK/USDT + 0.5*ATOM/USDT - BNB/USDT": -0.02,
    "ADA/USDT": 0.6,
}
CONFIDENCES = {"absolute": [0.8, 0.3, 0.55], "relative": [0.5, 1.0, 0.0]}
TAU = 0.05
DELTA = 2.5
RF = 0.02
TIGHT = {
    "solver": "CLARABEL",
    "solver_options": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
}
#: Market-cap-like weights (positive, unnormalised) for the implied prior.
CAPS = dict(zip(SYMBOLS, [800.0, 350.0, 50, 30, 15, 8, 9, 6, 4, 5, 4, 7], strict=True))


@pytest.fixture(scope="module", params=WINDOWS, ids=[w[1] for w in WINDOWS])
def frame(request, daily_csv):
    from datasets import load_csv

    start, end = request.param
    market = load_csv(daily_csv, symbols=SYMBOLS, start=start, end=end)
    returns = market.close.pct_change().iloc[1:]
    assert returns.notna().all().all() and len(returns) >= 89
    return returns


def peer_views(kind: str, columns) -> dict:
    """The views as PyPortfolioOpt takes them: ``absolute_views`` or ``(P, Q)``."""
    if kind == "absolute":
        return {"absolute_views": ABSOLUTE}
    index = {s: j for j, s in enumerate(columns)}
    P = np.zeros((3, len(columns)))
    P[0, [index["ETH/USDT"], index["BTC/USDT"]]] = [1, -1]
    P[1, [index["LINK/USDT"], index["ATOM/USDT"], index["BNB/USDT"]]] = [0.5, 0.5, -1]
    P[2, index["ADA/USDT"]] = 1
    return {"P": P, "Q": np.array(list(RELATIVE.values()))}


def peer_prior(prior: str, cov: pd.DataFrame):
    if prior == "returns":
        return pd.Series(np.linspace(-0.2, 0.9, len(cov)), index=cov.index)
    if prior == "weights":
        return market_implied_prior_returns(pd.Series(CAPS), DELTA, cov, RF)
    if prior == "equal":
        return market_implied_prior_returns(pd.Series(1.0, index=cov.index), DELTA, cov, RF)
    return None  # zero


def ours_prior(prior: str, cov: pd.DataFrame) -> dict:
    if prior == "returns":
        return {"prior_returns": dict(peer_prior("returns", cov).items())}
    if prior == "weights":
        return {"prior_weights": CAPS}
    return {"prior": prior}


def models(frame, kind, omega, prior):
    cov = risk_models.sample_cov(frame, returns_data=True, frequency=365)
    views = ABSOLUTE if kind == "absolute" else RELATIVE
    conf = CONFIDENCES[kind] if omega == "idzorek" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Running Black-Litterman with no prior."
        peer = BlackLittermanModel(
            cov,
            pi=peer_prior(prior, cov),
            omega=omega,
            view_confidences=conf,
            tau=TAU,
            risk_aversion=DELTA,
            **peer_views(kind, cov.columns),
        )
    ours = BlackLittermanStrategy(
        views=views,
        view_confidences=conf,
        tau=TAU,
        risk_aversion=DELTA,
        risk_free_rate=RF,
        **ours_prior(prior, cov),
    )
    return cov, peer, ours


@pytest.mark.parametrize("kind", ["absolute", "relative"])
@pytest.mark.parametrize("omega", ["default", "idzorek"])
@pytest.mark.parametrize("prior", ["returns", "weights", "equal", "zero"])
def test_posterior_equals_pypfopt(frame, kind, omega, prior):
    cov, peer, ours = models(frame, kind, omega, prior)
    mean, post = ours.posterior(frame, return_cov=True)
    assert list(mean.index) == list(frame.columns)
    np.testing.assert_allclose(mean, peer.bl_returns(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(post, peer.bl_cov(), rtol=0, atol=1e-8)
    # from PyPortfolioOpt's own covariance DataFrame (its columns name the assets)
    from_cov = ours.posterior_from_covariance(cov)
    np.testing.assert_allclose(from_cov, peer.bl_returns(), rtol=0, atol=1e-8)
    # the same from the array API with views by index (resolved once)
    array_mean = ours.for_symbols(SYMBOLS).posterior(frame.to_numpy())
    np.testing.assert_allclose(array_mean, mean.to_numpy(), rtol=0, atol=1e-14)


def test_the_tolerance_is_met_with_room(frame):
    """The agreement is round-off, far inside 1e-8."""
    worst = 0.0
    for kind in ("absolute", "relative"):
        for omega in ("default", "idzorek"):
            _, peer, ours = models(frame, kind, omega, "weights")
            mean, post = ours.posterior(frame, return_cov=True)
            worst = max(
                worst,
                float(np.abs(mean - peer.bl_returns()).max()),
                float(np.abs(post - peer.bl_cov()).to_numpy().max()),
            )
    assert worst < 1e-12, worst


@pytest.mark.parametrize("hi", [1.0, 0.3])
@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_max_sharpe_on_the_posterior_matches_pypfopt(frame, kind, hi):
    """BlackLittermanModel + EfficientFrontier(bl_returns, S).max_sharpe: the same Sharpe ratio
    (1e-6 relative, ours not below) and the same weights (1e-4, Clarabel's accuracy)."""
    cov, peer, ours = models(frame, kind, "idzorek", "weights")
    mu = peer.bl_returns()
    ef = EfficientFrontier(mu, cov, weight_bounds=(0.0, hi), **TIGHT)
    ef.max_sharpe(risk_free_rate=RF)
    theirs = np.array([ef.weights[i] for i in range(len(mu))])
    got = ours.for_symbols(SYMBOLS).allocate_detailed(frame.to_numpy(), {"max_weight": hi})
    assert got.method == "max_sharpe" and not got.notes, got.notes
    w, m, S = got.weights, mu.to_numpy(), cov.to_numpy()

    def sharpe(x):
        return (x @ m - RF) / np.sqrt(x @ S @ x)

    assert sharpe(w) >= sharpe(theirs) - 1e-6 * abs(sharpe(theirs))
    assert abs(sharpe(w) - sharpe(theirs)) <= 1e-6 * abs(sharpe(theirs))
    np.testing.assert_allclose(w, theirs, atol=1e-4)
    assert w.max() <= hi and abs(w.sum() - 1) <= 1e-12
    np.testing.assert_allclose(got.extras["expected_returns"], m, rtol=0, atol=1e-8)
