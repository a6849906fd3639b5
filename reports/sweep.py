"""The sweep report: heatmaps, top-N table, overfitting statistics in plain language, walk-forward tuning.

Works on plain objects only (a tidy sweep table, dicts of statistics, equity Series), like the rest
of ``reports``. One self-contained HTML file (plotly inlined, opens offline), on the tearsheet's base
template.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "percent",
    "read_cpcv",
    "read_dsr",
    "read_pbo",
    "read_walk_forward",
    "write_sweep_report",
]

DSR_BAR = 0.95  # the usual significance bar of the Deflated Sharpe Ratio
PBO_LOW, COIN_FLIP = 0.1, 0.5

_TEMPLATE = """{% extends "_titled.html.j2" %}
{% block sections %}
<section id="heatmaps">
<h2>{{ metric_label }} by {{ x_label }} and {{ y_label }}</h2>
{% if heatmap_note %}<p class="sub">{{ heatmap_note }}</p>{% endif %}
{% for f in figures if f.key.startswith("heatmap") %}<div class="figure" id="{{ f.id }}" data-key="{{ f.key }}"></div>{% endfor %}
</section>
<section id="top">
<h2>Top {{ top_rows | length }} of {{ n_points }} points by {{ metric_label }}</h2>
<div class="wide"><table id="top-table"><thead><tr><th>#</th>
{% for c in top_columns %}<th class="{{ 'text' if c.text }}">{{ c.label }}</th>{% endfor %}</tr></thead>
<tbody>{% for r in top_rows %}<tr><td>{{ loop.index }}</td>{% for cell in r %}<td class="{{ 'text' if top_columns[loop.index0].text }}">{{ cell }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table></div>
</section>
<section id="overfitting">
<h2>Is the best point luck? Overfitting statistics</h2>
<p class="sub">{{ period_text }}</p>
{% if dsr %}
<h3>Deflated Sharpe Ratio (Bailey and Lopez de Prado, 2014)</h3>
<div class="cards">
<div class="card"><div class="v">{{ dsr.dsr_text }}</div><div class="l">DSR (probability)</div></div>
<div class="card"><div class="v">{{ dsr.sharpe_text }}</div><div class="l">best point's Sharpe (ann.)</div></div>
<div class="card"><div class="v">{{ dsr.benchmark_text }}</div><div class="l">expected best of {{ dsr.n_trials }} lucky trials</div></div>
</div>
<p id="dsr-reading">{{ dsr.reading }}</p>
{% endif %}
{% if pbo %}
<h3>Probability of Backtest Overfitting (CSCV, Bailey et al., 2015)</h3>
<div class="cards">
<div class="card"><div class="v">{{ pbo.pbo_text }}</div><div class="l">PBO</div></div>
<div class="card"><div class="v">{{ pbo.loss_text }}</div><div class="l">P(best in-sample loses out of sample)</div></div>
<div class="card"><div class="v">{{ pbo.n_combinations }}</div><div class="l">splits ({{ pbo.n_splits }} blocks)</div></div>
</div>
<p id="pbo-reading">{{ pbo.reading }}</p>
{% endif %}
{% for f in figures if f.key == "logits" %}<div class="figure" id="{{ f.id }}" data-key="{{ f.key }}"></div>{% endfor %}
{% if cpcv %}
<h3>Combinatorial purged cross-validation (CPCV, Lopez de Prado, 2018)</h3>
<div class="cards" id="cpcv-cards">
<div class="card"><div class="v">{{ cpcv.median_text }}</div><div class="l">median out-of-sample Sharpe (ann.), {{ cpcv.n_paths }} paths</div></div>
<div class="card"><div class="v">{{ cpcv.range_text }}</div><div class="l">5% to 95% of the paths</div></div>
<div class="card"><div class="v">{{ cpcv.negative_text }}</div><div class="l">paths with a Sharpe below 0</div></div>
<div class="card"><div class="v">{{ cpcv.pbo_text }}</div><div class="l">PBO on the {{ cpcv.n_splits }} CPCV splits</div></div>
</div>
<p id="cpcv-reading">{{ cpcv.reading }}</p>
{% if cpcv.paths_text %}<p class="sub">{{ cpcv.paths_text }}</p>{% endif %}
{% for f in figures if f.key == "cpcv" %}<div class="figure" id="{{ f.id }}" data-key="{{ f.key }}"></div>{% endfor %}
{% endif %}
{% for n in stat_notes %}<p class="sub">{{ n }}</p>{% endfor %}
</section>
{% if wf %}
<section id="walk-forward">
<h2>Walk-forward tuning</h2>
<p id="wf-reading">{{ wf.reading }}</p>
{% for f in figures if f.key == "walk_forward" %}<div class="figure" id="{{ f.id }}" data-key="{{ f.key }}"></div>{% endfor %}
<div class="scroll"><table id="wf-table"><thead><tr><th class="text">train from</th><th class="text">test from</th>
<th class="text">test to</th><th class="text">chosen point</th><th>train Sharpe</th><th>test Sharpe</th></tr></thead>
<tbody>{% for w in wf.windows %}<tr><td class="text">{{ w.train_start }}</td><td class="text">{{ w.test_start }}</td>
<td class="text">{{ w.test_end }}</td><td class="text">{{ w.chosen }}</td><td>{{ w.train_sharpe }}</td><td>{{ w.test_sharpe }}</td></tr>{% endfor %}</tbody>
</table></div>
</section>
{% endif %}
{% if notes %}<section id="notes"><h2>Notes</h2><ul>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul></section>{% endif %}
{% endblock %}
"""


def _fmt(value: Any, pattern: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return pattern.format(value)


def percent(value: float, bars: Sequence[float] = (), decimals: int = 0) -> str:
    """``value`` as a percentage with the fewest decimals (at least ``decimals``) at which the
    printed number is on the same side of every threshold in ``bars`` as ``value`` itself.

    Every overfitting verdict formats its numbers here, so the number agrees with the verdict:

    >>> percent(0.9476, [0.95]), percent(0.95, [0.95]), percent(0.9504, [0.95]), percent(0.7, [0.95])
    ('94.8%', '95%', '95%', '70%')
    """
    return f"{100 * value:.{_places(value, bars, decimals)}f}%"


def _places(value: float, bars: Sequence[float], decimals: int) -> int:
    def agrees(places: int) -> bool:
        shown = float(f"{100 * value:.{places}f}")
        return all((shown >= float(f"{100 * bar:.{places}f}")) == (value >= bar) for bar in bars)

    places = decimals
    while places < 8 and not agrees(places):
        places += 1
    return places


def read_dsr(dsr: Mapping[str, Any]) -> str:
    """Plain-language reading of a Deflated Sharpe Ratio summary (``dsr``, ``n_trials``, annual Sharpes)."""
    p, n = float(dsr["dsr"]), int(dsr["n_trials"])
    places = _places(p, [DSR_BAR, COIN_FLIP], 0)
    shown = percent(p, decimals=places)
    head = (
        f"The best of {n} points has an annualised Sharpe ratio of {_fmt(dsr['sharpe_annual'])}; the best of "
        f"{n} strategies with no skill at all would be expected to reach {_fmt(dsr['benchmark_annual'])}. "
    )
    if p >= DSR_BAR:
        return head + (
            f"With a DSR of {shown}, at or above the {percent(DSR_BAR)} bar, the best point's edge is "
            f"statistically significant even after accounting for the {n} trials and the shape of its "
            "returns."
        )
    if p >= COIN_FLIP:
        return head + (
            f"The DSR of {shown} is below the {percent(DSR_BAR)} bar: there is a "
            f"{percent(1 - p, decimals=places)} "
            "chance that the best point only looks good because it was picked from many; treat it as "
            "unproven."
        )
    return head + (
        f"The DSR of {shown} says the best point's Sharpe ratio is about what picking the luckiest of "
        f"{n} trials gives: most likely luck, not skill."
    )


def read_pbo(pbo: Mapping[str, Any]) -> str:
    """Plain-language reading of a PBO summary (``pbo``, ``n_combinations``, ``prob_oos_loss``)."""
    p = float(pbo["pbo"])
    head = (
        f"In {percent(p, [PBO_LOW, COIN_FLIP])} of {pbo['n_combinations']} ways to split the history "
        "into an in-sample and an out-of-sample half, the point that was best in sample ranked in the "
        "bottom half out of sample. "
    )
    if p < PBO_LOW:
        verdict = "That is low: the ranking of parameter sets carries over to unseen data."
    elif p < COIN_FLIP:
        verdict = (
            "Some of the ranking carries over, but choosing the top cell is partly fitting noise."
        )
    else:
        verdict = (
            "That is no better than choosing a parameter set at random: the backtest ranking does not "
            "predict out-of-sample performance."
        )
    return (
        head
        + verdict
        + f" The in-sample best lost money out of sample in {percent(float(pbo['prob_oos_loss']))} of the splits."
    )


def read_walk_forward(wf: Mapping[str, Any]) -> str:
    """Plain-language reading of walk-forward tuning (``oos_sharpe``, ``hindsight_oos_sharpe``, windows)."""
    n = len(wf.get("windows", []))
    return (
        f"Choosing the best point on each training window and holding it over the next test window "
        f"({n} windows) gave an out-of-sample Sharpe ratio of {_fmt(wf['oos_sharpe'])}, against "
        f"{_fmt(wf['hindsight_oos_sharpe'])} for the point that is best over the whole period "
        f"({_fmt(wf['hindsight_sharpe'])} in sample), which could only be picked with hindsight. "
        "The walk-forward figure is the honest estimate of what tuning this grid delivers."
    )


def signed(value: float, decimals: int = 2) -> str:
    """``value`` with the fewest decimals (at least ``decimals``) at which the printed number is on
    the same side of 0 (positive or not) as ``value``; the CPCV verdict turns on that sign.

    >>> signed(0.004), signed(0.25), signed(-0.004)
    ('0.004', '0.25', '-0.00')
    """
    if not math.isfinite(value):
        return "n/a"
    places = decimals
    while places < 8 and (float(f"{value:.{places}f}") > 0) != (value > 0):
        places += 1
    return f"{value:.{places}f}"


def _number(value: Any) -> float:
    """A statistic read back from JSON: ``None`` (a NaN written as null) becomes NaN."""
    return math.nan if value is None else float(value)


def read_cpcv(cpcv: Mapping[str, Any]) -> str:
    """Plain-language reading of a CPCV summary (``CPCVResult.to_dict``: the folds, the per-path
    annualised Sharpe ratios, ``pbo``)."""
    paths = [_number(v) for v in cpcv["path_sharpe_annual"]]
    median, n = _number(cpcv["median_sharpe_annual"]), len(paths)
    losing = sum(v < 0 for v in paths)
    head = (
        f"{cpcv['n_splits']} splits of the history into {cpcv['groups']} groups "
        f"({cpcv['test_groups']} tested at a time; training drops {cpcv['purge']} bars on each side "
        f"of a test block and {cpcv['embargo']} more after it) recombine into {n} out-of-sample paths "
        "of choosing the best point on the training bars. Their median annualised Sharpe ratio is "
        f"{signed(median)} (in sample: {_fmt(cpcv['median_is_sharpe_annual'])}); {losing} of {n} "
        "paths lost money. "
    )
    if not median > 0:
        verdict = (
            "Choosing the best point shows no out-of-sample edge: the in-sample ranking fits noise."
        )
    elif losing:
        verdict = (
            "The choice keeps a positive median out of sample, but not on every path: fragile."
        )
    else:
        verdict = "Every path kept a positive Sharpe ratio out of sample: the choice holds up."
    return (
        head
        + verdict
        + f" On {percent(float(cpcv['pbo']), [PBO_LOW, COIN_FLIP])} of the splits the chosen point "
        "ranked at or below the median on the test bars."
    )


def _ordered(table: pd.DataFrame, orders: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    table = table.copy()
    for col, order in orders.items():
        if col in table:
            cats = [v for v in order if v in set(table[col])] + sorted(
                set(table[col]) - set(order), key=str
            )
            table[col] = pd.Categorical(table[col], categories=cats, ordered=True)
    return table


def _heatmaps(
    table: pd.DataFrame, x: str, y: str, facet: str | None, metrics: Sequence[str]
) -> tuple[list[tuple[str, Any]], str]:
    from reports.figures import sweep_heatmap

    keys = [c for c in (facet, x, y) if c is not None]
    counts = table.groupby(keys, observed=True).size()
    agg, note = None, ""
    if (counts > 1).any():
        agg = "median"
        note = (
            f"Each cell is the median over the other swept parameters ({int(counts.max())} points per cell); "
            "the top table lists every point."
        )
    figures = []
    for metric in metrics:
        sub = table[np.isfinite(table[metric].to_numpy(dtype=np.float64))]
        if len(sub):
            figures.append((f"heatmap_{metric}", sweep_heatmap(sub, x, y, metric, facet, agg=agg)))
    return figures, note


def _logit_figure(logits: np.ndarray) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Histogram(x=np.asarray(logits, dtype=np.float64), nbinsx=40, marker={"color": "#1f77b4"})
    )
    fig.add_vline(x=0.0, line={"color": "#b42318", "dash": "dash"})
    fig.update_layout(
        title={
            "text": "Out-of-sample rank logit of the in-sample best (left of 0: below the median)",
            "x": 0.01,
        },
        height=320,
        xaxis={"title": {"text": "logit"}},
        yaxis={"title": {"text": "splits"}},
        template="plotly_white",
    )
    return fig


def write_sweep_report(
    out_dir: str | os.PathLike[str],
    table: pd.DataFrame,
    *,
    x: str,
    y: str,
    facet: str | None = None,
    metric: str = "sharpe",
    params: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    orders: Mapping[str, Sequence[Any]] | None = None,
    top: int = 10,
    statistics: Mapping[str, Any] | None = None,
    logits: np.ndarray | None = None,
    walk_forward_equity: Mapping[str, pd.Series] | None = None,
    cpcv_equity: Mapping[str, pd.Series] | None = None,
    meta: Mapping[str, Any] | None = None,
    filename: str = "sweep.html",
) -> Path:
    """Write the sweep report (one self-contained HTML file).

    Parameters
    ----------
    out_dir : path
        Folder to write into (created if missing).
    table : DataFrame of shape (n_points, ...)
        Tidy sweep table: ``point_id``, the parameter columns, metric columns and ``error``.
    x, y, facet : str
        Columns for the heatmap axes and panels (e.g. lookback, rebalance frequency, strategy).
    metric : str
        Metric of the heatmaps and of the top-N ranking (higher is better).
    params : sequence of str
        Parameter columns shown in the top-N table.
    labels : dict of str to str, optional
        ``point_id`` -> short label used in the overfitting and walk-forward sections.
    orders : dict of str to list, optional
        Display order of the values of a column (e.g. the sweep list order of the frequencies).
    statistics : dict, optional
        ``SweepStatistics.to_dict`` output: ``period``, ``dsr``, ``pbo``, ``walk_forward``, ``notes``
        and, when the sweep asked for it, ``cpcv``.
    logits : ndarray of shape (n_combinations,), optional
        PBO logits (histogram).
    walk_forward_equity : dict of str to Series, optional
        Stitched out-of-sample equity and the hindsight-best point's equity over the same bars.
    cpcv_equity : dict of str to Series, optional
        Equity of each CPCV out-of-sample path (``statistics["cpcv"]`` holds their numbers).
    meta : dict, optional
        ``title``, ``synthetic``, ``subtitle``, ``notes`` (list of str).

    Returns
    -------
    Path
        The HTML file.
    """
    from reports.figures import equity_overlay_figure
    from reports.metrics import METRICS
    from reports.page import ensure_out_dir, figure_blocks, render_page, write_text_atomic

    meta = dict(meta or {})
    labels = dict(labels or {})
    need = [c for c in ("point_id", x, y, metric, facet) if c is not None]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(
            f"`table` must have columns {need}; missing {missing} (got {list(table.columns)})"
        )
    ok = table[table.get("error", pd.Series("", index=table.index)).fillna("") == ""]
    shown = _ordered(ok, orders or {})
    figures, heat_note = _heatmaps(
        shown, x, y, facet, [metric] + [m for m in ("max_drawdown",) if m != metric]
    )
    stats = dict(statistics or {})
    if logits is not None and len(logits):
        figures.append(("logits", _logit_figure(logits)))
    if walk_forward_equity:
        figures.append(("walk_forward", equity_overlay_figure(dict(walk_forward_equity))))
    if cpcv_equity:
        fig = equity_overlay_figure(dict(cpcv_equity))
        fig.update_layout(title={"text": "CPCV out-of-sample paths (log scale)"})
        figures.append(("cpcv", fig))
    ranked = ok.sort_values(metric, ascending=False, kind="mergesort").head(top)
    cols = (
        [(p, p, True) for p in params]
        + [
            (m, METRICS[m].label if m in METRICS else m, False)
            for m in dict.fromkeys(
                (metric, "cagr", "volatility", "max_drawdown", "turnover", "cost_drag_bps")
            )
            if m in table.columns
        ]
        + [("point_id", "point_id", True)]
    )
    top_rows = [[_cell(r[c], c) for c, _, _ in cols] for _, r in ranked.iterrows()]
    context = {
        "title": str(meta.get("title") or "Parameter sweep"),
        "subtitle": str(meta.get("subtitle") or f"{len(table)} grid points"),
        "synthetic": bool(meta.get("synthetic", False)),
        "n_points": len(table),
        "metric_label": METRICS[metric].label if metric in METRICS else metric,
        "x_label": x,
        "y_label": y,
        "heatmap_note": heat_note,
        "top_columns": [{"label": label, "text": text} for _, label, text in cols],
        "top_rows": top_rows,
        "period_text": _period_text(stats),
        "dsr": _dsr_context(stats.get("dsr"), labels),
        "pbo": _pbo_context(stats.get("pbo")),
        "wf": _wf_context(stats.get("walk_forward"), labels),
        "cpcv": _cpcv_context(stats.get("cpcv"), labels),
        "stat_notes": list(stats.get("notes") or []),
        "notes": list(meta.get("notes") or []),
        "figures": figure_blocks(figures),
    }
    page = render_page("sweep.html.j2", context, inline={"sweep.html.j2": _TEMPLATE})
    path = ensure_out_dir(out_dir) / filename
    write_text_atomic(path, page)
    return path


def _cell(value: Any, column: str) -> str:
    from reports.metrics import METRICS
    from reports.tables import format_metric

    if column in METRICS:
        return format_metric(column, float(value) if value is not None else None)
    return str(value)


def _period_text(stats: Mapping[str, Any]) -> str:
    period = stats.get("period") or {}
    if not period.get("n_obs"):
        return "No period is common to every grid point."
    return (
        f"Computed on the {period['n_obs']} bars every grid point shares ({str(period['start'])[:10]} to "
        f"{str(period['end'])[:10]}), so the best point here may differ from the top row above."
    )


def _dsr_context(dsr: Mapping[str, Any] | None, labels: Mapping[str, str]) -> dict[str, Any] | None:
    if not dsr:
        return None
    best = labels.get(str(dsr.get("best")), str(dsr.get("best")))
    return {
        "dsr_text": percent(dsr["dsr"], [DSR_BAR, COIN_FLIP], decimals=1),
        "sharpe_text": _fmt(dsr["sharpe_annual"]),
        "benchmark_text": _fmt(dsr["benchmark_annual"]),
        "n_trials": dsr["n_trials"],
        "reading": f"Best point: {best}. " + read_dsr(dsr),
    }


def _pbo_context(pbo: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not pbo:
        return None
    return {
        "pbo_text": percent(pbo["pbo"], [PBO_LOW, COIN_FLIP], decimals=1),
        "loss_text": percent(pbo["prob_oos_loss"], decimals=1),
        "n_combinations": pbo["n_combinations"],
        "n_splits": pbo["n_splits"],
        "reading": read_pbo(pbo),
    }


def _wf_context(wf: Mapping[str, Any] | None, labels: Mapping[str, str]) -> dict[str, Any] | None:
    if not wf:
        return None
    windows = [
        {
            "train_start": str(w["train_start"])[:10],
            "test_start": str(w["test_start"])[:10],
            "test_end": str(w["test_end"])[:10],
            "chosen": labels.get(str(w["chosen"]), str(w["chosen"])),
            "train_sharpe": _fmt(w["train_sharpe"]),
            "test_sharpe": _fmt(w["test_sharpe"]),
        }
        for w in wf["windows"]
    ]
    return {"windows": windows, "reading": read_walk_forward(wf)}


def _cpcv_context(
    cpcv: Mapping[str, Any] | None, labels: Mapping[str, str]
) -> dict[str, Any] | None:
    if not cpcv:
        return None
    q = cpcv["quantiles_annual"]
    paths = [_number(v) for v in cpcv["path_sharpe_annual"]]
    most = labels.get(str(cpcv["most_chosen"]), str(cpcv["most_chosen"]))
    chosen = (
        f"The splits chose {cpcv['n_chosen']} different points; the most frequent, {most}, in "
        f"{percent(float(cpcv['most_chosen_share']))} of them."
    )
    return {
        "median_text": signed(_number(cpcv["median_sharpe_annual"])),
        "range_text": f"{_fmt(q['0.05'])} to {_fmt(q['0.95'])}",
        "negative_text": f"{sum(v < 0 for v in paths)} of {len(paths)}",
        "pbo_text": percent(float(cpcv["pbo"]), [PBO_LOW, COIN_FLIP], decimals=1),
        "n_paths": len(paths),
        "n_splits": cpcv["n_splits"],
        "reading": read_cpcv(cpcv),
        "paths_text": chosen
        + (
            " Sharpe ratio (ann.) of each path: " + ", ".join(_fmt(v) for v in paths) + "."
            if len(paths) <= 20
            else ""
        ),
    }
