"""Self-contained HTML tearsheet and strategy-comparison report (open offline, no CDN).

One HTML file per report: plotly.js is inlined once, each figure's JSON sits in a
``<script type="application/json">`` block (``<``, ``>`` and ``&`` escaped as ``\\u003c`` ... so no
user text can close the block), and Jinja renders everything else with autoescape on. A
``metrics.json`` (tearsheet) or ``comparison.json`` (comparison) is written beside the HTML.

When every figure has been drawn the page sets ``data-render-done="1"``, ``data-figures-rendered`` and
``data-js-errors`` on ``<body>`` (the browser test reads them).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.metrics import (
    METRICS,
    _check_equity,
    _check_ppy,
    compute_metrics,
    rebalance_diagnostics,
)
from reports.regimes import _bars_per_day, regime_performance

__all__ = ["format_metric", "metrics_frame", "write_comparison", "write_report"]

log = logging.getLogger(__name__)

_TEMPLATES = Path(__file__).with_name("templates")
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
MAX_NOTE_ROWS = 200


# ---------------------------------------------------------------------------------------------
# formatting


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


def _metric_rows(
    columns: Mapping[str, Mapping[str, float]], *, n_compete: int = 0
) -> list[dict[str, Any]]:
    """Grouped table rows: group, label, formula, one formatted cell per column.

    Among the first ``n_compete`` columns (the strategies, not the benchmark) the best value of each
    metric with a direction is flagged, unless they all tie.
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
                    ],
                }
            )
    return rows


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, anything else unknown -> str (for JSON files)."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


@functools.lru_cache(maxsize=1)
def _file_mode() -> int:
    """0o666 minus the process umask: what ``open()`` would give (mkstemp alone gives 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_text(path: Path, text: str) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# page assembly


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "n/a" if v is None or not math.isfinite(float(v)) else f"{v:.2%}"
    return env


@functools.lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


def _figure_json(fig: Any) -> str:
    """Figure JSON that is safe inside ``<script type="application/json">`` (no ``<``, ``>``, ``&``)."""
    raw = fig.to_json(validate=False, pretty=False)
    return (
        raw.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _figure_blocks(figures: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    from markupsafe import Markup

    return [
        {"id": f"fig-{i}", "key": key, "json": Markup(_figure_json(fig))}
        for i, (key, fig) in enumerate(figures)
    ]


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("alphapulse-backtest", "plotly", "pandas", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def _render(template: str, context: dict[str, Any]) -> str:
    from markupsafe import Markup

    page = _environment().get_template(template)
    return page.render(
        plotly_js=Markup(_plotly_js()),
        versions=_versions(),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **context,
    )


def _meta_settings(meta: Mapping[str, Any], name: str = "meta") -> tuple[float, float]:
    if not isinstance(meta, Mapping):
        raise TypeError(f"`{name}` must be a dict of report metadata; got {type(meta).__name__}")
    if meta.get("periods_per_year") is None:
        raise ValueError(
            f"`{name}['periods_per_year']` is required to annualise; got none "
            f"(365 for daily crypto, 8760 for hourly crypto, 252 for daily stocks)"
        )
    rf = meta.get("risk_free_rate")
    return _check_ppy(meta["periods_per_year"]), 0.02 if rf is None else float(rf)


def _rolling_window(index: pd.DatetimeIndex, n: int, days: float = 90.0) -> int:
    return int(max(2, min(round(days * _bars_per_day(index)), max(2, n // 3))))


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
            (str(k), json.dumps(_json_safe(v)))
            for k, v in (meta.get("strategy_params") or {}).items()
        ],
        "config": json.dumps(_json_safe(config), indent=2) if config else "",
    }


def _regime_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for rec in table.to_dict("records"):
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


def _ensure_dir(out_dir: str | os.PathLike[str]) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"`out_dir` must be a directory; got the file {out} (choose another --out)"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


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
    filename : str
        Name of the HTML file.

    Returns
    -------
    Path
        The HTML file.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=60, freq="D", tz="UTC")
    >>> eq = pd.Series(np.linspace(100, 120, 60), index=idx)
    >>> path = write_report(tempfile.mkdtemp(), equity=eq, meta={"periods_per_year": 365, "title": "demo"})
    >>> path.name, (path.parent / "metrics.json").exists()
    ('report.html', True)
    """
    from reports import figures as fg

    equity = _check_equity(equity)
    ppy, rf = _meta_settings(meta)
    out = _ensure_dir(out_dir)
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
        regimes = _regime_rows(table)
    context = {
        "title": str(meta.get("title") or f"Backtest: {name}"),
        "strategy": name,
        "synthetic": meta.get("synthetic") is True,
        "period": _period(equity),
        "headline": [
            (METRICS[k].label, format_metric(k, metrics.get(k, math.nan))) for k in HEADLINE
        ],
        "columns": list(columns),
        "metric_rows": _metric_rows(columns),
        "figures": _figure_blocks(figures),
        "regimes": regimes,
        "notes": _notes(meta, diagnostics, ppy, rf),
    }
    html_path = out / filename
    _write_text(html_path, _render("tearsheet.html.j2", context))
    _write_text(
        out / "metrics.json", json.dumps(_json_safe(dict(metrics)), indent=2, allow_nan=False)
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
        equities[str(name)] = _check_equity(res["equity"], f"results[{name!r}]['equity']")
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
    out = _ensure_dir(out_dir)
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
        regimes = _regime_rows(table)
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
                (str(k), json.dumps(_json_safe(v)))
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
        "metric_rows": _metric_rows(columns, n_compete=len(metrics)),
        "figures": _figure_blocks(figures),
        "regimes": regimes,
        "params": params,
        "notes": _notes(shared, None, ppy, rf),
    }
    html_path = out / filename
    _write_text(html_path, _render("comparison.html.j2", context))
    _write_text(out / "comparison.json", json.dumps(_json_safe(metrics), indent=2, allow_nan=False))
    log.info("wrote comparison %s (%.1f MB)", html_path, html_path.stat().st_size / 1e6)
    return html_path
