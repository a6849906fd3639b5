"""Figures beyond one equity curve: the allocator's last decision (efficient frontier, HRP
dendrogram) and studies over many runs (performance by market regime, sweep heatmaps).

Same conventions as :mod:`reports.figures`, which re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.figure_base import LINE_COLORS, figure_layout, plot_text
from reports.validation import check_frame


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
    frontier = check_frame(frontier, "frontier", ("return", "volatility", "sharpe"))
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
        layout=figure_layout(
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
    layout = figure_layout(
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
    table = check_frame(table, "table", ("strategy", "regime_type", "regime", value))
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
        layout=figure_layout(
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
    table = check_frame(table, "table", need)
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
            index=y,
            columns=x,
            values=value,
            # any groupby reduction name works; the stubs' Literal lists only some
            aggfunc=cast(Any, agg or "first"),
            dropna=False,
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
    layout = figure_layout(
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
