"""Allocators: pure math on arrays (no I/O, no pandas in the hot path).

This is AlphaPulse Backtest's ``strategies`` package (PyPI has an unrelated package of this name).
"""

from strategies.base import (
    Allocation,
    Allocator,
    BaseAllocator,
    Constraints,
    project_to_bounds,
    validate_returns,
)
from strategies.baselines import EqualWeight, InverseVolatility
from strategies.errors import (
    ConstraintError,
    InputError,
    LimitError,
    NoFreedomWarning,
    SolverError,
)
from strategies.frontier import decision_frontier, efficient_frontier, frontier_from_moments
from strategies.hrp import HRPStrategy, hrp_weights
from strategies.limits import UniverseLimits, universe_limits
from strategies.mpt import MPTStrategy
from strategies.registry import STRATEGIES, build_strategy
from strategies.risk_parity import RiskParity

__all__ = [
    "STRATEGIES",
    "Allocation",
    "Allocator",
    "BaseAllocator",
    "ConstraintError",
    "Constraints",
    "EqualWeight",
    "HRPStrategy",
    "InputError",
    "InverseVolatility",
    "LimitError",
    "MPTStrategy",
    "NoFreedomWarning",
    "RiskParity",
    "SolverError",
    "UniverseLimits",
    "build_strategy",
    "decision_frontier",
    "efficient_frontier",
    "frontier_from_moments",
    "hrp_weights",
    "project_to_bounds",
    "universe_limits",
    "validate_returns",
]
