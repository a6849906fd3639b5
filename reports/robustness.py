"""The robustness page: how a backtest's figures spread when the market takes other paths.

Works on plain objects, like the rest of ``reports``: the per-sample table (one row per sample and
strategy, metric columns), the point estimates (one row per strategy), an interval table, the
"A beats B" matrix and the equity quantiles of the fan chart. One self-contained HTML file on the
tearsheet's base template.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.metrics import METRICS
from reports.tables import format_metric

__all__ = ["distribution_figure", "fan_chart", "write_robustness_report"]

_TEMPLATE = """{% extends "_titled.html.j2" %}
{% block sections %}
<section id="intervals">
<h2>{{ level }} intervals</h2>
<p class="sub">{{ n_samples }} stationary block bootstraps of the market (mean block {{ block }} bars,
seed {{ seed }}); on each the whole walk-forward ran again: estimation, the allocator's decisions,
the rebalancing with costs. The interval is the central {{ level }} of the samples; the point is the
backtest on the data itself.</p>
<div class="wide"><table id="interval-table"><thead><tr><th class="text">strategy</th>
<th class="text">metric</th><th>point</th><th>low</th><th>median</th><th>high</th></tr></thead>
<tbody>{% for r in intervals %}<tr><td class="text">{{ r.strategy }}</td><td class="text">{{ r.metric }}</td>
<td>{{ r.point }}</td><td>{{ r.low }}</td><td>{{ r.median }}</td><td>{{ r.high }}</td></tr>{% endfor %}</tbody>
</table></div>
</section>
{% if beats %}
<section id="beats">
<h2>Which strategy wins on the same paths</h2>
<p class="sub">The share of resampled paths on which the row strategy's Sharpe ratio is higher than
the column strategy's (ties count half).</p>
<div class="wide"><table id="beats-table"><thead><tr><th class="text">P(row beats column)</th>
{% for c in beats.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for r in beats.rows %}<tr><td class="text">{{ r.name }}</td>{% for v in r["values"] %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table></div>
</section>
{% endif %}
<section id="distributions">
<h2>Distributions</h2>
{% for f in figures %}<div class="figure" id="{{ f.id }}" data-key="{{ f.key }}"></div>{% endfor %}
</section>
{% if notes %}<section id="notes"><h2>Notes</h2><ul>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul></section>{% endif %}
{% endblock %}
"""


def _label(metric: str) -> str:
    return METRICS[metric].label if metric in METRICS else metric


def distribution_figure(
    table: pd.DataFrame, point: pd.DataFrame, metric: str, intervals: pd.DataFrame | None = None
) -> Any:
    """Histogram of ``metric`` across samples, one trace per strategy, the point estimates as
    vertical lines (and the interval bounds dotted, when ``intervals`` is given)."""
    import plotly.graph_objects as go

    label = _label(metric)
    points = point.to_dict("index")
    bounds = (
        {}
        if intervals is None
        else intervals.reset_index().set_index(["strategy", "metric"]).to_dict("index")
    )
    fig = go.Figure()
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
    for k, (name, group) in enumerate(table.groupby("strategy", sort=False)):
        color = palette[k % len(palette)]
        values = group[metric].to_numpy(dtype=np.float64)
        fig.add_trace(
            go.Histogram(
                x=values[np.isfinite(values)],
                name=str(name),
                opacity=0.55,
                marker={"color": color},
                nbinsx=40,
            )
        )
        fig.add_vline(x=float(points[name][metric]), line={"color": color, "width": 2})
        if (name, metric) in bounds:
            for bound in ("low", "high"):
                fig.add_vline(
                    x=float(bounds[(name, metric)][bound]),
                    line={"color": color, "width": 1, "dash": "dot"},
                )
    fig.update_layout(
        title={"text": f"{label} across resampled paths (line: the data itself)", "x": 0.01},
        barmode="overlay",
        height=340,
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def fan_chart(fan: pd.DataFrame, equity: pd.Series | None = None, name: str = "") -> Any:
    """Equity fan: the 5-95% and 25-75% bands and the median of the resampled equity paths
    (``fan``: columns are quantiles, rows bars), with the actual ``equity`` over it."""
    import plotly.graph_objects as go

    from reports.figure_base import epoch_ms, figure_layout

    x = pd.to_datetime(epoch_ms(fan.index), unit="ms", utc=True)
    fig = go.Figure()
    cols = sorted(float(c) for c in fan.columns)
    pairs = [
        (cols[0], cols[-1], "rgba(31,119,180,0.15)"),
        (cols[1], cols[-2], "rgba(31,119,180,0.3)"),
    ]
    for low, high, fill in pairs if len(cols) >= 4 else pairs[:1]:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=fan[high],
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=fan[low],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=fill,
                name=f"{low:.0%}-{high:.0%} of resampled paths",
            )
        )
    middle = cols[len(cols) // 2]
    fig.add_trace(
        go.Scatter(
            x=x,
            y=fan[middle],
            mode="lines",
            name="median path",
            line={"color": "#1f77b4", "dash": "dash"},
        )
    )
    if equity is not None:
        fig.add_trace(
            go.Scatter(
                x=pd.to_datetime(epoch_ms(equity.index), unit="ms", utc=True),
                y=equity.to_numpy(dtype=np.float64),
                mode="lines",
                name=name or "the data",
                line={"color": "#000000", "width": 1.5},
            )
        )
    fig.update_layout(
        figure_layout(
            "Equity: the data against its resampled paths",
            420,
            yaxis={"type": "log", "title": {"text": "equity"}},
            legend={"orientation": "h", "y": -0.15},
        )
    )
    return fig


def write_robustness_report(
    out_dir: str | os.PathLike[str],
    table: pd.DataFrame,
    point: pd.DataFrame,
    intervals: pd.DataFrame,
    *,
    fan: pd.DataFrame | None = None,
    equity: pd.Series | None = None,
    beats: pd.DataFrame | None = None,
    metrics: Sequence[str] = ("sharpe", "cagr", "max_drawdown", "cost_drag_bps"),
    meta: Mapping[str, Any] | None = None,
    filename: str = "robustness.html",
) -> Path:
    """Write the robustness page and return its path.

    ``table``: one row per (sample, strategy) with ``strategy`` and metric columns; ``point``: the
    metrics on the data (index: strategy); ``intervals``: rows ``(strategy, metric)`` with
    ``point``, ``low``, ``median``, ``high``, ``level``; ``fan``: equity quantiles per bar of the
    first strategy, ``equity`` its actual equity; ``beats``: ``P(row beats column)``; ``meta``:
    ``title``, ``subtitle``, ``synthetic``, ``notes``, ``block_length``, ``seed``.
    """
    from reports.page import ensure_out_dir, figure_blocks, render_page, write_text_atomic

    meta = dict(meta or {})
    rows = []
    for r in intervals.reset_index().to_dict("records"):
        metric = str(r["metric"])
        if metric not in metrics:
            continue
        rows.append(
            {
                "strategy": r["strategy"],
                "metric": _label(metric),
                **{k: format_metric(metric, r[k]) for k in ("point", "low", "median", "high")},
            }
        )
    figures = []
    if fan is not None:
        figures.append(("fan", fan_chart(fan, equity, str(point.index[0]))))
    figures += [(m, distribution_figure(table, point, m, intervals)) for m in metrics]
    level = float(intervals["level"].iloc[0]) if len(intervals) else 0.9
    beat_block = None
    if beats is not None and len(beats) > 1:
        beat_block = {
            "columns": [str(c) for c in beats.columns],
            "rows": [
                {"name": str(i), "values": ["" if not np.isfinite(v) else f"{v:.0%}" for v in row]}
                for i, row in zip(beats.index, beats.to_numpy(dtype=np.float64), strict=True)
            ],
        }
    n_samples = int(table["sample"].nunique()) if "sample" in table else len(table)
    context = {
        "title": str(meta.get("title") or "Robustness: the whole pipeline resampled"),
        "subtitle": str(meta.get("subtitle") or f"{n_samples} resampled paths"),
        "synthetic": bool(meta.get("synthetic", False)),
        "level": f"{level:.0%}",
        "n_samples": n_samples,
        "block": f"{float(meta.get('block_length', math.nan)):.1f}",
        "seed": meta.get("seed", ""),
        "intervals": rows,
        "beats": beat_block,
        "notes": [str(n) for n in meta.get("notes") or []],
        "figures": figure_blocks(figures),
    }
    page = render_page("robustness.html.j2", context, inline={"robustness.html.j2": _TEMPLATE})
    path = ensure_out_dir(out_dir) / filename
    write_text_atomic(path, page)
    return path
