"""Metric tables of the reports: formatted values, grouped rows with the best value flagged.

Shared by the tearsheet and the comparison (:mod:`reports.html`, which re-exports the public names)
and the sweep report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from reports.metrics import METRICS

HEADLINE = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "volatility",
    "turnover",
    "cost_drag_bps",
)
GROUPS: dict[str, tuple[str, ...]] = {
    "Returns": (
        "start_value",
        "end_value",
        "years",
        "n_periods",
        "total_return",
        "cagr",
        "best_period",
        "worst_period",
        "hit_rate",
    ),
    "Risk": (
        "volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "max_drawdown_duration_bars",
        "max_drawdown_duration_days",
        "calmar",
        "var_95",
        "cvar_95",
    ),
    "Trading and costs": (
        "exposure",
        "turnover",
        "n_trades",
        "fees",
        "slippage",
        "impact",
        "total_costs",
        "cost_drag_bps",
        "n_rebalances",
        "mean_rebalance_turnover",
        "n_fallbacks",
    ),
    "Against the benchmark": ("tracking_error", "information_ratio", "beta", "correlation"),
}


def format_metric(name: str, value: float | None) -> str:
    """Human-readable value of a metric (``"12.34%"``, ``"1.23"``, ``"45.0 bps"``, ``"n/a"`` for NaN).

    >>> format_metric("cagr", 0.1234), format_metric("sharpe", float("nan"))
    ('12.34%', 'n/a')
    """
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    fmt = METRICS[name].fmt if name in METRICS else "float"
    if fmt == "pct":
        return f"{value:.2%}"
    if fmt == "ratio":
        return f"{value:.2f}"
    if fmt in ("int", "bars"):
        return f"{value:,.0f}"
    if fmt == "money":
        return f"{value:,.2f}"
    if fmt == "bps":
        return f"{value:,.1f} bps"
    if fmt == "days":
        return f"{value:,.1f} d"
    return f"{value:,.4g}"


def metrics_frame(metrics_by_name: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Side-by-side table (metrics x columns) of several metric dicts, rows in ``METRICS`` order."""
    frame = pd.DataFrame(
        {k: pd.Series(dict(v), dtype=np.float64) for k, v in metrics_by_name.items()}
    )
    order = [m for m in METRICS if m in frame.index] + [m for m in frame.index if m not in METRICS]
    return frame.reindex(order)


def metric_table_rows(
    columns: Mapping[str, Mapping[str, float]],
    *,
    n_compete: int = 0,
    intervals: Mapping[str, tuple[float, float]] | None = None,
) -> list[dict[str, Any]]:
    """Grouped table rows: group, label, formula, one formatted cell per column.

    Among the first ``n_compete`` columns (the strategies, not the benchmark) the best value of each
    metric with a direction is flagged, unless they all tie. ``intervals`` (metric -> ``(low,
    high)``, e.g. a bootstrap's) adds a last cell ``low to high`` (empty for a metric without one).
    """
    rows = []
    for group, names in GROUPS.items():
        for name in names:
            values = [float(columns[c].get(name, math.nan)) for c in columns]
            if not any(math.isfinite(v) for v in values):
                continue
            spec = METRICS[name]
            winner = None
            finite = [(v, i) for i, v in enumerate(values[:n_compete]) if math.isfinite(v)]
            if (
                spec.higher_is_better is not None
                and len(finite) > 1
                and len({v for v, _ in finite}) > 1
            ):
                winner = (max if spec.higher_is_better else min)(finite, key=lambda vi: vi[0])[1]
            rows.append(
                {
                    "group": group,
                    "name": name,
                    "label": spec.label,
                    "formula": spec.description,
                    "cells": [
                        {"text": format_metric(name, v), "best": i == winner}
                        for i, v in enumerate(values)
                    ]
                    + ([_interval_cell(name, intervals)] if intervals is not None else []),
                }
            )
    return rows


def _interval_cell(name: str, intervals: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    return {"text": interval_text(name, intervals), "best": False}


def interval_text(name: str, intervals: Mapping[str, tuple[float, float]] | None) -> str:
    """``"low to high"`` of metric ``name`` in ``intervals`` (metric -> ``(low, high)``), formatted
    as the metric is; empty when it has none.

    >>> interval_text("cagr", {"cagr": (0.1, 0.25)})
    '10.00% to 25.00%'
    """
    if not intervals or name not in intervals:
        return ""
    low, high = intervals[name]
    return f"{format_metric(name, low)} to {format_metric(name, high)}"


def regime_table_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of the regime table (:func:`reports.regimes.regime_performance`) with formatted cells."""
    rows: list[dict[str, Any]] = []
    for rec in table.to_dict("records", into=dict):  # dict[Any, Any]: the columns are str
        rows.append(
            {
                **rec,
                "share": f"{rec['share']:.0%}",
                **{
                    k: format_metric("total_return", rec[k])
                    for k in ("total_return", "ann_return", "volatility", "max_drawdown")
                },
            }
        )
    return rows
