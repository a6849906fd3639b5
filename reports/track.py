"""The account-tracking page: an account's value beside the backtest of the same config, its
weights, rebalancing scores and drift, realised against estimated costs and the implementation
shortfall of each rebalance.

Works on plain objects, like the rest of ``reports``: a ``values`` frame (``value``, ``backtest``),
a ``weights`` frame, a ``drift`` series, a ``rebalances`` table (one row per decision) and a
``summary`` dict (what :func:`backtest.live.track.track` returns). One self-contained HTML file on
the tearsheet's base template.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "REBALANCE_COLUMNS",
    "cost_figure",
    "score_figure",
    "value_figure",
    "weights_figure",
    "write_track_report",
]

REBALANCE_COLUMNS = (
    "time",
    "dry_run",
    "score",
    "drift",
    "planned_value",
    "estimated_cost",
    "realised_cost",
    "fees",
    "slippage",
    "opportunity_cost",
    "shortfall",
    "shortfall_bps",
    "backtest_cost",
)

_TEMPLATE = """{% extends "_titled.html.j2" %}
{% block sections %}
<section id="summary">
<h2>Summary</h2>
<div class="cards">{% for c in cards %}<div class="card"><div class="v">{{ c.value }}</div><div class="l">{{ c.label }}</div></div>{% endfor %}</div>
</section>
<section id="charts">
<h2>Charts</h2>
{% for f in figures %}<div class="figure" id="{{ f.id }}" data-key="{{ f.key }}"></div>{% endfor %}
</section>
<section id="rebalances">
<h2>Rebalances</h2>
<p class="sub">Costs in {{ quote }}. Estimated: the plan's fees and slippage under the cost model.
Realised: fees charged plus the fills' distance from the decision price. Shortfall: realised plus
the opportunity cost of what did not fill (its price move to the next snapshot), in bps of the
planned value. Backtest: the cost of the backtest's decision on the same bar.</p>
<div class="wide"><table id="rebalance-table"><thead><tr>
<th class="text">time (UTC)</th><th class="text">kind</th><th>score</th><th>drift</th><th>planned</th>
<th>estimated cost</th><th>realised cost</th><th>fees</th><th>slippage</th><th>opportunity</th>
<th>shortfall</th><th>shortfall (bps)</th><th>backtest cost</th></tr></thead>
<tbody>{% for r in rows %}<tr><td class="text">{{ r.time }}</td><td class="text">{{ r.kind }}</td>
<td>{{ r.score }}</td><td>{{ r.drift }}</td><td>{{ r.planned }}</td><td>{{ r.estimated }}</td>
<td>{{ r.realised }}</td><td>{{ r.fees }}</td><td>{{ r.slippage }}</td><td>{{ r.opportunity }}</td>
<td>{{ r.shortfall }}</td><td>{{ r.bps }}</td><td>{{ r.backtest }}</td></tr>{% endfor %}</tbody>
</table></div>
</section>
{% if notes %}<section id="notes"><h2>Notes</h2><ul>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul></section>{% endif %}
{% endblock %}
"""


def _num(value: Any, fmt: str = "{:,.2f}") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return fmt.format(v) if math.isfinite(v) else "n/a"


def value_figure(values: pd.DataFrame, title: str = "Account value and the backtest") -> Any:
    """The account's ``value`` and the ``backtest`` column (when not all NaN) over time."""
    import plotly.graph_objects as go

    from reports.figure_base import BENCHMARK_LINE, MAX_LINE_POINTS, figure_layout, line_trace

    traces = [line_trace(values["value"], "account", MAX_LINE_POINTS)]
    backtest = values["backtest"].dropna() if "backtest" in values else pd.Series(dtype=float)
    if len(backtest):
        traces.append(
            line_trace(backtest, "backtest, same config", MAX_LINE_POINTS, line=BENCHMARK_LINE)
        )
    return go.Figure(data=traces, layout=figure_layout(title, yaxis={"title": {"text": "value"}}))


def weights_figure(weights: pd.DataFrame) -> Any:
    """Stacked areas of the current weights per asset (cash included)."""
    import plotly.graph_objects as go

    from reports.figure_base import AREA_COLORS, MAX_AREA_POINTS, figure_layout, line_trace

    traces = [
        line_trace(
            weights[c],
            str(c),
            MAX_AREA_POINTS,
            stackgroup="w",
            line={"width": 0.5, "color": AREA_COLORS[k % len(AREA_COLORS)]},
        )
        for k, c in enumerate(weights.columns)
    ]
    layout = figure_layout("Weights", yaxis={"range": [0, 1], "tickformat": ".0%"})
    return go.Figure(data=traces, layout=layout)


def score_figure(rebalances: pd.DataFrame, drift: pd.Series) -> Any:
    """Drift from the last target at every snapshot (line) and each decision's rebalancing score."""
    import plotly.graph_objects as go

    from reports.figure_base import MAX_LINE_POINTS, epoch_ms, figure_layout, line_trace

    traces = [line_trace(drift.dropna(), "drift from the last target", MAX_LINE_POINTS)]
    traces.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": "rebalancing score",
            "x": epoch_ms(pd.DatetimeIndex(rebalances["time"])),
            "y": rebalances["score"].to_numpy(dtype=np.float64),
            "marker": {"size": 8, "symbol": "diamond"},
        }
    )
    layout = figure_layout("Rebalancing score and drift", yaxis={"tickformat": ".0%"})
    return go.Figure(data=traces, layout=layout)


def cost_figure(rebalances: pd.DataFrame) -> Any:
    """Per decision: estimated, realised and backtest costs (bars) and the shortfall in bps (line,
    right axis)."""
    import plotly.graph_objects as go

    from reports.figure_base import figure_layout

    x = [f"{t:%Y-%m-%d %H:%M}" for t in pd.DatetimeIndex(rebalances["time"])]
    traces: list[dict[str, Any]] = []
    for column, name in (
        ("estimated_cost", "estimated"),
        ("realised_cost", "realised"),
        ("backtest_cost", "backtest"),
    ):
        y = rebalances[column].to_numpy(dtype=np.float64)
        if np.isfinite(y).any():
            traces.append({"type": "bar", "name": name, "x": x, "y": y})
    traces.append(
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "shortfall (bps)",
            "x": x,
            "y": rebalances["shortfall_bps"].to_numpy(dtype=np.float64),
            "yaxis": "y2",
        }
    )
    layout = figure_layout(
        "Costs per rebalance: realised against estimated",
        barmode="group",
        xaxis={"type": "category"},
        margin={"l": 60, "r": 60, "t": 50, "b": 40},
        yaxis={"title": {"text": "cost"}},
        yaxis2={
            "title": {"text": "bps"},
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "rangemode": "tozero",
        },
    )
    return go.Figure(data=traces, layout=layout)


def _cards(summary: Mapping[str, Any], quote: str) -> list[dict[str, str]]:
    pct = "{:+.2%}"
    return [
        {"label": f"value ({quote})", "value": _num(summary.get("end_value"), "{:,.0f}")},
        {"label": "growth", "value": _num(summary.get("growth"), pct)},
        {"label": "backtest growth", "value": _num(summary.get("backtest_growth"), pct)},
        {"label": "difference", "value": _num(summary.get("difference"), pct)},
        {"label": "rebalances", "value": _num(summary.get("n_rebalances"), "{:,.0f}")},
        {"label": "estimated cost", "value": _num(summary.get("estimated_cost"))},
        {"label": "realised cost", "value": _num(summary.get("realised_cost"))},
        {"label": "shortfall (bps)", "value": _num(summary.get("shortfall_bps"), "{:.1f}")},
    ]


def _rows(rebalances: pd.DataFrame) -> list[dict[str, str]]:
    pct = "{:.2%}"
    return [
        {
            "time": f"{pd.Timestamp(r['time']):%Y-%m-%d %H:%M}",
            "kind": "dry run" if r["dry_run"] else "executed",
            "score": _num(r["score"], pct),
            "drift": _num(r["drift"], pct),
            "planned": _num(r["planned_value"]),
            "estimated": _num(r["estimated_cost"]),
            "realised": _num(r["realised_cost"]),
            "fees": _num(r["fees"]),
            "slippage": _num(r["slippage"]),
            "opportunity": _num(r["opportunity_cost"]),
            "shortfall": _num(r["shortfall"]),
            "bps": _num(r["shortfall_bps"], "{:.1f}"),
            "backtest": _num(r["backtest_cost"]),
        }
        for _, r in rebalances.iterrows()
    ]


def write_track_report(
    out_dir: str | os.PathLike[str],
    values: pd.DataFrame,
    weights: pd.DataFrame,
    drift: pd.Series,
    rebalances: pd.DataFrame,
    *,
    summary: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    filename: str = "track.html",
) -> Path:
    """Write the tracking page and return its path.

    ``values``: index time, columns ``value`` and ``backtest`` (may be NaN); ``weights``: index
    time, one column per asset; ``drift``: index time; ``rebalances``: one row per decision with
    the columns of :data:`REBALANCE_COLUMNS`; ``summary``: ``end_value``, ``growth``, ``backtest_growth``,
    ``difference``, ``n_rebalances``, ``estimated_cost``, ``realised_cost``, ``shortfall_bps``;
    ``meta``: ``title``, ``subtitle``, ``quote``, ``notes``.
    """
    from reports.page import ensure_out_dir, figure_blocks, render_page, write_text_atomic

    missing = [c for c in REBALANCE_COLUMNS if c not in rebalances.columns]
    if missing:
        raise ValueError(
            f"`rebalances` must have the columns {list(REBALANCE_COLUMNS)}; missing {missing}"
        )
    if "value" not in values or values.empty:
        raise ValueError("`values` must be a non-empty frame with a `value` column")
    meta, summary = dict(meta or {}), dict(summary or {})
    quote = str(meta.get("quote") or "USDT")
    figures = [("value", value_figure(values)), ("weights", weights_figure(weights))]
    if len(rebalances):
        figures += [("score", score_figure(rebalances, drift)), ("costs", cost_figure(rebalances))]
    context = {
        "title": str(meta.get("title") or "Account tracking"),
        "subtitle": str(
            meta.get("subtitle")
            or f"{values.index[0]:%Y-%m-%d} to {values.index[-1]:%Y-%m-%d} UTC · {len(rebalances)} decisions"
        ),
        "synthetic": bool(meta.get("synthetic", False)),
        "quote": quote,
        "cards": _cards(summary, quote),
        "rows": _rows(rebalances),
        "notes": [str(n) for n in meta.get("notes") or []],
        "figures": figure_blocks(figures),
    }
    page = render_page("track.html.j2", context, inline={"track.html.j2": _TEMPLATE})
    path = ensure_out_dir(out_dir) / filename
    write_text_atomic(path, page)
    return path
