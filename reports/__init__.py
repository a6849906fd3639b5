"""Everything a person reads: metrics, figures, HTML tearsheets and comparison reports.

Works on plain pandas/numpy objects and metadata dicts; imports none of the other packages.
This is AlphaPulse Backtest's ``reports`` package (PyPI has an unrelated package of this name).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "compute_metrics": "reports.metrics",
    "write_report": "reports.html",
    "write_comparison": "reports.html",
    "METRICS": "reports.metrics",
    "drawdown": "reports.metrics",
    "monthly_returns": "reports.metrics",
    "rebalance_diagnostics": "reports.metrics",
    "returns_from_equity": "reports.metrics",
    "rolling_sharpe": "reports.metrics",
    "rolling_volatility": "reports.metrics",
    "regime_performance": "reports.regimes",
    "sweep_heatmap": "reports.figures",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
