"""Self-contained HTML tearsheet and strategy-comparison report (open offline, no CDN).

One HTML file per report: plotly.js is inlined once, each figure's JSON sits in a
``<script type="application/json">`` block (``<``, ``>`` and ``&`` escaped as ``\\u003c`` ... so no
user text can close the block), and Jinja renders everything else with autoescape on. A
``metrics.json`` (tearsheet) or ``comparison.json`` (comparison) is written beside the HTML.

When every figure has been drawn the page sets ``data-render-done="1"``, ``data-figures-rendered`` and
``data-js-errors`` on ``<body>`` (the browser test reads them).

The metric tables are built in :mod:`reports.tables` and the page plumbing (templates, plotly.js,
figure JSON, atomic writes) is in :mod:`reports.page`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.metrics import METRICS, compute_metrics, rebalance_diagnostics
from reports.page import ensure_out_dir, figure_blocks, json_safe, render_page, write_text_atomic
from reports.regimes import median_bars_per_day, regime_performance
from reports.tables import (
    HEADLINE,
    format_metric,
    interval_text,
    metric_table_rows,
    metrics_frame,
    regime_table_rows,
)
from reports.validation import check_equity, check_periods_per_year

__all__ = ["format_metric", "metrics_frame", "write_comparison", "write_report"]

log = logging.getLogger(__name__)

MAX_NOTE_ROWS = 200


def _meta_settings(meta: Mapping[str, Any], name: str = "meta") -> tuple[float, float]:
    if not isinstance(meta, Mapping):
        raise TypeError(f"`{name}` must be a dict of report metadata; got {type(meta).__name__}")
    if meta.get("periods_per_year") is None:
        raise ValueError(
            f"`{name}['periods_per_year']` is required to annualise; got none "
            f"(365 for daily crypto, 8760 for hourly crypto, 252 for daily stocks)"
        )
    rf = meta.get("risk_free_rate")
    return check_periods_per_year(meta["periods_per_year"]), 0.02 if rf is None else float(rf)


def _rolling_window(index: pd.DatetimeIndex, n: int, days: float = 90.0) -> int:
    return int(max(2, min(round(days * median_bars_per_day(index)), max(2, n // 3))))


def _period(equity: pd.Series) -> dict[str, Any]:
    idx = pd.DatetimeIndex(equity.index)
    return {
        "start": idx[0].strftime("%Y-%m-%d %H:%M"),
        "end": idx[-1].strftime("%Y-%m-%d %H:%M"),
        "n_bars": len(idx),
    }


def _notes(
    meta: Mapping[str, Any], diagnostics: pd.DataFrame | None, ppy: float, rf: float
) -> dict[str, Any]:
    """Data notes shown under the figures: provenance, gaps, universe changes, allocator fallbacks."""
    synthetic = meta.get("synthetic")
    items = [
        ("Data source", meta.get("data_source", "not recorded")),
        (
            "Data",
            "SYNTHETIC (generated, not market data)"
            if synthetic is True
            else "real market data"
            if synthetic is False
            else "not recorded (meta has no `synthetic` key)",
        ),
        ("Timeframe", meta.get("timeframe", "not recorded")),
        ("Periods per year", f"{ppy:g}"),
        ("Risk-free rate (annual)", f"{rf:.2%}"),
        ("Gap policy", meta.get("gap_policy", "not recorded")),
    ]
    symbols = meta.get("symbols")
    if symbols:
        items.append(("Symbols", ", ".join(str(s) for s in symbols)))
    fallbacks: list[dict[str, str]] = []
    n_fallbacks = 0
    methods: dict[str, int] = {}
    if diagnostics is not None and len(diagnostics):
        methods = {
            str(k): int(v)
            for k, v in diagnostics["method"].replace("", "not recorded").value_counts().items()
        }
        flagged = diagnostics[diagnostics["fallback"]]
        n_fallbacks = len(flagged)
        fallbacks = [
            {"time": t.strftime("%Y-%m-%d %H:%M"), "method": m, "notes": note}
            for t, m, note in zip(
                flagged["time"][:MAX_NOTE_ROWS],
                flagged["method"][:MAX_NOTE_ROWS],
                flagged["notes"][:MAX_NOTE_ROWS],
                strict=True,
            )
        ]
    config = meta.get("config")
    return {
        "items": [(k, str(v)) for k, v in items],
        "data_notes": [str(s) for s in meta.get("data_notes") or []],
        "universe_changes": [str(s) for s in meta.get("universe_changes") or []],
        "methods": methods,
        "fallbacks": fallbacks,
        "n_fallbacks": n_fallbacks,
        "strategy_params": [
            (str(k), json.dumps(json_safe(v)))
            for k, v in (meta.get("strategy_params") or {}).items()
        ],
        "config": json.dumps(json_safe(config), indent=2) if config else "",
    }


def _leaf_labels(
    linkage: np.ndarray, labels: Sequence[str] | None, meta: Mapping[str, Any]
) -> list[str]:
    """Dendrogram leaf names: ``linkage_labels``, else ``meta['symbols']`` when the count fits, else 0..n-1."""
    if labels is not None:
        return [str(s) for s in labels]
    n = int(np.asarray(linkage).shape[0]) + 1
    symbols = list(meta.get("symbols") or [])
    if len(symbols) == n:
        return [str(s) for s in symbols]
    log.warning("no `linkage_labels` for the dendrogram; its leaves are numbered 0..%d", n - 1)
    return [str(i) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# public writers


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    equity: pd.Series,
    meta: Mapping[str, Any],
    benchmark: pd.Series | None = None,
    weights: pd.DataFrame | None = None,
    trades: pd.DataFrame | None = None,
    rebalances: pd.DataFrame | None = None,
    metrics: Mapping[str, float] | None = None,
    frontier: pd.DataFrame | None = None,
    chosen: Mapping[str, float] | None = None,
    linkage: np.ndarray | None = None,
    linkage_labels: Sequence[str] | None = None,
    intervals: Mapping[str, tuple[float, float]] | None = None,
    interval_level: float = 0.9,
    fan: pd.DataFrame | None = None,
    filename: str = "report.html",
) -> Path:
    """Write a self-contained HTML tearsheet (and ``metrics.json``) for one backtest.

    Parameters
    ----------
    out_dir : path
        Directory to write into (created if missing).
    equity : Series of shape (n_bars,)
        Portfolio value per bar (quote currency), UTC DatetimeIndex.
    meta : dict
        ``periods_per_year`` (required), ``risk_free_rate`` (default 0.02), and for the header and
        data notes: ``title``, ``strategy``, ``strategy_params``, ``data_source``, ``synthetic``,
        ``timeframe``, ``gap_policy``, ``data_notes``, ``universe_changes``, ``symbols``, ``config``.
    benchmark : Series of shape (n_bars,), optional
        Benchmark equity on the same index (drawn dotted; enables the regime table).
    weights : DataFrame of shape (n_bars, n_assets), optional
        Realised weights per bar.
    trades : DataFrame, optional
        Trade ledger (``notional``, ``fee``, ``slippage``, ``impact``, ``bar`` or ``time`` ...).
    rebalances : DataFrame, optional
        One row per rebalance (``time``, ``turnover``, ``fees``, ``slippage``, ``impact``, ``n_trades``,
        ``method``, ``notes``).
    metrics : dict, optional
        Precomputed :func:`reports.metrics.compute_metrics` output; computed when omitted.
    frontier : DataFrame, optional
        Efficient frontier (``return``, ``volatility``, ``sharpe`` + one weight column per asset).
    chosen : dict, optional
        ``{"return": ..., "volatility": ...}`` of the chosen portfolio on the frontier.
    linkage : ndarray of shape (n_assets - 1, 4), optional
        HRP linkage matrix, drawn as a dendrogram with ``linkage_labels`` (default: ``meta['symbols']``
        when their count fits, else leaf numbers).
    intervals : dict, optional
        Metric name -> ``(low, high)``: the central ``interval_level`` interval of a bootstrap
        (:mod:`backtest.robustness`), shown as a last column of the metrics table and under the
        headline figures.
    fan : DataFrame, optional
        Equity quantiles per bar (columns: quantiles such as 0.05 ... 0.95) of resampled paths,
        drawn as a fan chart under the equity.
    filename : str
        Name of the HTML file.

    Returns
    -------
    Path
        The HTML file.

    Examples
    --------
    >>> import tempfile
    >>> idx = pd.date_range("2024-01-01", periods=60, freq="D", tz="UTC")
    >>> eq = pd.Series(np.linspace(100, 120, 60), index=idx)
    >>> path = write_report(tempfile.mkdtemp(), equity=eq, meta={"periods_per_year": 365, "title": "demo"})
    >>> path.name, (path.parent / "metrics.json").exists()
    ('report.html', True)
    """
    from reports import figures as fg

    equity = check_equity(equity)
    ppy, rf = _meta_settings(meta)
    out = ensure_out_dir(out_dir)
    if metrics is None:
        metrics = compute_metrics(
            equity,
            periods_per_year=ppy,
            risk_free_rate=rf,
            trades=trades,
            weights=weights,
            benchmark=benchmark,
            rebalances=rebalances,
        )
    columns = {str(meta.get("strategy") or "strategy"): dict(metrics)}
    name = next(iter(columns))
    if benchmark is not None:
        columns["benchmark" if name != "benchmark" else "benchmark (reference)"] = compute_metrics(
            benchmark, periods_per_year=ppy, risk_free_rate=rf
        )
    figures: list[tuple[str, Any]] = [
        ("equity", fg.equity_figure(equity, benchmark, name=name)),
        ("drawdown", fg.drawdown_figure({name: equity}, benchmark)),
    ]
    if fan is not None:
        from reports.robustness import fan_chart

        figures.append(("fan", fan_chart(fan, equity, name)))
    if weights is not None and len(weights):
        figures.append(("weights", fg.weights_figure(weights)))
    diagnostics = None
    if rebalances is not None:
        diagnostics = rebalance_diagnostics(rebalances, equity)
        if len(rebalances):
            figures.append(("rebalances", fg.rebalance_figure(rebalances)))
    window = _rolling_window(pd.DatetimeIndex(equity.index), len(equity))
    if len(equity) > window + 1:
        figures.append(
            (
                "rolling",
                fg.rolling_figure(
                    {name: equity},
                    benchmark,
                    window=window,
                    periods_per_year=ppy,
                    risk_free_rate=rf,
                ),
            )
        )
    figures.append(("monthly", fg.monthly_returns_figure(equity)))
    if frontier is not None:
        figures.append(("frontier", fg.frontier_figure(frontier, chosen)))
    if linkage is not None:
        labels = _leaf_labels(linkage, linkage_labels, meta)
        figures.append(("dendrogram", fg.dendrogram_figure(linkage, labels)))
    regimes: list[dict[str, Any]] = []
    if benchmark is not None:
        table = regime_performance({name: equity}, benchmark, periods_per_year=ppy)
        regimes = regime_table_rows(table)
    context = {
        "title": str(meta.get("title") or f"Backtest: {name}"),
        "strategy": name,
        "synthetic": meta.get("synthetic") is True,
        "period": _period(equity),
        "headline": [
            (
                METRICS[k].label,
                format_metric(k, metrics.get(k, math.nan)),
                interval_text(k, intervals),
            )
            for k in HEADLINE
        ],
        "columns": list(columns) + ([f"{interval_level:.0%} interval"] if intervals else []),
        "metric_rows": metric_table_rows(columns, intervals=intervals or None),
        "figures": figure_blocks(figures),
        "regimes": regimes,
        "notes": _notes(meta, diagnostics, ppy, rf),
    }
    html_path = out / filename
    write_text_atomic(html_path, render_page("tearsheet.html.j2", context))
    write_text_atomic(
        out / "metrics.json", json.dumps(json_safe(dict(metrics)), indent=2, allow_nan=False)
    )
    log.info("wrote tearsheet %s (%.1f MB)", html_path, html_path.stat().st_size / 1e6)
    return html_path


def _comparison_inputs(
    results: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any] | None
) -> tuple[dict[str, pd.Series], Mapping[str, Any]]:
    if not isinstance(results, Mapping) or not results:
        raise ValueError(
            "`results` must be a non-empty dict of name -> {'equity': ..., 'meta': ...}"
        )
    equities = {}
    for name, res in results.items():
        if not isinstance(res, Mapping) or "equity" not in res:
            raise ValueError(f"`results[{name!r}]` must be a dict with an 'equity' Series")
        equities[str(name)] = check_equity(res["equity"], f"results[{name!r}]['equity']")
    first_name = next(iter(equities))
    index = equities[first_name].index
    for name, eq in equities.items():
        if not eq.index.equals(index):
            raise ValueError(
                f"`results[{name!r}]['equity']` must share the index of {first_name!r} "
                f"({len(index)} bars); got {len(eq)} bars (compare strategies on the same data)"
            )
    shared = (
        dict(meta) if meta is not None else dict(results[next(iter(results))].get("meta") or {})
    )
    ppys = {
        float(r["meta"]["periods_per_year"])
        for r in results.values()
        if r.get("meta") and r["meta"].get("periods_per_year") is not None
    }
    if len(ppys) > 1:
        raise ValueError(
            f"results must share `periods_per_year`; got {sorted(ppys)} (same timeframe needed)"
        )
    if shared.get("periods_per_year") is None and ppys:
        shared["periods_per_year"] = ppys.pop()
    return equities, shared


def write_comparison(
    out_dir: str | os.PathLike[str],
    results: Mapping[str, Mapping[str, Any]],
    *,
    benchmark: pd.Series | None = None,
    meta: Mapping[str, Any] | None = None,
    title: str = "Strategy comparison",
    filename: str = "comparison.html",
) -> Path:
    """Write an HTML report comparing several strategies run on the same data (and ``comparison.json``).

    Parameters
    ----------
    out_dir : path
        Directory to write into (created if missing).
    results : dict of str to dict
        Per strategy: ``equity`` (Series, required; all on the same index), optional ``weights``,
        ``trades``, ``rebalances``, ``metrics`` (computed when missing), ``meta`` and ``benchmark``.
    benchmark : Series, optional
        Benchmark equity for the overlay and the regime table; defaults to the first result's
        ``benchmark``.
    meta : dict, optional
        Shared metadata (``periods_per_year`` ...); defaults to the first result's ``meta``.
    title : str
        Page title.

    Returns
    -------
    Path
        The HTML file.
    """
    from reports import figures as fg

    equities, shared = _comparison_inputs(results, meta)
    ppy, rf = _meta_settings(shared, "meta")
    if benchmark is None:
        benchmark = next(
            (r["benchmark"] for r in results.values() if r.get("benchmark") is not None), None
        )
    out = ensure_out_dir(out_dir)
    metrics: dict[str, dict[str, float]] = {}
    for (name, eq), res in zip(equities.items(), results.values(), strict=True):
        metrics[name] = dict(
            res.get("metrics")
            or compute_metrics(
                eq,
                periods_per_year=ppy,
                risk_free_rate=rf,
                trades=res.get("trades"),
                weights=res.get("weights"),
                benchmark=benchmark,
                rebalances=res.get("rebalances"),
            )
        )
    columns = dict(metrics)
    if benchmark is not None:
        key = "benchmark" if "benchmark" not in columns else "benchmark (reference)"
        columns[key] = compute_metrics(benchmark, periods_per_year=ppy, risk_free_rate=rf)
    index = pd.DatetimeIndex(next(iter(equities.values())).index)
    figures: list[tuple[str, Any]] = [
        ("overlay", fg.equity_overlay_figure(equities, benchmark)),
        ("drawdown", fg.drawdown_figure(equities, benchmark)),
    ]
    window = _rolling_window(index, len(index))
    if len(index) > window + 1:
        figures.append(
            (
                "rolling",
                fg.rolling_figure(
                    equities, benchmark, window=window, periods_per_year=ppy, risk_free_rate=rf
                ),
            )
        )
    regimes: list[dict[str, Any]] = []
    if benchmark is not None:
        table = regime_performance(equities, benchmark, periods_per_year=ppy)
        regimes = regime_table_rows(table)
        figures.append(("regimes", fg.regime_figure(table)))
    for name, res in zip(equities, results.values(), strict=True):
        if res.get("weights") is not None and len(res["weights"]):
            figures.append(
                (f"weights:{name}", fg.weights_figure(res["weights"], title=f"Weights: {name}"))
            )
    params = [
        (
            name,
            [
                (str(k), json.dumps(json_safe(v)))
                for k, v in ((res.get("meta") or {}).get("strategy_params") or {}).items()
            ],
        )
        for name, res in zip(equities, results.values(), strict=True)
    ]
    context = {
        "title": title,
        "synthetic": any((r.get("meta") or {}).get("synthetic") is True for r in results.values())
        or shared.get("synthetic") is True,
        "period": _period(next(iter(equities.values()))),
        "columns": list(columns),
        "metric_rows": metric_table_rows(columns, n_compete=len(metrics)),
        "figures": figure_blocks(figures),
        "regimes": regimes,
        "params": params,
        "notes": _notes(shared, None, ppy, rf),
    }
    html_path = out / filename
    write_text_atomic(html_path, render_page("comparison.html.j2", context))
    write_text_atomic(
        out / "comparison.json", json.dumps(json_safe(metrics), indent=2, allow_nan=False)
    )
    log.info("wrote comparison %s (%.1f MB)", html_path, html_path.stat().st_size / 1e6)
    return html_path
