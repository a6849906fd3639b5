"""The efficient frontier (return, volatility, Sharpe and weights per point) for reports.

:func:`efficient_frontier` estimates the moments from returns; :func:`frontier_from_moments` takes
them directly, e.g. from ``Allocation.extras`` of an :class:`~strategies.MPTStrategy` rebalance.
pandas is imported inside the functions (reports only; ``import strategies`` stays light).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from strategies import estimators as est
from strategies.base import Constraints, validate_returns
from strategies.errors import NoFreedomWarning
from strategies.limits import universe_limits
from strategies.portfolio_qp import frontier_points
from strategies.utility_qp import net_frontier_points

log = logging.getLogger(__name__)


def frontier_from_moments(
    mu: np.ndarray,
    cov: np.ndarray,
    n_points: int = 20,
    constraints: Constraints | Mapping[str, Any] | None = None,
    risk_free_rate: float = 0.02,
    symbols: Sequence[str] | None = None,
    *,
    invest: float = 1.0,
    previous: np.ndarray | None = None,
    transaction_cost: float | np.ndarray = 0.0,
    max_turnover: float | None = None,
    risk_aversion: float = 1.0,
) -> Any:
    """Efficient portfolios for annualised moments (net of the cost of trading from a book when
    ``previous`` is given with a cost or a turnover cap).

    Parameters
    ----------
    mu : ndarray of shape (n_assets,)
        Annualised expected returns.
    cov : ndarray of shape (n_assets, n_assets)
        Annualised covariance (positive definite; see :func:`strategies.estimators.condition_covariance`).
    n_points : int
        Number of portfolios, with target returns evenly spaced from the minimum-variance portfolio's
        return to the highest attainable return.
    constraints : Constraints or dict, optional
    risk_free_rate : float
        Annual rate for the Sharpe column.
    symbols : sequence of str, optional
        Names of the weight columns (default ``asset_0 ...``).
    invest : float, default 1
        Largest share of the book in the assets (``1 - cash_reserve``). When it or the limits keep
        part of the book in cash (see :func:`strategies.limits.universe_limits`), every point holds
        that budget under the real limits and the rest in cash.
    previous : ndarray of shape (n_assets,), optional
        The book's weights. With ``transaction_cost`` > 0 or ``max_turnover``, each point is
        ``min risk_aversion/2 w'Sw + sum_i c_i |w_i - previous_i|`` at its target return (and
        within the turnover cap), as ``MPTStrategy(objective="efficient_return")`` solves it with
        those parameters: the frontier a cost-aware rebalance chooses from.
    transaction_cost : float or ndarray of shape (n_assets,)
    max_turnover : float, optional
    risk_aversion : float

    Returns
    -------
    DataFrame of shape (n_points, 3 + n_assets)
        Columns ``return``, ``volatility``, ``sharpe``, then one weight column per asset; the asset
        names are also in ``frame.attrs["assets"]``. Points that could not be solved are dropped.

    Examples
    --------
    >>> mu = np.array([0.1, 0.2]); cov = np.array([[0.04, 0.0], [0.0, 0.09]])
    >>> frontier_from_moments(mu, cov, n_points=3, risk_free_rate=0.0)[["return", "volatility"]].round(4)
       return  volatility
    0  0.1308      0.1664
    1  0.1654      0.2080
    2  0.2000      0.3000
    """
    import pandas as pd

    if not isinstance(n_points, int | np.integer) or n_points < 2:
        raise ValueError(f"`n_points` must be an integer >= 2; got {n_points!r}")
    mu = np.ascontiguousarray(mu, dtype=np.float64)
    cov = np.ascontiguousarray(cov, dtype=np.float64)
    n = mu.shape[0]
    if cov.shape != (n, n):
        raise ValueError(f"`cov` must have shape ({n}, {n}) to match `mu`; got {cov.shape}")
    limits = universe_limits(
        Constraints.coerce(constraints, symbols), np.arange(n), n, symbols, invest=invest
    )
    with warnings.catch_warnings():
        if limits.notes:  # the note already says every asset sits at its cap
            warnings.simplefilter("ignore", NoFreedomWarning)
        lo, hi = limits.constraints.bounds(n)
    G, h = limits.constraints.linear(n)
    limit = 10 * (n + len(h)) + 50
    cost = np.broadcast_to(np.asarray(transaction_cost, dtype=np.float64), (n,)).copy()
    if previous is not None and (np.any(cost > 0) or max_turnover is not None):
        budget = float(limits.budget)
        prev = np.asarray(previous, dtype=np.float64) / budget
        if prev.shape != (n,) or not np.isfinite(prev).all():
            raise ValueError(f"`previous` must be {n} finite weights; got shape {prev.shape}")
        cap = np.inf if max_turnover is None else float(max_turnover) / budget
        scaled = net_frontier_points(
            mu, cov, risk_aversion * budget, prev, cost, cap, int(n_points), lo, hi, G, h, limit
        )
    else:
        scaled = frontier_points(mu, cov, int(n_points), lo, hi, G, h, limit)
    weights = np.array([limits.apply(v) for v in scaled if np.isfinite(v).all()]).reshape(-1, n)
    ret = weights @ mu
    vol = np.sqrt(np.maximum(np.einsum("ki,ij,kj->k", weights, cov, weights), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(vol > 0, (ret - risk_free_rate) / vol, np.nan)
    names = [str(s) for s in symbols] if symbols is not None else [f"asset_{i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"`symbols` must name {n} assets; got {len(names)}")
    frame = pd.DataFrame(weights, columns=names)
    frame.insert(0, "sharpe", sharpe)
    frame.insert(0, "volatility", vol)
    frame.insert(0, "return", ret)
    frame.attrs["assets"] = names
    return frame


def decision_frontier(
    mu: np.ndarray,
    cov: np.ndarray,
    constraints: Constraints | Mapping[str, Any] | None,
    members: Sequence[int] | np.ndarray,
    n_assets: int,
    *,
    risk_free_rate: float,
    symbols: Sequence[str],
    invest: float = 1.0,
    n_points: int = 20,
    **net: Any,
) -> Any:
    """The efficient frontier of one decision: its universe ``members`` (indices into the
    ``n_assets`` that ``constraints`` index) under that universe's limits, ``mu``/``cov`` of the
    members; None, logged, when the limits leave no frontier (the report and the live plan then
    show none). ``net``: ``previous`` (the members' book weights), ``transaction_cost``,
    ``max_turnover``, ``risk_aversion`` for the frontier net of costs (:func:`frontier_from_moments`).
    """
    try:
        limits = universe_limits(
            Constraints.coerce(constraints), np.asarray(members), n_assets, invest=invest
        )
        restricted = Constraints(
            limits.lo.tolist(), limits.hi.tolist(), limits.groups, limits.A, limits.b
        )
        return frontier_from_moments(
            mu, cov, n_points, restricted, risk_free_rate, symbols, invest=invest, **net
        )
    except ValueError as exc:
        log.warning("no efficient frontier: %s", exc)
        return None


def efficient_frontier(
    returns: Any,
    n_points: int = 20,
    constraints: Constraints | Mapping[str, Any] | None = None,
    *,
    risk_free_rate: float = 0.02,
    periods_per_year: float = 365.0,
    expected_returns: str = "mean",
    covariance: str = "sample",
    span: float = 60.0,
    symbols: Sequence[str] | None = None,
) -> Any:
    """Efficient frontier estimated from a window of returns.

    Parameters
    ----------
    returns : ndarray of shape (n_obs, n_assets) or DataFrame
        Simple returns; a DataFrame's columns name the weight columns.
    n_points : int
    constraints : Constraints or dict, optional
    risk_free_rate, periods_per_year : float
    expected_returns, covariance : str
        Estimators, as the :class:`~strategies.MPTStrategy` parameters of the same names.
    span : float
    symbols : sequence of str, optional

    Returns
    -------
    DataFrame
        See :func:`frontier_from_moments`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> frame = efficient_frontier(rng.normal(0.001, 0.02, size=(90, 4)), n_points=5)
    >>> list(frame.columns[:3]), len(frame)
    (['return', 'volatility', 'sharpe'], 5)
    """
    if symbols is None and hasattr(returns, "columns"):
        symbols = [str(c) for c in returns.columns]
    arr = validate_returns(returns, symbols)
    mu = est.expected_returns(arr, expected_returns, periods_per_year, span)  # type: ignore[arg-type]
    cov = est.covariance(arr, covariance, periods_per_year, span)  # type: ignore[arg-type]
    cov, _ = est.condition_covariance(cov, arr, periods_per_year)
    return frontier_from_moments(mu, cov, n_points, constraints, risk_free_rate, symbols)
