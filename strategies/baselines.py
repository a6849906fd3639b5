"""Baseline allocators: equal weight and inverse volatility (risk parity is in :mod:`strategies.risk_parity`).

Both honour group / ``A @ w <= b`` constraints by Euclidean projection of their weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from strategies.base import Allocation, BaseAllocator, Constraints, project_to_bounds
from strategies.portfolio_qp import feasible_weights


@dataclass
class EqualWeight(BaseAllocator):
    """``1 / n_assets`` each (projected onto the bounds).

    >>> EqualWeight().allocate(np.zeros((5, 4)))
    array([0.25, 0.25, 0.25, 0.25])
    """

    lookback_days: float = 30
    name: ClassVar[str] = "equal_weight"

    def _allocate(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None
    ) -> Allocation:
        n = returns.shape[1]
        lo, hi = constraints.bounds(n)
        return Allocation(_constrained(np.full(n, 1.0 / n), lo, hi, constraints), self.name)


@dataclass
class InverseVolatility(BaseAllocator):
    """Weights proportional to ``1 / std`` of each asset's returns (ddof=1), projected onto the bounds.

    A zero-variance asset (a stablecoin, a halted market) would get infinite weight; such assets share
    the weight of the least volatile risky asset instead, and a note records it.
    """

    lookback_days: float = 30
    name: ClassVar[str] = "inverse_volatility"

    def _allocate(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None
    ) -> Allocation:
        n = returns.shape[1]
        lo, hi = constraints.bounds(n)
        vol = returns.std(axis=0, ddof=1)
        notes: tuple[str, ...] = ()
        zero = vol <= 1e-300
        if zero.all():
            return Allocation(
                _constrained(np.full(n, 1.0 / n), lo, hi, constraints),
                "equal_weight",
                ("all assets have zero variance: equal weight",),
            )
        if zero.any():
            vol = np.where(zero, vol[~zero].min(), vol)
            notes = (
                f"{int(zero.sum())} zero-variance asset(s) weighted like the least volatile one",
            )
        inv = 1.0 / vol
        return Allocation(_constrained(inv / inv.sum(), lo, hi, constraints), self.name, notes)


def _constrained(
    weights: np.ndarray, lo: np.ndarray, hi: np.ndarray, constraints: Constraints
) -> np.ndarray:
    """Weights clipped to the bounds (excess redistributed), then projected onto linear constraints."""
    weights = project_to_bounds(weights, lo, hi)
    if not constraints.has_linear:
        return weights
    G, h = constraints.linear(len(weights))
    return feasible_weights(weights, lo, hi, G, h)[0]
