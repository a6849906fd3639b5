"""The cost-frontier page: the scatter of each rebalancing policy's annual cost against its tracking
error (efficient policies marked and joined), the policy table and the comparison with the calendar.

Works on plain objects (the tidy policy table of :mod:`backtest.cost_frontier`, a comparison table
and a dict of facts), like the rest of ``reports``. One self-contained HTML file on the tearsheet's
base template.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["cost_frontier_figure", "write_cost_frontier_report"]

_KIND_STYLE = {
    "calendar": ("calendar", "#1f77b4", "square"),
    "drift": ("drift band", "#ff7f0e", "diamond"),
    "cost": ("cost band", "#2ca02c", "circle"),
}
_NEEDED = ("policy", "kind", "annual_cost", "tracking_error", "turnover", "sharpe", "efficient")

_TEMPLATE = """{% extends "_titled.html.j2" %}
{% block sections %}
<section id="frontier">
<h2>Annual cost against tracking error</h2>
<p class="sub">Each point is a rebalancing policy of the same strategy. Tracking error is measured
against the strategy rebalanced to its target at every bar without costs. Efficient policies (no
other policy is both cheaper and closer) are outlined in black and joined.</p>
{% for f in figures %}<div class="figure" id="{{ f.id }}" data-key="{{ f.key }}"></div>{% endfor %}
</section>
<section id="policies">
<h2>Policies</h2>
<div class="wide"><table id="policy-table"><thead><tr>
<th class="text">policy</th><th class="text">kind</th><th>annual cost</th><th>tracking error</th>
<th>turnover (ann.)</th><th>Sharpe</th><th>trades</th><th class="text">efficient</th></tr></thead>
<tbody>{% for r in rows %}<tr><td class="text">{{ r.policy }}</td><td class="text">{{ r.kind }}</td>
<td>{{ r.annual_cost }}</td><td>{{ r.tracking_error }}</td><td>{{ r.turnover }}</td><td>{{ r.sharpe }}</td>
<td>{{ r.n_trades }}</td><td class="text">{{ "yes" if r.efficient else "" }}</td></tr>{% endfor %}</tbody>
</table></div>
</section>
{% if comparison %}
<section id="against-calendar">
<h2>Against the calendar</h2>
<p class="sub">For each calendar policy: the cheapest band policy whose tracking error is at most
the calendar's (none: no band policy tracks as closely).</p>
<div class="wide"><table id="comparison-table"><thead><tr>
<th class="text">calendar</th><th>its cost</th><th>its tracking error</th><th>its turnover</th>
<th class="text">cheapest band as close</th><th>its cost</th><th>its tracking error</th><th>its turnover</th>
<th>cost saved</th></tr></thead>
<tbody>{% for r in comparison %}<tr><td class="text">{{ r.calendar }}</td><td>{{ r.calendar_cost }}</td>
<td>{{ r.calendar_te }}</td><td>{{ r.calendar_turnover }}</td><td class="text">{{ r.band }}</td>
<td>{{ r.band_cost }}</td><td>{{ r.band_te }}</td><td>{{ r.band_turnover }}</td><td>{{ r.saved }}</td></tr>{% endfor %}</tbody>
</table></div>
</section>
{% endif %}
{% if notes %}<section id="notes"><h2>Notes</h2><ul>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul></section>{% endif %}
{% endblock %}
"""


def _check(table: pd.DataFrame) -> None:
    missing = [c for c in _NEEDED if c not in table.columns]
    if missing:
        raise ValueError(
            f"`table` must have columns {list(_NEEDED)}; missing {missing} (got {list(table.columns)})"
        )


def cost_frontier_figure(table: pd.DataFrame) -> Any:
    """The scatter of ``annual_cost`` (y) against ``tracking_error`` (x), one trace per policy kind,
    the efficient policies outlined and joined by a line."""
    import plotly.graph_objects as go

    from reports.figure_base import plot_text

    _check(table)
    fig = go.Figure()
    for kind, (label, color, symbol) in _KIND_STYLE.items():
        sub = table[table["kind"] == kind]
        if sub.empty:
            continue
        efficient = sub["efficient"].to_numpy(dtype=bool)
        names = [plot_text(p) for p in sub["policy"]]
        labelled = efficient | (kind == "calendar")  # the other points are named on hover only
        fig.add_trace(
            go.Scatter(
                x=sub["tracking_error"].to_numpy(dtype=np.float64),
                y=sub["annual_cost"].to_numpy(dtype=np.float64),
                mode="markers+text",
                name=label,
                text=[n if show else "" for n, show in zip(names, labelled, strict=True)],
                hovertext=names,
                textposition="top center",
                textfont={"size": 10},
                marker={
                    "color": color,
                    "symbol": symbol,
                    "size": 11,
                    "line": {"color": np.where(efficient, "#000000", color), "width": 2},
                },
                customdata=np.column_stack(
                    [
                        sub["turnover"].to_numpy(dtype=np.float64),
                        sub["sharpe"].to_numpy(dtype=np.float64),
                    ]
                ),
                hovertemplate="%{hovertext}<br>tracking error %{x:.2%}<br>annual cost %{y:.3%}"
                "<br>turnover %{customdata[0]:.2f}/yr<br>Sharpe %{customdata[1]:.2f}<extra></extra>",
            )
        )
    front = table[table["efficient"].to_numpy(dtype=bool)].sort_values("tracking_error")
    if len(front) > 1:
        fig.add_trace(
            go.Scatter(
                x=front["tracking_error"].to_numpy(dtype=np.float64),
                y=front["annual_cost"].to_numpy(dtype=np.float64),
                mode="lines",
                name="efficient frontier",
                line={"color": "#000000", "width": 1, "dash": "dot"},
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        title={"text": "Cost against tracking error of each rebalancing policy", "x": 0.01},
        height=520,
        template="plotly_white",
        xaxis={"title": {"text": "tracking error (annualised)"}, "tickformat": ".1%"},
        yaxis={"title": {"text": "annual cost (fraction of equity)"}, "tickformat": ".2%"},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def _pct(value: Any, digits: int = 2) -> str:
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    return f"{float(value):.{digits}%}"


def _num(value: Any, pattern: str = "{:.2f}") -> str:
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    return pattern.format(float(value))


def write_cost_frontier_report(
    out_dir: str | os.PathLike[str],
    table: pd.DataFrame,
    *,
    comparison: pd.DataFrame | None = None,
    meta: Mapping[str, Any] | None = None,
    filename: str = "cost_frontier.html",
) -> Path:
    """Write the cost-frontier page (one self-contained HTML file) and return its path.

    ``table``: one row per policy (``policy``, ``kind``, ``annual_cost``, ``tracking_error``,
    ``turnover``, ``sharpe``, ``efficient``, optional ``n_trades``); ``comparison``: what
    :meth:`backtest.cost_frontier.CostFrontier.against_calendar` returns; ``meta``: ``title``,
    ``subtitle``, ``synthetic``, ``notes``.
    """
    from reports.page import ensure_out_dir, figure_blocks, render_page, write_text_atomic

    _check(table)
    meta = dict(meta or {})
    rows = [
        {
            "policy": r["policy"],
            "kind": r["kind"],
            "annual_cost": _pct(r["annual_cost"], 3),
            "tracking_error": _pct(r["tracking_error"]),
            "turnover": _num(r["turnover"]),
            "sharpe": _num(r["sharpe"]),
            "n_trades": _num(r.get("n_trades", math.nan), "{:,.0f}"),
            "efficient": bool(r["efficient"]),
        }
        for _, r in table.iterrows()
    ]
    compared = []
    for _, r in (comparison if comparison is not None else pd.DataFrame()).iterrows():
        found = isinstance(r["band"], str) and r["band"] != ""
        compared.append(
            {
                "calendar": r["calendar"],
                "calendar_cost": _pct(r["calendar_cost"], 3),
                "calendar_te": _pct(r["calendar_tracking_error"]),
                "calendar_turnover": _num(r["calendar_turnover"]),
                "band": r["band"] if found else "none",
                "band_cost": _pct(r["band_cost"], 3) if found else "",
                "band_te": _pct(r["band_tracking_error"]) if found else "",
                "band_turnover": _num(r["band_turnover"]) if found else "",
                "saved": _pct(r["calendar_cost"] - r["band_cost"], 3) if found else "",
            }
        )
    context = {
        "title": str(meta.get("title") or "Cost / tracking-error frontier"),
        "subtitle": str(meta.get("subtitle") or f"{len(table)} rebalancing policies"),
        "synthetic": bool(meta.get("synthetic", False)),
        "rows": rows,
        "comparison": compared,
        "notes": [str(n) for n in meta.get("notes") or []],
        "figures": figure_blocks([("cost_frontier", cost_frontier_figure(table))]),
    }
    page = render_page(
        "cost_frontier.html.j2", context, inline={"cost_frontier.html.j2": _TEMPLATE}
    )
    path = ensure_out_dir(out_dir) / filename
    write_text_atomic(path, page)
    return path
