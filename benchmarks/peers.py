"""The peer routes the benchmarks time: peer allocators at each decision bar, then vectorbt.

Each peer is configured as ours: sample covariance (ddof=1), Pearson correlation distance, the same
linkage with no optimal leaf ordering, the same window and point-in-time universe rule, and vectorbt
``from_orders(size_type="targetpercent", cash_sharing=True, group_by=True, call_seq="auto")``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd


def skfolio_hrp(returns: np.ndarray) -> np.ndarray:
    """skfolio HRP: sample covariance, Pearson distance, single linkage, no optimal leaf ordering."""
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.distance import PearsonDistance
    from skfolio.measures import RiskMeasure
    from skfolio.moments import EmpiricalCovariance
    from skfolio.optimization import HierarchicalRiskParity
    from skfolio.prior import EmpiricalPrior
    from skfolio.seriation import HierarchicalSeriation

    clustering = HierarchicalClustering(linkage_method=LinkageMethod.SINGLE)
    model = HierarchicalRiskParity(
        risk_measure=RiskMeasure.VARIANCE,
        distance_estimator=PearsonDistance(),
        prior_estimator=EmpiricalPrior(covariance_estimator=EmpiricalCovariance()),
        seriation_estimator=HierarchicalSeriation(
            hierarchical_clustering_estimator=clustering, optimal_ordering=False
        ),
    )
    return model.fit(returns).weights_


def pypfopt_hrp(returns: np.ndarray) -> np.ndarray:
    """PyPortfolioOpt ``HRPOpt`` with single linkage."""
    from pypfopt import HRPOpt

    frame = pd.DataFrame(returns)
    weights = HRPOpt(frame).optimize(linkage_method="single")
    return np.array([weights[c] for c in frame.columns])


def pypfopt_max_sharpe(returns: np.ndarray) -> np.ndarray:
    """PyPortfolioOpt max Sharpe (365-day annualisation, rf 2%), min volatility when no asset
    beats the risk-free rate (as our fallback)."""
    from pypfopt import EfficientFrontier

    mu = returns.mean(axis=0) * 365
    cov = np.cov(returns, rowvar=False, ddof=1) * 365
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Solution may be inaccurate" on near-degenerate windows
        ef = EfficientFrontier(mu, cov, weight_bounds=(0, 1))
        try:
            ef.max_sharpe(risk_free_rate=0.02)
        except (
            Exception
        ):  # no asset above the risk-free rate: ours falls back to min volatility too
            ef = EfficientFrontier(mu, cov, weight_bounds=(0, 1))
            ef.min_volatility()
    return np.array([ef.weights[i] for i in range(len(mu))])


def numpy_inverse_vol(returns: np.ndarray) -> np.ndarray:
    inv = 1.0 / returns.std(axis=0, ddof=1)
    return inv / inv.sum()


PEERS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "hrp": ("skfolio HRP", skfolio_hrp),
    "max_sharpe": ("PyPortfolioOpt max Sharpe", pypfopt_max_sharpe),
    "inverse_volatility": ("NumPy inverse vol", numpy_inverse_vol),
}


def peer_walk_forward(
    market,
    bars: np.ndarray,
    lookback: int,
    allocate: Callable[[np.ndarray], np.ndarray],
    fee: float,
    slippage: float,
    cash: float,
) -> pd.Series:
    """A Python loop calling ``allocate`` at each decision bar (orders at that bar's close), then
    vectorbt ``from_orders``; returns the equity from the first decision on."""
    import vectorbt as vbt

    close = market.values("close")
    targets = np.full(close.shape, np.nan)
    for t in bars:
        window = close[t - lookback : t + 1]
        members = np.flatnonzero(np.isfinite(window).all(axis=0))
        sub = window[:, members]
        w = np.zeros(close.shape[1])
        w[members] = allocate(sub[1:] / sub[:-1] - 1.0)
        targets[t] = w
    close_df = market.close
    size = pd.DataFrame(targets, index=close_df.index, columns=close_df.columns).where(
        close_df.notna()
    )
    pf = vbt.Portfolio.from_orders(
        close_df,
        size=size,
        size_type="targetpercent",
        fees=fee,
        slippage=slippage,
        init_cash=cash,
        cash_sharing=True,
        group_by=True,
        call_seq="auto",
        freq="1D",
    )
    return pd.Series(pf.value().to_numpy(), index=market.index).iloc[int(bars[0]) :]
