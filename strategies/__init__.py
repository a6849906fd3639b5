"""Allocators: pure math on arrays (no I/O, no pandas in the hot path).

This is AlphaPulse Backtest's ``strategies`` package (PyPI has an unrelated package of this name).
"""

from strategies.base import Allocation, Allocator, BaseAllocator, Constraints, validate_returns
from strategies.baselines import EqualWeight, InverseVolatility
from strategies.errors import ConstraintError, InputError, NoFreedomWarning

__all__ = [
    "Allocation",
    "Allocator",
    "BaseAllocator",
    "ConstraintError",
    "Constraints",
    "EqualWeight",
    "InputError",
    "InverseVolatility",
    "NoFreedomWarning",
    "validate_returns",
]
