"""Equal risk contribution (risk parity) by damped Newton.

The weights solve ``w_i (S w)_i / (w' S w) = b_i`` for a risk budget ``b`` (equal by default):
``w = y / sum(y)`` with ``y = argmin f(y) = 0.5 y'Sy - sum(b_i log y_i)`` (Spinu, 2013). ``f`` is
self-concordant, so the damped Newton step ``y <- y - H^{-1} g / (1 + decrement)`` stays positive and
converges from any start; near the solution the step is undamped and convergence quadratic. (Cyclical
coordinate descent, the other common method, stalls for hundreds of thousands of sweeps on
near-singular windows.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numba as nb
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
    CovarianceMethod,
    condition_covariance,
    covariance,
)
from strategies.portfolio_qp import feasible_weights
from strategies.qp import cholesky_nb


@nb.njit(cache=True)
def erc_nb(cov: np.ndarray, budget: np.ndarray, tol: float, max_steps: int):
    """Risk-budgeting weights; returns ``(weights, n_steps, converged)``.

    Stops when the squared Newton decrement is below ``tol`` (relative to the budget total 1), or
    below 1e-20 and no longer decreasing (the round-off floor).
    """
    n = cov.shape[0]
    scale = 0.0
    for i in range(n):
        scale += cov[i, i]
    scale /= n
    S = cov / scale
    y = np.empty(n)
    for i in range(n):
        y[i] = 1.0 / np.sqrt(S[i, i] * n)
    H = np.empty((n, n))
    L = np.empty((n, n))
    step = np.empty(n)
    previous = np.inf
    for k in range(max_steps):
        g = S @ y
        for i in range(n):
            g[i] -= budget[i] / y[i]
        H[:, :] = S
        for i in range(n):
            H[i, i] += budget[i] / (y[i] * y[i])
        if cholesky_nb(H, L) < 0.0:
            return y / y.sum(), k, False
        # step = H^{-1} g by forward and back substitution
        for i in range(n):
            t = g[i]
            for j in range(i):
                t -= L[i, j] * step[j]
            step[i] = t / L[i, i]
        decrement2 = 0.0
        for i in range(n):
            decrement2 += step[i] * step[i]
        for i in range(n - 1, -1, -1):
            t = step[i]
            for j in range(i + 1, n):
                t -= L[j, i] * step[j]
            step[i] = t / L[i, i]
        if decrement2 < tol or (decrement2 < 1e-20 and decrement2 >= previous):
            return y / y.sum(), k, True
        previous = decrement2
        damping = 1.0 / (1.0 + np.sqrt(decrement2)) if decrement2 > 0.0625 else 1.0
        for i in range(n):
            y[i] -= damping * step[i]
    return y / y.sum(), max_steps, False


def risk_contributions(weights: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Fraction of the portfolio variance each asset contributes, shape ``(n_assets,)`` (sums to 1)."""
    marginal = cov @ weights
    return weights * marginal / float(weights @ marginal)


@dataclass
class RiskParity(BaseAllocator):
    """Equal risk contribution (or a custom risk budget).

    Parameters
    ----------
    lookback_days : float
    covariance : {"sample", "ewma", "ledoit_wolf", "oas", "denoised", "detoned"}
    periods_per_year : float
    span : float
        EWMA span in bars for ``covariance="ewma"``.
    risk_budget : sequence of float or mapping of symbol to float, optional
        Positive budgets, normalised to sum to 1 over the universe; equal when omitted. By symbol
        (``{"BTC/USDT": 2.0}``: the others 1) the engine resolves them against the market's symbols
        and restricts them to each decision's universe; a sequence has one entry per asset of the
        market (restricted the same way) or of the window.

    Notes
    -----
    Weight bounds are applied to the unconstrained solution (clip and redistribute); a note records
    when they bind, since the risk contributions are then no longer equal.

    Examples
    --------
    >>> cov_returns = np.random.default_rng(1).normal(0, [0.01, 0.02, 0.04], size=(500, 3))
    >>> w = RiskParity().allocate(cov_returns)
    >>> bool(np.all(np.diff(w) < 0))  # the more volatile, the smaller the weight
    True
    """

    lookback_days: float = 30
    covariance: CovarianceMethod = "sample"
    periods_per_year: float = 365.0
    span: float = 60.0
    risk_budget: Sequence[float] | Mapping[str, float] | None = None
    name: ClassVar[str] = "risk_parity"

    def __post_init__(self) -> None:
        check_choice("covariance", self.covariance, COVARIANCE_METHODS)
        check_positive(
            periods_per_year=self.periods_per_year, lookback_days=self.lookback_days, span=self.span
        )
        budget = self.risk_budget
        values = list(budget.values()) if isinstance(budget, Mapping) else budget
        if values is not None and (
            not len(values) or np.any(~(np.asarray(values, dtype=float) > 0))
        ):
            raise ValueError(f"`risk_budget` entries must be finite and > 0; got {budget!r}")

    def for_symbols(self, symbols: Sequence[str]) -> RiskParity:
        if not isinstance(self.risk_budget, Mapping):
            return self
        unknown = [s for s in self.risk_budget if s not in set(symbols)]
        if unknown:
            raise ValueError(
                f"`risk_budget` names {unknown} that the data does not have; its symbols are "
                f"{', '.join(list(symbols)[:8])}{', ...' if len(symbols) > 8 else ''}"
            )
        budget = tuple(float(self.risk_budget.get(s, 1.0)) for s in symbols)
        return dataclasses.replace(self, risk_budget=budget)

    def for_universe(self, members: np.ndarray, n_assets: int) -> RiskParity:
        budget = self.risk_budget
        if budget is None or isinstance(budget, Mapping) or len(budget) != n_assets:
            return self
        return dataclasses.replace(self, risk_budget=tuple(float(budget[int(j)]) for j in members))

    def _allocate(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None
    ) -> Allocation:
        n = returns.shape[1]
        lo, hi = constraints.bounds(n)
        G, h = constraints.linear(n)
        if isinstance(self.risk_budget, Mapping):
            raise ValueError(
                "`risk_budget` by symbol needs the market's symbols: run it through "
                "run_backtest / the CLI, or call for_symbols(symbols) first"
            )
        budget = (
            np.full(n, 1.0 / n)
            if self.risk_budget is None
            else np.asarray(self.risk_budget, dtype=float)
        )
        if budget.shape != (n,):
            raise ValueError(
                f"`risk_budget` must have one entry per asset ({n}); got {budget.shape[0]}"
            )
        budget = budget / budget.sum()
        cov = covariance(returns, self.covariance, self.periods_per_year, self.span)
        if np.all(np.diag(cov) <= 0.0):
            w = feasible_weights(project_to_bounds(np.full(n, 1.0 / n), lo, hi), lo, hi, G, h)[0]
            return Allocation(w, "equal_weight", ("all assets have zero variance: equal weight",))
        used, conditioning = condition_covariance(cov, returns, self.periods_per_year)
        raw, steps, converged = erc_nb(used, budget, 1e-28, 200)
        notes = list(conditioning)
        if not converged:
            notes.append(f"risk parity did not converge in {steps} Newton steps")
        weights = feasible_weights(project_to_bounds(raw, lo, hi), lo, hi, G, h)[0]
        if np.abs(weights - raw).max() > 1e-12:
            notes.append(
                "weight bounds or group constraints bind: risk contributions are not equal"
            )
        return Allocation(weights, self.name, tuple(notes), {"covariance": used})
