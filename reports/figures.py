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
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from reports.metrics import (
    _check_equity,
    _check_frame,
    drawdown,
    monthly_returns,
    rolling_sharpe,
    rolling_volatility,
)

__all__ = [
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

LINE_COLORS = list(qualitative.D3)  # 10 colours for lines
AREA_COLORS = [
    *qualitative.T10,
    *qualitative.D3,
    *qualitative.Set3,
]  # 32 colours for stacked weights
_BENCH = {"color": "#555555", "dash": "dot", "width": 1.5}
_TEMPLATE = {
    "layout": {
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "colorway": LINE_COLORS,
        "xaxis": {"gridcolor": "#eeeeee", "zeroline": False, "linecolor": "#cccccc"},
        "yaxis": {"gridcolor": "#eeeeee", "zeroline": False, "linecolor": "#cccccc"},
        "hoverlabel": {"namelength": -1},
        "legend": {"orientation": "h", "y": -0.15},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
    }
}
MAX_LINE_POINTS = 4000
MAX_AREA_POINTS = 500
MAX_BARS = 400


def plot_text(value: object) -> str:
    """Escape user text for plotly: ``<``, ``>`` and ``&`` become entities that plotly shows literally.

    >>> plot_text("<script>x</script>")
    '&lt;script&gt;x&lt;/script&gt;'
    """
    return html.escape(str(value), quote=False)


def _ms(index: pd.Index) -> np.ndarray:
    """Epoch milliseconds (float64) of a DatetimeIndex, for a plotly ``date`` axis (read as UTC)."""
    return pd.DatetimeIndex(index).as_unit("ns").asi8 / 1e6


def _f32(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _thin(n: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spaced positions in ``range(n)``, first and last included."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def _layout(title: str, height: int = 380, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": plot_text(title), "x": 0.01},
        "height": height,
        "template": _TEMPLATE,
        "xaxis": {"type": "date"},
    }
    layout.update(extra)
    return layout


def _line(series: pd.Series, name: str, max_points: int, **style: Any) -> dict[str, Any]:
    pos = _thin(len(series), max_points)
    return {
        "type": "scatter",
        "mode": "lines",
        "name": plot_text(name),
        "x": _ms(series.index[pos]),
        "y": _f32(series.to_numpy(dtype=np.float64)[pos]),
        **style,
    }


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
    equity = _check_equity(equity)
    data = [_line(equity, name, max_points, line={"width": 2})]
    if benchmark is not None:
        data.append(
            _line(_check_equity(benchmark, "benchmark"), benchmark_name, max_points, line=_BENCH)
        )
    layout = _layout(
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
        _line(_check_equity(eq, f"equities[{k!r}]"), k, max_points, line={"width": 1.8})
        for k, eq in equities.items()
    ]
    if benchmark is not None:
        data.append(
            _line(_check_equity(benchmark, "benchmark"), "benchmark", max_points, line=_BENCH)
        )
    return go.Figure(
        data=data,
        layout=_layout(
            "Equity by strategy" + (" (log scale)" if log else ""),
            height=440,
            yaxis={"type": "log" if log else "linear"},
        ),
    )


def _drawdown_trace(equity: pd.Series, name: str, max_points: int, **style: Any) -> dict[str, Any]:
    dd = drawdown(equity).to_numpy()
    pos = _thin(len(dd), max_points)
    if len(pos) < len(dd):
        dd = np.minimum.reduceat(dd, pos)
    return {
        "type": "scatter",
        "mode": "lines",
        "name": plot_text(name),
        "x": _ms(equity.index[pos]),
        "y": _f32(dd),
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
            _check_equity(eq, f"equity[{k!r}]"),
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
                _check_equity(benchmark, "benchmark"), "benchmark", max_points, line=_BENCH
            )
        )
    return go.Figure(data=data, layout=_layout("Drawdown", height=300, yaxis={"tickformat": ".0%"}))


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
    pos = _thin(len(weights), max_points)
    w = np.nan_to_num(weights.to_numpy(dtype=np.float64)[pos])
    order = np.argsort(-w.mean(axis=0), kind="stable") if w.size else np.arange(w.shape[1])
    columns = [weights.columns[i] for i in order[:max_assets]]
    series = [w[:, i] for i in order[:max_assets]]
    if len(order) > max_assets:
        columns.append(f"other ({len(order) - max_assets})")
        series.append(w[:, order[max_assets:]].sum(axis=1))
    x = _ms(weights.index[pos])
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "stackgroup": "w",
            "name": plot_text(c),
            "x": x,
            "y": _f32(y),
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
            "y": _f32(cash),
            "line": {"width": 0.5, "color": "#dddddd"},
        }
    )
    return go.Figure(
        data=data,
        layout=_layout(
            title, height=420, yaxis={"tickformat": ".0%", "range": [0, 1.0]}, hovermode="x unified"
        ),
    )


def rebalance_figure(rebalances: pd.DataFrame, *, max_bars: int = MAX_BARS) -> go.Figure:
    """Turnover (top) and costs paid (bottom, stacked fees / slippage / impact) per rebalance.

    More than ``max_bars`` rebalances are summed into ``max_bars`` consecutive buckets.
    """
    rebalances = _check_frame(
        rebalances, "rebalances", ("time", "turnover", "fees", "slippage", "impact")
    )
    cols = ["turnover", "fees", "slippage", "impact"]
    values = rebalances[cols].to_numpy(dtype=np.float64)
    pos = _thin(len(rebalances), max_bars)
    suffix = ""
    if len(pos) < len(rebalances):
        values = np.add.reduceat(values, pos, axis=0)
        suffix = f" (summed over ~{len(rebalances) / len(pos):.0f} rebalances per bar)"
    x = _ms(pd.DatetimeIndex(rebalances["time"])[pos])
    data: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": "turnover",
            "x": x,
            "y": _f32(values[:, 0]),
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
                "y": _f32(values[:, i]),
                "marker": {"color": color},
                "xaxis": "x2",
                "yaxis": "y2",
            }
        )
    layout = _layout(
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
        styled["benchmark"] = (benchmark, _BENCH)
    data = []
    for name, (eq, style) in styled.items():
        rs = rolling_sharpe(
            eq, window, periods_per_year=periods_per_year, risk_free_rate=risk_free_rate
        )
        rv = rolling_volatility(eq, window, periods_per_year=periods_per_year)
        data.append(
            _line(rs, f"{name} Sharpe", max_points, line=style, legendgroup=plot_text(name))
        )
        data.append(
            _line(
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
    layout = _layout(
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
    "Year",
]


def monthly_returns_figure(equity: pd.Series, initial_value: float | None = None) -> go.Figure:
    """Heatmap of compounded monthly returns (UTC months), with the year's return in the last column."""
    table = monthly_returns(equity, initial_value)
    year = (1.0 + table.fillna(0.0)).prod(axis=1) - 1.0
    z = np.column_stack([table.to_numpy(dtype=np.float64), year.to_numpy()])
    limit = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    data = [
        {
            "type": "heatmap",
            "z": _f32(z),
            "x": _MONTHS,
            "y": [str(y) for y in table.index],
            "colorscale": "RdYlGn",
            "zmid": 0.0,
            "zmin": -limit,
            "zmax": limit,
            "texttemplate": "%{z:.1%}",
            "hovertemplate": "%{y} %{x}: %{z:.2%}<extra></extra>",
            "colorbar": {"tickformat": ".0%"},
            "xgap": 2,
            "ygap": 2,
        }
    ]
    layout = _layout(
        "Monthly returns",
        height=max(220, 60 + 32 * len(table)),
        xaxis={"type": "category", "side": "top"},
        yaxis={"type": "category", "autorange": "reversed"},
    )
    return go.Figure(data=data, layout=layout)


def frontier_figure(
    frontier: pd.DataFrame,
    chosen: Mapping[str, float] | None = None,
    *,
    title: str = "Efficient frontier",
    top_weights: int = 8,
) -> go.Figure:
    """Efficient frontier (volatility vs return, coloured by Sharpe) with the chosen portfolio marked.

    Parameters
    ----------
    frontier : DataFrame of shape (n_points, 3 + n_assets)
        Columns ``return``, ``volatility``, ``sharpe`` (annualised) and one weight column per asset.
    chosen : mapping, optional
        ``{"return": ..., "volatility": ...}`` of the chosen portfolio (drawn as a star).
    """
    frontier = _check_frame(frontier, "frontier", ("return", "volatility", "sharpe"))
    assets = [c for c in frontier.columns if c not in ("return", "volatility", "sharpe")]
    w = frontier[assets].to_numpy(dtype=np.float64) if assets else np.zeros((len(frontier), 0))
    labels = [plot_text(a) for a in assets]
    hover = []
    for row in w:
        top = np.argsort(-row, kind="stable")[:top_weights]
        hover.append("<br>".join(f"{labels[i]}: {row[i]:.1%}" for i in top if row[i] > 5e-4))
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "frontier",
            "x": frontier["volatility"].to_numpy(dtype=np.float64),
            "y": frontier["return"].to_numpy(dtype=np.float64),
            "text": hover,
            "marker": {
                "color": frontier["sharpe"].to_numpy(dtype=np.float64),
                "colorscale": "Viridis",
                "size": 7,
                "showscale": True,
                "colorbar": {"title": {"text": "Sharpe"}},
            },
            "hovertemplate": "vol %{x:.2%}, return %{y:.2%}<br>%{text}<extra></extra>",
        }
    ]
    if chosen is not None:
        missing = {"return", "volatility"} - set(chosen)
        if missing:
            raise ValueError(
                f"`chosen` must have keys 'return' and 'volatility'; missing {sorted(missing)}"
            )
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "chosen portfolio",
                "x": [float(chosen["volatility"])],
                "y": [float(chosen["return"])],
                "marker": {
                    "symbol": "star",
                    "size": 18,
                    "color": "#d62728",
                    "line": {"width": 1, "color": "black"},
                },
            }
        )
    return go.Figure(
        data=data,
        layout=_layout(
            title,
            height=420,
            xaxis={"title": {"text": "volatility (ann.)"}, "tickformat": ".0%"},
            yaxis={"title": {"text": "return (ann.)"}, "tickformat": ".0%"},
        ),
    )


def dendrogram_figure(
    linkage: np.ndarray, labels: Sequence[str], *, title: str = "HRP dendrogram"
) -> go.Figure:
    """Dendrogram of a SciPy-style linkage matrix, leaves in the quasi-diagonal order.

    Parameters
    ----------
    linkage : ndarray of shape (n_assets - 1, 4)
        Linkage matrix (as from ``scipy.cluster.hierarchy.linkage``).
    labels : sequence of str of length n_assets
        Leaf labels.
    """
    from scipy.cluster.hierarchy import dendrogram  # heavy import, only when a dendrogram is drawn

    z = np.asarray(linkage, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != 4 or z.shape[0] != len(labels) - 1:
        raise ValueError(
            f"`linkage` must have shape (n_labels - 1, 4) = ({len(labels) - 1}, 4); got {z.shape}"
        )
    tree = dendrogram(z, no_plot=True, labels=[str(s) for s in labels])
    xs: list[float | None] = []
    ys: list[float | None] = []
    for ic, dc in zip(tree["icoord"], tree["dcoord"], strict=True):
        xs.extend([*ic, None])
        ys.extend([*dc, None])
    n = len(tree["ivl"])
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "x": xs,
            "y": ys,
            "hoverinfo": "skip",
            "line": {"color": "#4e79a7", "width": 1.5},
            "showlegend": False,
        }
    ]
    layout = _layout(
        title,
        height=400,
        xaxis={
            "type": "linear",
            "tickmode": "array",
            "tickvals": [5.0 + 10.0 * i for i in range(n)],
            "ticktext": [plot_text(s) for s in tree["ivl"]],
            "tickangle": -45,
            "range": [0, 10.0 * n],
            "showgrid": False,
        },
        yaxis={"title": {"text": "distance"}},
        margin={"l": 60, "r": 20, "t": 50, "b": 130},
    )
    return go.Figure(data=data, layout=layout)


_VALUE_LABELS = {
    "ann_return": "Annualised return",
    "total_return": "Total return",
    "volatility": "Annualised volatility",
    "max_drawdown": "Max drawdown",
}


def regime_figure(table: pd.DataFrame, *, value: str = "ann_return") -> go.Figure:
    """Grouped bars of ``value`` (default annualised return) per regime and strategy.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`reports.regimes.regime_performance`.
    """
    table = _check_frame(table, "table", ("strategy", "regime_type", "regime", value))
    sub = table[table["regime_type"] != "all"]
    data = []
    for i, (name, group) in enumerate(sub.groupby("strategy", sort=False)):
        data.append(
            {
                "type": "bar",
                "name": plot_text(name),
                "x": [plot_text(r) for r in group["regime"]],
                "y": group[value].to_numpy(dtype=np.float64),
                "marker": {"color": "#777777" if name == "benchmark" else LINE_COLORS[i % 10]},
            }
        )
    return go.Figure(
        data=data,
        layout=_layout(
            f"{_VALUE_LABELS.get(value, value)} by market regime",
            height=360,
            barmode="group",
            xaxis={"type": "category"},
            yaxis={"tickformat": ".0%"},
        ),
    )


def sweep_heatmap(
    table: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    facet: str | None = None,
    *,
    agg: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """Heatmap of a sweep result: ``value`` over a grid of ``x`` by ``y``, one panel per ``facet``.

    Parameters
    ----------
    table : DataFrame
        Tidy sweep table, one row per grid point.
    x, y, value : str
        Columns for the heatmap axes and colour.
    facet : str, optional
        Column whose values each get their own panel (shared colour scale).
    agg : str, optional
        How to combine several rows in one cell (``"mean"``, ``"median"``, ``"max"`` ...). Without it,
        duplicated cells raise (filter the other grid dimensions first).

    Examples
    --------
    >>> t = pd.DataFrame({"lookback": [30, 30, 90, 90], "freq": ["1W", "1M"] * 2, "sharpe": [1.0, 1.2, 0.8, 0.9]})
    >>> sweep_heatmap(t, "lookback", "freq", "sharpe").data[0].type
    'heatmap'
    """
    need = tuple(c for c in (x, y, value, facet) if c is not None)
    table = _check_frame(table, "table", need)
    keys = [c for c in (facet, x, y) if c is not None]
    counts = table.groupby(keys, sort=False, dropna=False).size()
    if agg is None and (counts > 1).any():
        raise ValueError(
            f"`table` has {int((counts > 1).sum())} cells of ({', '.join(keys)}) with several rows; "
            f"filter the other sweep dimensions, facet by one of them, or pass `agg` (e.g. agg='mean')"
        )
    facets = list(pd.unique(table[facet])) if facet else [None]
    vals = table[value].to_numpy(dtype=np.float64)
    lo, hi = (
        (float(np.nanmin(vals)), float(np.nanmax(vals))) if np.isfinite(vals).any() else (0.0, 1.0)
    )
    data, layout_axes = [], {}
    gap = 0.04
    width = (1.0 - gap * (len(facets) - 1)) / len(facets)
    for i, f in enumerate(facets):
        sub = table if facet is None else table[table[facet] == f]
        grid = sub.pivot_table(
            index=y, columns=x, values=value, aggfunc=agg or "first", dropna=False
        )
        suffix = "" if i == 0 else str(i + 1)
        data.append(
            {
                "type": "heatmap",
                "z": grid.to_numpy(dtype=np.float64),
                "x": [plot_text(c) for c in grid.columns],
                "y": [plot_text(r) for r in grid.index],
                "coloraxis": "coloraxis",
                "xaxis": f"x{suffix}",
                "yaxis": f"y{suffix}",
                "texttemplate": "%{z:.3g}",
                "hovertemplate": f"{plot_text(x)}=%{{x}}<br>{plot_text(y)}=%{{y}}<br>"
                f"{plot_text(value)}=%{{z:.4g}}<extra></extra>",
            }
        )
        start = i * (width + gap)
        layout_axes[f"xaxis{suffix}"] = {
            "type": "category",
            "domain": [start, start + width],
            "anchor": f"y{suffix}",
            "title": {"text": plot_text(x if facet is None else f"{x} | {facet}={f}")},
        }
        layout_axes[f"yaxis{suffix}"] = {
            "type": "category",
            "anchor": f"x{suffix}",
            "title": {"text": plot_text(y) if i == 0 else ""},
        }
    layout = _layout(
        title or f"{value} by {x} and {y}",
        height=420,
        coloraxis={
            "colorscale": "Viridis",
            "cmin": lo,
            "cmax": hi if hi > lo else lo + 1e-12,
            "colorbar": {"title": {"text": plot_text(value)}},
        },
    )
    layout.update(layout_axes)
    return go.Figure(data=data, layout=layout)
