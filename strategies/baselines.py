"""Baseline allocators: equal weight and inverse volatility."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from strategies.base import Allocation, BaseAllocator, Constraints, project_to_bounds


@dataclass
class EqualWeight(BaseAllocator):
    """``1 / n_assets`` each (projected onto the bounds).

    >>> EqualWeight().allocate(np.zeros((5, 4)))
    array([0.25, 0.25, 0.25, 0.25])
    """

    lookback_days: float = 30
    name: ClassVar[str] = "equal_weight"

    def _allocate(self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None) -> Allocation:
        n = returns.shape[1]
        lo, hi = constraints.bounds(n)
        return Allocation(project_to_bounds(np.full(n, 1.0 / n), lo, hi), self.name)


@dataclass
class InverseVolatility(BaseAllocator):
    """Weights proportional to ``1 / std`` of each asset's returns (ddof=1), projected onto the bounds.

    A zero-variance asset (a stablecoin, a halted market) would get infinite weight; such assets share
    the weight of the least volatile risky asset instead, and a note records it.
    """

    lookback_days: float = 30
    name: ClassVar[str] = "inverse_volatility"

    def _allocate(self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None) -> Allocation:
        n = returns.shape[1]
        lo, hi = constraints.bounds(n)
        vol = returns.std(axis=0, ddof=1)
        notes: tuple[str, ...] = ()
        zero = vol <= 1e-300
        if zero.all():
            return Allocation(project_to_bounds(np.full(n, 1.0 / n), lo, hi), "equal_weight",
                              ("all assets have zero variance: equal weight",))
        if zero.any():
            vol = np.where(zero, vol[~zero].min(), vol)
            notes = (f"{int(zero.sum())} zero-variance asset(s) weighted like the least volatile one",)
        inv = 1.0 / vol
        return Allocation(project_to_bounds(inv / inv.sum(), lo, hi), self.name, notes)
