"""Tail-risk allocators: minimum CVaR (``min_cvar``) and minimum CDaR (``min_cdar``).

Both minimise a historical tail measure of the window at confidence ``beta``, each row of the
window an equally likely scenario: the CVaR of the portfolio's returns (Rockafellar & Uryasev
2000) or the conditional drawdown at risk of its uncompounded cumulative return (Chekhlov, Uryasev
& Zabarankin 2005), under ``sum(w) = 1``, the weight bounds and the group / ``A @ w <= b`` limits,
optionally with a floor on the annualised mean return. The linear programmes and their solver are
in :mod:`strategies.tail_lp` and :mod:`strategies.simplex`; docs/allocators.md writes them out.

Both measures are positively homogeneous (the measure of ``B v`` is ``B`` times that of ``v``),
so the budget < 1 rule of :mod:`strategies.limits` gives the optimum under the real limits; a
``target_return`` is a floor on the real book's return, so the allocator, which returns weights
for the full book, asks ``target_return / budget`` of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NoReturn

import numpy as np

from strategies.base import Allocation, BaseAllocator, Constraints, check_positive
from strategies.errors import ConstraintError
from strategies.limits import single_portfolio
from strategies.tail_lp import MEASURES, Measure, max_return, min_tail_risk


def check_beta(beta: object) -> None:
    """Raise ``ValueError`` unless ``beta`` is a number strictly between 0 and 1.

    Examples
    --------
    >>> check_beta(1.0)
    Traceback (most recent call last):
    ...
    ValueError: `beta` must be a confidence level in (0, 1), e.g. 0.95; got 1.0
    """
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0.0 < beta < 1.0:
        raise ValueError(f"`beta` must be a confidence level in (0, 1), e.g. 0.95; got {beta!r}")


@dataclass
class _MinTailRisk(BaseAllocator):
    """Shared parameters and the allocation of :class:`MinCVaR` and :class:`MinCDaR`."""

    lookback_days: float = 30
    beta: float = 0.95
    target_return: float | None = None
    periods_per_year: float = 365.0
    risk_free_rate: float = 0.02
    measure: ClassVar[Measure] = "cvar"

    def __post_init__(self) -> None:
        check_beta(self.beta)
        check_positive(periods_per_year=self.periods_per_year, lookback_days=self.lookback_days)
        target = self.target_return
        if target is not None and (
            isinstance(target, bool)
            or not isinstance(target, int | float)
            or not math.isfinite(target)
        ):
            raise ValueError(
                f"`target_return` must be a finite annualised return such as 0.2, or None; "
                f"got {target!r}"
            )

    def _allocate(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None
    ) -> Allocation:
        n = returns.shape[1]
        lo, hi = constraints.bounds(n)
        G, h = constraints.linear(n)
        mean = returns.mean(axis=0)
        budget = float(constraints.budget)
        floor = None
        if self.target_return is not None:  # per bar, for the allocator's full-book weights
            floor = self.target_return / (self.periods_per_year * budget)
        notes: tuple[str, ...]
        fixed = single_portfolio(lo, hi, G, h)
        if fixed is not None:
            if floor is not None and mean @ fixed < floor - 1e-12:
                self._unreachable(mean @ fixed, budget)
            weights, notes = fixed, ("bounds leave a single feasible portfolio: no optimisation",)
            solver, iterations = "none", 0
        else:
            G_all, h_all = G, h
            if floor is not None:
                G_all, h_all = np.vstack([G, -mean]), np.append(h, -floor)
            try:
                solution = min_tail_risk(returns, self.measure, self.beta, lo, hi, G_all, h_all)
            except ConstraintError:
                best = None if floor is None else max_return(mean, lo, hi, G, h)
                if floor is None or best is None or best >= floor:
                    raise
                self._unreachable(best, budget)
            weights, notes = solution.weights, solution.notes
            solver, iterations = solution.solver, solution.iterations
        extras = {
            self.measure: MEASURES[self.measure](returns @ weights, self.beta),
            "beta": self.beta,
            "expected_return": float(mean @ weights) * self.periods_per_year,
            "solver": solver,
            "iterations": iterations,
        }
        return Allocation(weights, self.name, notes, extras)

    def _unreachable(self, best_per_bar: float, budget: float) -> NoReturn:
        best = best_per_bar * self.periods_per_year * budget
        raise ConstraintError(
            f"`target_return` = {self.target_return:g} is above the highest annualised mean "
            f"return the limits allow on this window, {best:.4g}; lower `target_return` or "
            "loosen the limits"
        )


@dataclass
class MinCVaR(_MinTailRisk):
    """Minimum historical CVaR: the portfolio whose mean loss over the worst ``1 - beta`` of the
    window's scenarios is smallest.

    Parameters
    ----------
    lookback_days : float
        Length of the estimation window used by the walk-forward engine (the default 30 daily
        scenarios put 1.5 of them in the tail at ``beta = 0.95``; the config's default 90, 4.5).
    beta : float
        Confidence level in (0, 1).
    target_return : float, optional
        Floor on the annualised mean return, ``mean(returns) @ w * periods_per_year``; a floor
        above the highest the limits allow raises :class:`~strategies.errors.ConstraintError`.
    periods_per_year : float
        Bars per year (annualises the target and the reported expected return).
    risk_free_rate : float
        Not used (kept for a uniform strategy interface).

    Notes
    -----
    ``Allocation.extras`` holds ``cvar`` (per bar, a positive fraction), ``beta``,
    ``expected_return`` (annualised), ``solver`` (``"simplex"``, or ``"highs"`` when the fallback
    ran, with a note) and ``iterations``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> returns = rng.normal(0.001, 0.03, size=(120, 5))
    >>> a = MinCVaR().allocate_detailed(returns, {"max_weight": 0.4})
    >>> bool(abs(a.weights.sum() - 1) < 1e-12), bool(a.extras["cvar"] <= 0.06)
    (True, True)
    """

    name: ClassVar[str] = "min_cvar"
    measure: ClassVar[Measure] = "cvar"


@dataclass
class MinCDaR(_MinTailRisk):
    """Minimum historical CDaR: the portfolio whose mean drawdown over the worst ``1 - beta`` of
    the window's days is smallest, drawdowns measured on the uncompounded cumulative return
    (the peak starting at 0).

    Parameters
    ----------
    lookback_days, beta, target_return, periods_per_year, risk_free_rate
        As in :class:`MinCVaR`.

    Notes
    -----
    ``Allocation.extras`` holds ``cdar`` (a positive fraction), ``beta``, ``expected_return``,
    ``solver`` and ``iterations``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> returns = rng.normal(0.001, 0.03, size=(120, 5))
    >>> a = MinCDaR(beta=0.9).allocate_detailed(returns)
    >>> bool(abs(a.weights.sum() - 1) < 1e-12), a.method
    (True, 'min_cdar')
    """

    name: ClassVar[str] = "min_cdar"
    measure: ClassVar[Measure] = "cdar"
