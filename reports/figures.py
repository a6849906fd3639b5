"""Plotly figures of a backtest: equity, drawdown, weights, costs, rolling risk, monthly returns,
efficient frontier, dendrogram, strategy overlays and sweep heatmaps.

Each function takes plain pandas/numpy objects and returns a ``plotly.graph_objects.Figure``. The
figures are built to be embedded many to a page:

* time axes carry epoch milliseconds (a plotly ``date`` axis, read as UTC) and every numeric array is
  float32 or float64 NumPy, so plotly serialises them as compact base64 typed arrays;
* long series are thinned to ``max_points`` (drawdowns keep each bucket's minimum, so the deepest
  point survives), stacked weights to ``max_points`` rows and ``max_assets`` series (+ "other");
* any user text (symbol, strategy or parameter names) goes through :func:`plot_text`, so plotly's
  pseudo-HTML never interprets it: ``"<b>"`` in a name is shown as ``<b>``, not bold.

The shared plumbing is in :mod:`reports.figure_base` and the frontier, dendrogram, regime and sweep
figures in :mod:`reports.analysis_figures`; every figure is importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.analysis_figures import (
    dendrogram_figure,
    frontier_figure,
    regime_figure,
    sweep_heatmap,
)
from reports.figure_base import (
    AREA_COLORS,
    BENCHMARK_LINE,
    LINE_COLORS,
    MAX_AREA_POINTS,
    MAX_BARS,
    MAX_LINE_POINTS,
    as_float32,
    epoch_ms,
    figure_layout,
    line_trace,
    plot_text,
    thin_positions,
)
from reports.series import drawdown, monthly_returns, rolling_sharpe, rolling_volatility
from reports.validation import check_equity, check_frame

__all__ = [
    "colour_limit",
    "dendrogram_figure",
    "drawdown_figure",
    "equity_figure",
    "equity_overlay_figure",
    "frontier_figure",
    "monthly_returns_figure",
    "plot_text",
    "rebalance_figure",
    "regime_figure",
    "rolling_figure",
    "sweep_heatmap",
    "weights_figure",
]


def equity_figure(
    equity: pd.Series,
    benchmark: pd.Series | None = None,
    *,
    name: str = "strategy",
    benchmark_name: str = "benchmark",
    log: bool = True,
    max_points: int = MAX_LINE_POINTS,
) -> go.Figure:
    """Equity of the strategy (and benchmark) per bar, log scale by default.

    Parameters
    ----------
    equity, benchmark : Series of shape (n_bars,)
        Portfolio values (quote currency) with a DatetimeIndex.
    """
    equity = check_equity(equity)
    data = [line_trace(equity, name, max_points, line={"width": 2})]
    if benchmark is not None:
        data.append(
            line_trace(
                check_equity(benchmark, "benchmark"),
                benchmark_name,
                max_points,
                line=BENCHMARK_LINE,
            )
        )
    layout = figure_layout(
        "Equity" + (" (log scale)" if log else ""),
        yaxis={
            "type": "log" if log else "linear",
            "title": {"text": "value"},
            **({"dtick": "D2"} if log else {}),
        },
    )
    return go.Figure(data=data, layout=layout)


def equity_overlay_figure(
    equities: Mapping[str, pd.Series],
    benchmark: pd.Series | None = None,
    *,
    log: bool = True,
    max_points: int = MAX_LINE_POINTS,
) -> go.Figure:
    """Equity curves of several strategies on one chart (log scale), benchmark dotted."""
    data = [
        line_trace(check_equity(eq, f"equities[{k!r}]"), k, max_points, line={"width": 1.8})
        for k, eq in equities.items()
    ]
    if benchmark is not None:
        data.append(
            line_trace(
                check_equity(benchmark, "benchmark"), "benchmark", max_points, line=BENCHMARK_LINE
            )
        )
    return go.Figure(
        data=data,
        layout=figure_layout(
            "Equity by strategy" + (" (log scale)" if log else ""),
            height=440,
            yaxis={"type": "log" if log else "linear"},
        ),
    )


def _drawdown_trace(equity: pd.Series, name: str, max_points: int, **style: Any) -> dict[str, Any]:
    dd = drawdown(equity).to_numpy()
    pos = thin_positions(len(dd), max_points)
    if len(pos) < len(dd):
        dd = np.minimum.reduceat(dd, pos)
    return {
        "type": "scatter",
        "mode": "lines",
        "name": plot_text(name),
        "x": epoch_ms(equity.index[pos]),
        "y": as_float32(dd),
        **style,
    }


def drawdown_figure(
    equity: pd.Series | Mapping[str, pd.Series],
    benchmark: pd.Series | None = None,
    *,
    max_points: int = MAX_LINE_POINTS,
) -> go.Figure:
    """Drawdown below the running peak, per bar; a Series or a mapping name -> equity."""
    curves = {"strategy": equity} if isinstance(equity, pd.Series) else dict(equity)
    single = len(curves) == 1
    data = [
        _drawdown_trace(
            check_equity(eq, f"equity[{k!r}]"),
            k,
            max_points,
            fill="tozeroy" if single else None,
            line={"width": 1.2},
        )
        for k, eq in curves.items()
    ]
    if benchmark is not None:
        data.append(
            _drawdown_trace(
                check_equity(benchmark, "benchmark"), "benchmark", max_points, line=BENCHMARK_LINE
            )
        )
    return go.Figure(
        data=data, layout=figure_layout("Drawdown", height=300, yaxis={"tickformat": ".0%"})
    )


def weights_figure(
    weights: pd.DataFrame,
    *,
    title: str = "Realised weights",
    max_points: int = MAX_AREA_POINTS,
    max_assets: int = 24,
) -> go.Figure:
    """Stacked realised weights per bar, with cash (1 - row sum) on top.

    Parameters
    ----------
    weights : DataFrame of shape (n_bars, n_assets)
        Realised weights, DatetimeIndex; NaN counts as 0.
    max_points : int
        Rows kept (evenly spaced, last row included).
    max_assets : int
        Assets drawn individually (largest mean weight first); the rest are summed as "other".
    """
    if not isinstance(weights, pd.DataFrame) or not isinstance(weights.index, pd.DatetimeIndex):
        raise TypeError("`weights` must be a DataFrame (bars x symbols) with a DatetimeIndex")
    pos = thin_positions(len(weights), max_points)
    w = np.nan_to_num(weights.to_numpy(dtype=np.float64)[pos])
    order = np.argsort(-w.mean(axis=0), kind="stable") if w.size else np.arange(w.shape[1])
    columns = [weights.columns[i] for i in order[:max_assets]]
    series = [w[:, i] for i in order[:max_assets]]
    if len(order) > max_assets:
        columns.append(f"other ({len(order) - max_assets})")
        series.append(w[:, order[max_assets:]].sum(axis=1))
    x = epoch_ms(weights.index[pos])
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "stackgroup": "w",
            "name": plot_text(c),
            "x": x,
            "y": as_float32(y),
            "line": {"width": 0.5, "color": AREA_COLORS[i % len(AREA_COLORS)]},
        }
        for i, (c, y) in enumerate(zip(columns, series, strict=True))
    ]
    cash = np.clip(1.0 - w.sum(axis=1), 0.0, None)
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "stackgroup": "w",
            "name": "cash",
            "x": x,
            "y": as_float32(cash),
            "line": {"width": 0.5, "color": "#dddddd"},
        }
    )
    return go.Figure(
        data=data,
        layout=figure_layout(
            title, height=420, yaxis={"tickformat": ".0%", "range": [0, 1.0]}, hovermode="x unified"
        ),
    )


def rebalance_figure(rebalances: pd.DataFrame, *, max_bars: int = MAX_BARS) -> go.Figure:
    """Turnover (top) and costs paid (bottom, stacked fees / slippage / impact) per rebalance.

    More than ``max_bars`` rebalances are summed into ``max_bars`` consecutive buckets.
    """
    rebalances = check_frame(
        rebalances, "rebalances", ("time", "turnover", "fees", "slippage", "impact")
    )
    cols = ["turnover", "fees", "slippage", "impact"]
    values = rebalances[cols].to_numpy(dtype=np.float64)
    pos = thin_positions(len(rebalances), max_bars)
    suffix = ""
    if len(pos) < len(rebalances):
        values = np.add.reduceat(values, pos, axis=0)
        suffix = f" (summed over ~{len(rebalances) / len(pos):.0f} rebalances per bar)"
    x = epoch_ms(pd.DatetimeIndex(rebalances["time"])[pos])
    data: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": "turnover",
            "x": x,
            "y": as_float32(values[:, 0]),
            "marker": {"color": "#4e79a7"},
            "yaxis": "y",
            "xaxis": "x",
        }
    ]
    for i, (c, color) in enumerate(
        zip(cols[1:], ["#e15759", "#f28e2b", "#b07aa1"], strict=True), 1
    ):
        data.append(
            {
                "type": "bar",
                "name": c,
                "x": x,
                "y": as_float32(values[:, i]),
                "marker": {"color": color},
                "xaxis": "x2",
                "yaxis": "y2",
            }
        )
    layout = figure_layout(
        "Turnover and costs per rebalance" + suffix,
        height=440,
        barmode="stack",
        yaxis={"domain": [0.55, 1.0], "tickformat": ".0%", "title": {"text": "turnover"}},
        xaxis={"type": "date", "anchor": "y", "matches": "x2", "showticklabels": False},
        xaxis2={"type": "date", "anchor": "y2"},
        yaxis2={"domain": [0.0, 0.45], "title": {"text": "costs (quote)"}, "anchor": "x2"},
    )
    return go.Figure(data=data, layout=layout)


def rolling_figure(
    equity: pd.Series | Mapping[str, pd.Series],
    benchmark: pd.Series | None = None,
    *,
    window: int,
    periods_per_year: float,
    risk_free_rate: float = 0.02,
    max_points: int = MAX_LINE_POINTS,
) -> go.Figure:
    """Rolling Sharpe (top) and rolling annualised volatility (bottom) over ``window`` bars.

    ``equity`` is one Series or a mapping name -> equity (one line per strategy).
    """
    curves = {"strategy": equity} if isinstance(equity, pd.Series) else dict(equity)
    styled = {
        k: (eq, {"width": 1.6, "color": LINE_COLORS[i % len(LINE_COLORS)]})
        for i, (k, eq) in enumerate(curves.items())
    }
    if benchmark is not None:
        styled["benchmark"] = (benchmark, BENCHMARK_LINE)
    data = []
    for name, (eq, style) in styled.items():
        rs = rolling_sharpe(
            eq, window, periods_per_year=periods_per_year, risk_free_rate=risk_free_rate
        )
        rv = rolling_volatility(eq, window, periods_per_year=periods_per_year)
        data.append(
            line_trace(rs, f"{name} Sharpe", max_points, line=style, legendgroup=plot_text(name))
        )
        data.append(
            line_trace(
                rv,
                f"{name} volatility",
                max_points,
                line=style,
                legendgroup=plot_text(name),
                xaxis="x2",
                yaxis="y2",
                showlegend=False,
            )
        )
    layout = figure_layout(
        f"Rolling Sharpe and volatility ({window} bars)",
        height=480,
        yaxis={"domain": [0.55, 1.0], "title": {"text": "Sharpe"}},
        xaxis={"type": "date", "anchor": "y", "matches": "x2", "showticklabels": False},
        xaxis2={"type": "date", "anchor": "y2"},
        yaxis2={
            "domain": [0.0, 0.45],
            "title": {"text": "volatility"},
            "tickformat": ".0%",
            "anchor": "x2",
        },
    )
    return go.Figure(data=data, layout=layout)


def colour_limit(values: Any, quantile: float) -> float:
    """Half-width of a colour scale centred on 0: the ``quantile`` of the finite absolute values
    (their maximum if that is 0, and 1 if there is nothing to show).

    >>> colour_limit(np.array([0.01, -0.02, 0.03, 30.0]), 0.5), colour_limit(np.array([np.nan]), 0.95)
    (0.025, 1.0)
    """
    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    if not finite.size or not finite.max() > 0:
        return 1.0
    limit = float(np.quantile(finite, quantile))
    return limit if limit > 0 else float(finite.max())


def _heat_trace(
    z: np.ndarray, x: list[str], y: list[str], limit: float, scale: bool
) -> dict[str, Any]:
    return {
        "type": "heatmap",
        "z": as_float32(z),
        "x": x,
        "y": y,
        "colorscale": "RdYlGn",
        "zmid": 0.0,
        "zmin": -limit,
        "zmax": limit,
        "texttemplate": "%{z:.1%}",
        "hovertemplate": "%{y} %{x}: %{z:.2%}<extra></extra>",
        "showscale": scale,
        "colorbar": {"tickformat": ".0%", "title": {"text": "month"}},
        "xgap": 2,
        "ygap": 2,
    }


_MONTHS = [
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
]


def monthly_returns_figure(
    equity: pd.Series, initial_value: float | None = None, clip_quantile: float = 0.9
) -> go.Figure:
    """Heatmap of compounded monthly returns (UTC months), with the year's return in a last column.

    The months and the year column (a second heatmap on its own x axis) have separate colour
    scales, both symmetric about 0: on crypto
    data one +3,000% year on the months' scale would paint every month the same colour. The months'
    scale ends at the ``clip_quantile`` quantile of their absolute returns (a few extreme months
    saturate instead of washing out the rest); the year column's at its largest absolute return.
    The cell texts give the exact values.
    """
    table = monthly_returns(equity, initial_value)
    year = (1.0 + table.fillna(0.0)).prod(axis=1) - 1.0
    rows = [str(y) for y in table.index]
    months = table.to_numpy(dtype=np.float64)
    year_trace = _heat_trace(
        year.to_numpy()[:, None], ["Year"], rows, colour_limit(year, 1.0), False
    )
    data = [
        _heat_trace(months, _MONTHS, rows, colour_limit(months, clip_quantile), True),
        {**year_trace, "xaxis": "x2"},  # its own axis beside the months: its own column and scale
    ]
    layout = figure_layout(
        "Monthly returns",
        height=max(220, 60 + 32 * len(table)),
        xaxis={"type": "category", "side": "top", "domain": [0.0, 0.88]},
        xaxis2={"type": "category", "side": "top", "domain": [0.9, 0.98], "anchor": "y"},
        yaxis={"type": "category", "autorange": "reversed"},
    )
    return go.Figure(data=data, layout=layout)
