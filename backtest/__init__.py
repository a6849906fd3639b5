"""The engine: walk-forward allocation, numba rebalancing simulation, sweeps, regression, live.

This is AlphaPulse Backtest's ``backtest`` package (PyPI has an unrelated package of this name).
Public names are imported lazily so that ``backtest --help`` starts fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "run_backtest": "backtest.engine",
    "Costs": "backtest.costs",
    "BacktestResult": "backtest.result",
    "load_config": "backtest.config",
    "ExperimentConfig": "backtest.config",
    "PortfolioAnalyzer": "backtest.live",
    "Schedule": "backtest.schedule",
    "run_sweep": "backtest.sweep",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'backtest' has no attribute {name!r}")
