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
from strategies.black_litterman import BlackLittermanStrategy
from strategies.errors import (
    ConstraintError,
    InputError,
    LimitError,
    NoFreedomWarning,
    SolverError,
    ViewError,
)
from strategies.frontier import decision_frontier, efficient_frontier, frontier_from_moments
from strategies.herc import HERCStrategy
from strategies.hrp import HRPStrategy, hrp_weights
from strategies.limits import UniverseLimits, universe_limits
from strategies.mpt import MPTStrategy
from strategies.nco import NCOStrategy
from strategies.registry import STRATEGIES, build_strategy
from strategies.risk_parity import RiskParity
from strategies.tail_risk import MinCDaR, MinCVaR
from strategies.views import Views

__all__ = [
    "STRATEGIES",
    "Allocation",
    "Allocator",
    "BaseAllocator",
    "BlackLittermanStrategy",
    "ConstraintError",
    "Constraints",
    "EqualWeight",
    "HERCStrategy",
    "HRPStrategy",
    "InputError",
    "InverseVolatility",
    "LimitError",
    "MPTStrategy",
    "MinCDaR",
    "MinCVaR",
    "NCOStrategy",
    "NoFreedomWarning",
    "RiskParity",
    "SolverError",
    "UniverseLimits",
    "ViewError",
    "Views",
    "build_strategy",
    "decision_frontier",
    "efficient_frontier",
    "frontier_from_moments",
    "hrp_weights",
    "project_to_bounds",
    "universe_limits",
    "validate_returns",
]
