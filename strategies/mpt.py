"""Mean-variance (Markowitz) allocation: max Sharpe, min volatility, efficient return / risk, and
max utility net of trading costs.

The hot path is numba end to end (estimators in :mod:`strategies.estimators`, the Goldfarb-Idnani QP
in :mod:`strategies.qp`, problem builders in :mod:`strategies.portfolio_qp`); no modelling language.
Under weight bounds only, the reduced active-set solver of :mod:`strategies.portfolio_qp` runs first,
from a cold start: a start from the ``previous`` weights could end on another optimum of equal
objective when the covariance is nearly singular, and the target must not depend on the holdings.

``objective="max_utility"`` maximises ``mu'w - risk_aversion/2 w'Sw - sum_i c_i |w_i - prev_i|``
(``c = transaction_cost``, a fraction of the traded value; ``prev`` the weights the book holds, the
engine's ``previous``), optionally with ``sum |w - prev| <= max_turnover``: the optimiser trades
only where the expected gain pays for the trade (:func:`strategies.utility_qp.max_utility_nb`).
The other objectives that stay convex take the same cost term and cap: ``min_volatility`` (with
``mu = 0``), ``efficient_return`` (``min risk_aversion/2 w'Sw + cost`` with ``mu'w >= target``) and
``efficient_risk`` (``max mu'w - cost`` with the volatility at most the target);
``max_sharpe`` refuses them (a ratio with an l1 term is not convex). With a budget below 1 (caps
that cannot fill the book) the objective is solved on the scaled weights with ``risk_aversion *
budget`` and ``max_turnover / budget``, which is the real problem's optimum.

Failure handling, in order (each step recorded in ``Allocation.notes``):

* bounds that admit a single portfolio (``n * min_weight = 1`` or ``n * max_weight = 1``): that
  portfolio, with a :class:`~strategies.errors.NoFreedomWarning` and a note;
* a singular or ill-conditioned covariance (zero-variance asset, fewer observations than assets,
  near-collinear assets): shrunk by :func:`strategies.estimators.condition_covariance`;
* an objective without a solution (no portfolio earns more than the risk-free rate, a target return
  above the attainable maximum, a target volatility below the minimum): the ``fallback`` chain, by
  default ``min_volatility -> hrp -> previous``, ending with equal weight.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import numpy as np

from strategies.base import (
    Allocation,
    BaseAllocator,
    Constraints,
    check_choice,
    check_positive,
    project_to_bounds,
)
from strategies.estimators import (
    COVARIANCE_METHODS,
    RETURNS_METHODS,
    CovarianceMethod,
    condition_covariance,
    covariance,
    expected_returns,
)
from strategies.hrp import hrp_allocation
from strategies.limits import single_portfolio
from strategies.portfolio_qp import (
    efficient_return_from_nb,
    efficient_risk,
    feasible_weights,
    max_sharpe_from_nb,
    min_variance_from_nb,
)
from strategies.qp import INFEASIBLE, OK, STATUS_TEXT
from strategies.utility_qp import efficient_return_net, efficient_risk_net, max_utility_nb

Objective = Literal[
    "max_sharpe",
    "min_volatility",
    "efficient_return",
    "efficient_risk",
    "max_utility",
    "max_diversification",
]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
#: The objectives that take a trading-cost term and a turnover cap (they stay convex).
COST_AWARE: tuple[str, ...] = (
    "max_utility",
    "min_volatility",
    "efficient_return",
    "efficient_risk",
)
FALLBACKS: tuple[str, ...] = (*OBJECTIVES, "hrp", "previous", "equal_weight", "inverse_volatility")


@dataclass
class MPTStrategy(BaseAllocator):
    """Markowitz mean-variance allocation.

    Parameters
    ----------
    risk_free_rate : float
        Annual risk-free rate (same units as the annualised expected returns).
    lookback_days : float
        Length of the estimation window used by the walk-forward engine.
    objective : {"max_sharpe", "min_volatility", "efficient_return", "efficient_risk", "max_utility", "max_diversification"}
        ``max_diversification`` maximises the diversification ratio ``w'sigma / sqrt(w'Sw)``
        (``sigma`` the assets' volatilities; Choueifaty & Coignard 2008).
    target_return : float, optional
        Annualised target return, required for ``objective="efficient_return"``.
    target_volatility : float, optional
        Annualised target volatility, required for ``objective="efficient_risk"``.
    periods_per_year : float
        Bars per year used to annualise (365 for daily crypto).
    expected_returns : {"mean", "geometric", "ewma"}
    covariance : {"sample", "ewma", "ledoit_wolf", "oas", "denoised", "detoned"}
    span : float
        EWMA span in bars for the ``"ewma"`` estimators.
    risk_aversion : float
        ``gamma`` of ``max_utility`` (annualised units, as ``mu`` and ``S``); with a trading cost,
        also the weight of the risk against the cost in ``min_volatility`` and
        ``efficient_return``.
    transaction_cost : float, sequence of float or "costs"
        Cost per unit of traded value charged in the objective of every objective but
        ``max_sharpe`` (0.0015 = 15 bps); a sequence gives one per asset of the window;
        ``"costs"`` takes fee + slippage from the backtest's costs, plus a linearised market
        impact per asset and decision when the costs have one (resolved by the engine:
        ``backtest.pipeline.price_trades``).
    max_turnover : float, optional
        Cap on ``sum |w - previous|`` at each rebalance (every objective but ``max_sharpe``).
    fallback : sequence of str
        Methods tried in order when the objective has no solution: any objective, ``"hrp"``,
        ``"previous"`` (the weights passed as ``previous``), ``"equal_weight"``,
        ``"inverse_volatility"``. Equal weight is the final resort in any case.

    Notes
    -----
    ``Allocation.extras`` holds ``expected_returns`` (annualised, shape ``(n_assets,)``),
    ``covariance`` (annualised, as optimised, shape ``(n_assets, n_assets)``) and ``risk_free_rate``,
    enough to draw the efficient frontier with :func:`strategies.frontier.frontier_from_moments`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> returns = rng.normal(0.002, 0.03, size=(90, 5))
    >>> w = MPTStrategy(periods_per_year=365).allocate(returns, {"min_weight": 0.05, "max_weight": 0.4})
    >>> bool(np.isclose(w.sum(), 1.0)) and bool(w.min() >= 0.05 - 1e-12)
    True
    """

    risk_free_rate: float = 0.02
    lookback_days: float = 30
    objective: Objective = "max_sharpe"
    target_return: float | None = None
    target_volatility: float | None = None
    periods_per_year: float = 365.0
    expected_returns: Literal["mean", "geometric", "ewma"] = "mean"
    covariance: CovarianceMethod = "sample"
    span: float = 60.0
    fallback: Sequence[str] = ("min_volatility", "hrp", "previous")
    risk_aversion: float = 1.0
    transaction_cost: float | Sequence[float] | str = 0.0
    max_turnover: float | None = None
    name: ClassVar[str] = "mpt"

    def __post_init__(self) -> None:
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("expected_returns", self.expected_returns, RETURNS_METHODS)
        check_choice("covariance", self.covariance, COVARIANCE_METHODS)
        if isinstance(self.fallback, str):
            raise ValueError(
                f"`fallback` must be a sequence of method names; got the string {self.fallback!r} "
                f"(write [{self.fallback!r}])"
            )
        for method in self.fallback:
            check_choice("fallback", method, FALLBACKS)
        if self.objective == "efficient_return" and self.target_return is None:
            raise ValueError(
                "`target_return` is required for objective 'efficient_return' "
                "(an annualised return such as 0.5 for 50%)"
            )
        if self.objective == "efficient_risk" and (
            self.target_volatility is None or self.target_volatility <= 0
        ):
            raise ValueError(
                "`target_volatility` must be > 0 for objective 'efficient_risk'; got "
                f"{self.target_volatility!r} (an annualised volatility such as 0.6)"
            )
        check_positive(
            periods_per_year=self.periods_per_year,
            lookback_days=self.lookback_days,
            span=self.span,
            risk_aversion=self.risk_aversion,
        )
        if self.max_turnover is not None:
            check_positive(max_turnover=self.max_turnover)
        if isinstance(self.transaction_cost, str):
            if self.transaction_cost != "costs":
                raise ValueError(
                    "`transaction_cost` must be a number, one per asset, or 'costs' (the "
                    f"backtest's fee + slippage); got {self.transaction_cost!r}"
                )
        elif np.any(np.asarray(self.transaction_cost, dtype=float) < 0) or not np.all(
            np.isfinite(np.asarray(self.transaction_cost, dtype=float))
        ):
            raise ValueError(
                f"`transaction_cost` must be finite and >= 0; got {self.transaction_cost!r}"
            )
        charged = isinstance(self.transaction_cost, str) or np.any(
            np.asarray(self.transaction_cost, dtype=float) > 0
        )
        if (charged or self.max_turnover is not None) and self.objective not in COST_AWARE:
            raise ValueError(
                f"`transaction_cost` and `max_turnover` apply to the objectives "
                f"{', '.join(COST_AWARE)}; objective {self.objective!r} takes neither"
            )

    def _allocate(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None
    ) -> Allocation:
        mu = expected_returns(returns, self.expected_returns, self.periods_per_year, self.span)
        cov = covariance(returns, self.covariance, self.periods_per_year, self.span)
        return self.allocate_moments(mu, cov, returns, constraints, previous)

    def allocate_moments(
        self,
        mu: np.ndarray,
        cov: np.ndarray,
        returns: np.ndarray,
        constraints: Constraints,
        previous: np.ndarray | None = None,
    ) -> Allocation:
        """The allocation for given moments: the objective, the covariance repair and the
        fallback chain of :meth:`allocate_detailed`, with ``mu`` and ``cov`` in place of the
        strategy's estimators (the path of return models built on top, e.g. Black-Litterman).

        Parameters
        ----------
        mu : ndarray of shape (n_assets,)
            Annualised expected returns.
        cov : ndarray of shape (n_assets, n_assets)
            Annualised covariance.
        returns : ndarray of shape (n_obs, n_assets)
            The window the moments come from (the repair of a singular ``cov`` reads it).
        constraints : Constraints
        previous : ndarray of shape (n_assets,), optional

        Examples
        --------
        >>> r = np.random.default_rng(0).normal(0.002, 0.03, size=(90, 3))
        >>> mu, cov = np.array([0.3, 0.2, 0.1]), np.cov(r, rowvar=False) * 365
        >>> a = MPTStrategy().allocate_moments(mu, cov, r, Constraints(max_weight=0.6))
        >>> a.method, bool(np.isclose(a.weights.sum(), 1.0))
        ('max_sharpe', True)
        """
        n = returns.shape[1]
        lo, hi = constraints.bounds(n)
        G, h = constraints.linear(n)
        if G.shape[0]:
            _check_linear_feasible(lo, hi, G, h)
        extras: dict[str, Any] = {
            "expected_returns": mu,
            "covariance": cov,
            "risk_free_rate": self.risk_free_rate,
        }
        if self._trades_priced():  # the book it traded from (unscaled): the net frontier's start
            extras["previous"] = self._previous_weights(previous, n) * float(constraints.budget)
        fixed = single_portfolio(lo, hi, G, h)
        if fixed is not None:
            fixed_notes: tuple[str, ...] = (
                "bounds leave a single feasible portfolio: the optimiser has no freedom",
            )
            if self.max_turnover is not None and self.objective in COST_AWARE:
                prev = self._previous_weights(previous, n)
                need = float(np.abs(fixed - prev).sum()) * float(constraints.budget)
                if need > self.max_turnover + 1e-9:
                    fixed_notes += (
                        f"max_turnover {self.max_turnover:g} cannot hold from this book: the "
                        f"limits need a turnover of {need:.4g}; traded the least they allow",
                    )
            return Allocation(fixed, self.objective, fixed_notes, extras)
        if np.all(np.diag(cov) <= 0.0):
            weights = _equal_weight(lo, hi, G, h)
            return Allocation(
                weights, "equal_weight", ("all assets have zero variance: equal weight",), extras
            )
        used, repair = condition_covariance(cov, returns, self.periods_per_year)
        extras["covariance"] = used
        notes = list(repair)
        chain = [self.objective, *(m for m in self.fallback if m != self.objective)]
        for k, method in enumerate(chain):
            weights, why, extra_notes = self._solve(
                method, mu, used, cov, lo, hi, G, h, constraints, previous, returns
            )
            if weights is not None:
                return Allocation(weights, method, (*notes, *extra_notes), extras)
            following = chain[k + 1] if k + 1 < len(chain) else "equal_weight"
            notes.append(f"{method} failed ({why}); falling back to {following}")
        return Allocation(_equal_weight(lo, hi, G, h), "equal_weight", tuple(notes), extras)

    def _solve(self, method, mu, cov, raw_cov, lo, hi, G, h, constraints, previous, returns):
        """One method of the chain: ``(weights or None, reason, notes)``."""
        limit = 10 * (len(mu) + len(h)) + 50
        rf = self.risk_free_rate
        # a cold start: a start from the previous weights can end on another optimum of equal
        # objective when the covariance is nearly singular, and allocators are pure functions of
        # their window (the solvers' warm starts serve the frontier's sweep of targets)
        start = np.empty(0)
        if method == "max_sharpe":
            weights, status = max_sharpe_from_nb(mu, cov, rf, lo, hi, G, h, limit, start)
            if status == INFEASIBLE:
                best = float(mu.max())
                why = (
                    f"no asset's expected return (best {best:.4g}) exceeds the risk-free rate {rf:g}"
                    if best <= rf
                    else f"no portfolio within the constraints earns more than the "
                    f"risk-free rate {rf:g}"
                )
                return None, why, ()
        elif method == "max_diversification":
            # the diversification ratio w'sigma / sqrt(w'Sw) is a Sharpe ratio with the volatilities
            # as returns and no risk-free rate: the same homogenised problem
            vol = np.sqrt(np.maximum(np.diag(cov), 0.0))
            weights, status = max_sharpe_from_nb(vol, cov, 0.0, lo, hi, G, h, limit, start)
        elif method == "max_utility" or (method in COST_AWARE and self._trades_priced()):
            return self._solve_net(method, mu, cov, lo, hi, G, h, constraints, previous, limit)
        elif method == "min_volatility":
            weights, status = min_variance_from_nb(cov, lo, hi, G, h, limit, start)
        elif method == "efficient_return":
            target = self._target_return(mu)
            weights, status = efficient_return_from_nb(mu, cov, target, lo, hi, G, h, limit, start)
            if status == INFEASIBLE:
                return None, f"target return {target:g} is above the attainable maximum", ()
        elif method == "efficient_risk":
            target = float(self.target_volatility or 0.0)
            weights, status = efficient_risk(mu, cov, target, lo, hi, G, h, limit)
            if status == INFEASIBLE:
                floor = float(np.sqrt(weights @ cov @ weights))
                return (
                    None,
                    f"target volatility {target:g} is below the minimum volatility {floor:.4g}",
                    (),
                )
        elif method == "hrp":
            allocation = hrp_allocation(raw_cov, lo, hi, constraints)
            return allocation.weights, "", allocation.notes
        elif method == "previous":
            return _previous(previous, lo, hi, G, h, len(mu))
        elif method == "inverse_volatility":
            vol = np.sqrt(np.diag(cov))
            return (
                _feasible(project_to_bounds((1 / vol) / (1 / vol).sum(), lo, hi), lo, hi, G, h),
                "",
                (),
            )
        else:
            return _equal_weight(lo, hi, G, h), "", ()
        if status != OK:
            return None, STATUS_TEXT[status], ()
        return weights, "", ()

    def _solve_net(self, method, mu, cov, lo, hi, G, h, constraints, previous, limit):
        """A cost-aware objective (a cost term and/or a turnover cap from the book ``previous``):
        ``(weights or None, reason, notes)``. When the limits alone need more turnover than the
        cap (the first investment from cash, a universe change), the least they allow is traded
        and a note says so."""
        prev = self._previous_weights(previous, len(mu))
        budget = float(constraints.budget)
        cap = np.inf if self.max_turnover is None else self.max_turnover / budget
        gamma, cost = self.risk_aversion * budget, self._cost_vector(len(mu))

        def solve(turnover: float) -> tuple[np.ndarray, int]:
            if method == "efficient_return":
                return efficient_return_net(
                    mu,
                    cov,
                    gamma,
                    prev,
                    cost,
                    turnover,
                    self._target_return(mu),
                    lo,
                    hi,
                    G,
                    h,
                    limit,
                )
            if method == "efficient_risk":
                target = float(self.target_volatility or 0.0)
                return efficient_risk_net(
                    mu, cov, prev, cost, turnover, target, lo, hi, G, h, limit
                )
            drift = mu if method == "max_utility" else np.zeros_like(mu)
            return max_utility_nb(drift, cov, gamma, prev, cost, turnover, lo, hi, G, h, limit)

        weights, status = solve(cap)
        extra: tuple[str, ...] = ()
        if status == INFEASIBLE and np.isfinite(cap):
            need = _least_turnover(prev, lo, hi, G, h)
            if need is None:
                return None, "the limits admit no portfolio", ()
            if need > cap:
                weights, status = solve(need + 1e-9)
                extra = (
                    f"max_turnover {self.max_turnover:g} cannot hold from this book: the "
                    f"limits need a turnover of {need * budget:.4g}; traded the least they allow",
                )
        if status == INFEASIBLE and method == "efficient_return":
            within = f" within max_turnover {self.max_turnover:g}" if np.isfinite(cap) else ""
            why = (
                f"target return {self._target_return(mu):g} is above the attainable maximum{within}"
            )
            return None, why, ()
        if status == INFEASIBLE and method == "efficient_risk":
            within = f" within max_turnover {self.max_turnover:g}" if np.isfinite(cap) else ""
            why = (
                f"target volatility {self.target_volatility:g} is below the least volatility the "
                f"limits allow{within}"
            )
            return None, why, ()
        if status != OK:
            return None, STATUS_TEXT[status], ()
        return weights, "", extra

    def _target_return(self, mu: np.ndarray) -> float:
        return float(self.target_return if self.target_return is not None else mu.mean())

    def for_universe(self, members: np.ndarray, n_assets: int) -> MPTStrategy:
        """A per-asset ``transaction_cost`` of the market's assets restricted to ``members``."""
        cost = self.transaction_cost
        if isinstance(cost, str) or np.ndim(cost) == 0 or len(cost) != n_assets:  # type: ignore[arg-type]
            return self
        return dataclasses.replace(
            self,
            transaction_cost=tuple(float(cost[int(j)]) for j in members),  # type: ignore[index]
        )

    @property
    def uses_previous(self) -> bool:
        """The target depends on the book's weights (a cost term or a turnover cap)."""
        return self.objective == "max_utility" or self._trades_priced()

    def _trades_priced(self) -> bool:
        cost = self.transaction_cost
        if self.max_turnover is not None or isinstance(cost, str):
            return True
        if isinstance(cost, float | int):  # the usual case: no array on every allocation
            return cost > 0
        return bool(np.any(np.asarray(cost, dtype=float) > 0))

    def _cost_vector(self, n: int) -> np.ndarray:
        if isinstance(self.transaction_cost, str):
            raise ValueError(
                "`transaction_cost = 'costs'` takes fee + slippage from a backtest's costs: run it "
                "through run_backtest / the CLI, or give the cost as a number (0.0015 = 15 bps)"
            )
        cost = np.asarray(self.transaction_cost, dtype=np.float64)
        if cost.ndim == 0:
            return np.full(n, float(cost))
        if cost.shape != (n,):
            raise ValueError(
                f"per-asset `transaction_cost` has {cost.size} entries but the window has {n} "
                "assets (in a walk-forward, whose universe changes, give one number)"
            )
        return cost

    @staticmethod
    def _previous_weights(previous: np.ndarray | None, n: int) -> np.ndarray:
        """The book's weights (all cash when unknown)."""
        if previous is None:
            return np.zeros(n)
        prev = np.asarray(previous, dtype=np.float64)
        if prev.shape != (n,) or not np.isfinite(prev).all():
            raise ValueError(f"`previous` must be {n} finite weights; got shape {prev.shape}")
        return prev


def _least_turnover(prev, lo, hi, G, h) -> float | None:
    """The least ``sum |w - prev|`` of a portfolio within the limits (``sum(w) = 1``, the bounds,
    ``G w <= h``): a linear programme over ``(w, t)``, ``t >= |w - prev|`` (HiGHS, exact)."""
    from scipy.optimize import linprog

    n = prev.size
    eye = np.eye(n)
    A_ub = np.block([[eye, -eye], [-eye, -eye]])
    b_ub = np.concatenate([prev, -prev])
    if G.shape[0]:
        A_ub = np.vstack([A_ub, np.hstack([G, np.zeros((G.shape[0], n))])])
        b_ub = np.concatenate([b_ub, h])
    res = linprog(
        np.concatenate([np.zeros(n), np.ones(n)]),
        A_ub=A_ub,
        b_ub=b_ub,
        A_eq=np.concatenate([np.ones(n), np.zeros(n)])[None, :],
        b_eq=[1.0],
        bounds=[*zip(lo, hi, strict=True), *([(0, None)] * n)],
        method="highs",
    )
    return float(res.fun) if res.status == 0 else None


def _feasible(weights, lo, hi, G, h):
    return feasible_weights(weights, lo, hi, G, h)[0]


def _equal_weight(lo, hi, G, h):
    n = len(lo)
    return _feasible(project_to_bounds(np.full(n, 1.0 / n), lo, hi), lo, hi, G, h)


def _previous(previous, lo, hi, G, h, n):
    if previous is None:
        return None, "no previous weights", ()
    prev = np.asarray(previous, dtype=np.float64)
    if prev.shape != (n,) or not np.isfinite(prev).all() or np.any(prev < 0) or prev.sum() <= 0:
        return (
            None,
            f"previous weights unusable (shape {prev.shape}, need ({n},), finite, >= 0)",
            (),
        )
    weights = _feasible(project_to_bounds(prev / prev.sum(), lo, hi), lo, hi, G, h)
    return weights, "", ()


def _check_linear_feasible(lo, hi, G, h):
    _feasible(project_to_bounds(np.full(len(lo), 1.0 / len(lo)), lo, hi), lo, hi, G, h)
