"""`backtest sweep CONFIG`: run a parameter grid, then the overfitting statistics and the sweep report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from backtest.commands import check_out_dir

_SHOWN = [
    ("sharpe", "Sharpe", "{:.2f}"),
    ("cagr", "CAGR", "{:.1%}"),
    ("max_drawdown", "Max DD", "{:.1%}"),
    ("turnover", "Turnover", "{:.1f}"),
]


def _progress(console: Any) -> tuple[Any, Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("points"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    task = progress.add_task("points", total=None, rate="")
    state: dict[str, float] = {"done": 0}

    def update(done: int, total: int) -> None:
        import time

        now = time.perf_counter()
        if "first" not in state:
            state["first"], state["start_done"] = now, done
        state["done"] = done
        ran, elapsed = done - state["start_done"], now - state["first"]
        rate = f"{ran / elapsed:.1f} backtests/s" if ran and elapsed > 0 else ""
        progress.update(task, completed=done, total=total, rate=rate)

    return progress, (update, state)


def _labels(table: Any, keys: list[str]) -> dict[str, str]:
    varying = [
        k for k in keys if k in table.columns and table[k].nunique(dropna=False) > 1
    ] or keys[:1]
    return {
        str(r["point_id"]): ", ".join(f"{k.split('.')[-1]}={r[k]}" for k in varying)
        for _, r in table.iterrows()
    }


def _axes(table: Any, keys: list[str], base: Any) -> tuple[Any, str, str, str | None]:
    """Heatmap columns (lookback x rebalance, one panel per strategy); constants from the base config."""
    table = table.copy()
    x = "strategy.lookback_days"
    if x not in table:
        table[x] = base.strategy.lookback_days
    y = next((k for k in keys if k.startswith("rebalance")), "rebalance")
    if y not in table:
        table[y] = base.rebalance.schedule().refresh
    facet = (
        "strategy.name"
        if "strategy.name" in keys
        else next((k for k in keys if k.startswith("strategy.") and k != x), None)
    )
    return table, x, y, facet


def sweep(
    config: Annotated[
        Path,
        typer.Argument(help="Experiment config (TOML) with a \\[sweep] table.", show_default=False),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: out/sweep-<name>).")
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Worker processes (default: all cores; 1 = in this process).",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask: 'local' (a LocalCluster) or 'tcp://host:8786'."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a sweep in --out, skipping finished points.")
    ] = False,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows in the top-N table.")] = 10,
    no_html: Annotated[bool, typer.Option("--no-html", help="Skip the HTML report.")] = False,
) -> None:
    """Run every point of the config's \\[sweep] grid: table (Parquet + CSV), DSR/PBO, walk-forward tuning, report."""
    import tomllib

    from rich.console import Console

    from backtest.sweep import run_sweep

    console = Console()
    try:
        name = (
            tomllib.loads(config.read_text()).get("name", "experiment")
            if config.is_file()
            else "experiment"
        )
    except tomllib.TOMLDecodeError:
        name = "experiment"
    folder = check_out_dir(out or Path("out") / f"sweep-{name}")
    progress, (update, state) = _progress(console)
    try:
        with progress:
            result = run_sweep(
                config, folder, jobs=jobs, scheduler=scheduler, resume=resume, progress=update
            )
    except KeyboardInterrupt:
        console.print(
            f"[yellow]interrupted[/]: {state['done']} points are saved in {folder}; "
            f"`backtest sweep {config} --out {folder} --resume` continues",
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    if result.n_resumed:
        console.print(f"resumed: {result.n_resumed} points were already done")
    _finish(console, result, top, html=not no_html)


def _finish(console: Any, result: Any, top: int, *, html: bool) -> None:
    import numpy as np
    from rich.markup import escape

    from backtest.sweep.overfit import sweep_statistics
    from reports.sweep import read_cpcv, read_dsr, read_pbo, read_walk_forward

    table, base = result.table, result.config
    market = next(iter(result.markets.values()))
    errors = table[table["error"] != ""] if "error" in table else table.iloc[:0]
    label = "SYNTHETIC data" if market.synthetic else f"data: {market.source}"
    console.print(
        f"[bold]{escape(base.name)}[/]: {result.n_points} points ({escape(label)}), route {result.route}"
    )
    if len(errors):
        console.print(
            f"[yellow]{len(errors)} points failed[/] (see the `error` column), e.g.: {escape(errors['error'].iloc[0])}",
            soft_wrap=True,
        )
    stats = sweep_statistics(
        result.returns,
        periods_per_year=result.periods_per_year,
        risk_free_rate=base.strategy.risk_free_rate,
        cpcv=_cpcv_options(base),
    )
    summary: dict[str, Any] = stats.to_dict(result.periods_per_year)
    (result.out / "overfit.json").write_text(json.dumps(_finite(summary), indent=2, default=str))
    labels = _labels(table, result.param_keys)
    console.print(_top_table(table, labels, top))
    readers = (
        ("dsr", read_dsr),
        ("pbo", read_pbo),
        ("walk_forward", read_walk_forward),
        ("cpcv", read_cpcv),
    )
    for key, read in readers:
        if key in summary:
            console.print(
                f"[bold]{key.replace('_', '-').upper()}[/]: {read(summary[key])}", soft_wrap=True
            )
    for note in summary["notes"]:
        console.print(f"note: {escape(note)}")
    console.print(
        f"table: {result.out / 'sweep.parquet'} (+ sweep.csv, returns.parquet, overfit.json)"
    )
    if not html:
        return
    from reports.sweep import write_sweep_report

    frame, x, y, facet = _axes(table, result.param_keys, base)
    wf_equity = None
    if stats.walk_forward is not None:
        wf = stats.walk_forward
        hind = result.returns[wf.hindsight].loc[wf.oos_returns.index]
        wf_equity = {
            "walk-forward (out of sample)": (1 + wf.oos_returns).cumprod(),
            f"hindsight best: {labels.get(wf.hindsight, wf.hindsight)}": (1 + hind).cumprod(),
        }
    orders = {
        k: [json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v for v in values]
        for k, values in _sweep_lists(base).items()
    }
    path = write_sweep_report(
        result.out,
        frame,
        x=x,
        y=y,
        facet=facet,
        params=[k for k in result.param_keys if frame[k].nunique() > 1],
        labels=labels,
        orders=orders,
        top=top,
        statistics=summary,
        logits=stats.pbo.logits if stats.pbo is not None else np.array([]),
        walk_forward_equity=wf_equity,
        cpcv_equity=_cpcv_equity(stats, result.returns),
        meta={
            "title": f"Sweep: {base.name}",
            "synthetic": bool(market.synthetic),
            "subtitle": f"{result.n_points} grid points · {label} · {market.timeframe} bars · route {result.route}",
        },
    )
    console.print(f"report: {path}")


def _sweep_lists(base: Any) -> dict[str, list[Any]]:
    return base.sweep.grid() if base.sweep is not None else {}


def _cpcv_options(base: Any) -> dict[str, int] | None:
    """``[sweep] validation = "cpcv"`` options as the keyword arguments of the CPCV function."""
    s = base.sweep
    if s is None or s.validation != "cpcv":
        return None
    return {
        "n_groups": s.groups,
        "n_test_groups": s.test_groups,
        "purge": s.purge,
        "embargo": s.embargo,
    }


def _cpcv_equity(stats: Any, returns: Any, most: int = 50) -> dict[str, Any] | None:
    """Equity of (up to ``most``) CPCV paths over the common period, for the report."""
    if stats.cpcv is None:
        return None
    import pandas as pd

    from backtest.sweep.overfit import common_period

    common = common_period(returns)  # the bars and columns the statistics used
    paths = stats.cpcv.path_returns(common)[:, :most]
    equity = (1 + pd.DataFrame(paths, index=common.index)).cumprod()
    return {f"path {i + 1}": equity.iloc[:, i] for i in range(equity.shape[1])}


def _top_table(table: Any, labels: dict[str, str], top: int) -> Any:
    from rich.table import Table

    ok = table[table["error"] == ""] if "error" in table else table
    ranked = ok.sort_values("sharpe", ascending=False, kind="mergesort").head(top)
    out = Table(title=f"top {len(ranked)} of {len(table)} points by Sharpe")
    out.add_column("#", justify="right")
    out.add_column("point")
    for _, head, _ in _SHOWN:
        out.add_column(head, justify="right")
    for i, (_, r) in enumerate(ranked.iterrows(), 1):
        cells = [
            "n/a" if not math.isfinite(float(r[k])) else fmt.format(float(r[k]))
            for k, _, fmt in _SHOWN
        ]
        out.add_row(str(i), labels.get(str(r["point_id"]), str(r["point_id"])), *cells)
    return out


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
