"""Exceptions and warnings of the `strategies` package (one flat module)."""

from __future__ import annotations


class InputError(ValueError):
    """Returns given to an allocator are malformed (shape, NaN/inf, <= -100%)."""


class ConstraintError(ValueError):
    """Weight constraints are invalid or infeasible."""


class NoFreedomWarning(UserWarning):
    """The bounds admit exactly one portfolio, so the optimiser has no freedom."""


class SolverError(ArithmeticError):
    """The quadratic-programming solver could not solve a problem (infeasible, not PD, iteration limit)."""


class LimitError(RuntimeError):
    """Target weights would break a limit the user set (a bound, a group cap): the run stops."""


class ViewError(ValueError):
    """A Black-Litterman view is malformed or names a symbol the data does not have."""
