"""`backtest robustness`: the whole pipeline rerun on resampled markets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backtest.commands import check_out_dir


def robustness(
    config: Annotated[Path, typer.Argument(help="Experiment config (TOML).", show_default=False)],
    samples: Annotated[
        int, typer.Option(help="Resampled markets (each a whole walk-forward).")
    ] = 200,
    seed: Annotated[
        int, typer.Option(help="Seed of the draws: the same seed, the same table.")
    ] = 0,
    block_length: Annotated[
        float | None,
        typer.Option(
            "--block-length", help="Mean block length in bars (default: chosen from the data)."
        ),
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare", help="Also run the config's [[compare]] strategies on the same paths."
        ),
    ] = False,
    level: Annotated[float, typer.Option(help="Interval level.")] = 0.9,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Worker processes.")] = 1,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Dask scheduler: 'local' or an address such as tcp://host:8786."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder (default: out/<experiment name>-robustness)."
        ),
    ] = None,
) -> None:
    """Stationary block bootstrap of the market, the whole walk-forward (estimation, allocator,
    rebalancing with costs) rerun on every sample: bootstrap.parquet, intervals.csv and an HTML page
    with the distributions, the intervals and, with --compare, P(A beats B) on the same paths."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from backtest.config import load_config
    from backtest.experiment import load_market
    from backtest.robustness import HEADLINE, bootstrap
    from backtest.robustness.outputs import write_bootstrap
    from reports.metrics import METRICS
    from reports.tables import format_metric

    if not 0 < level < 1:
        raise ValueError(f"`--level` must be in (0, 1), e.g. 0.9; got {level}")
    if jobs < 1:
        raise ValueError(f"`--jobs` must be >= 1; got {jobs}")
    console = Console()
    cfg = load_config(config)
    folder = check_out_dir(out or Path("out") / f"{cfg.name}-robustness")
    market = load_market(cfg)
    label = "SYNTHETIC data" if market.synthetic else f"data: {market.source}"
    console.print(
        f"[bold]{escape(cfg.name)}[/]: {samples} resampled paths of {market.n_assets} assets x "
        f"{market.n_bars} {market.timeframe} bars ({escape(label)})"
    )
    progress = Progress(
        TextColumn("[bold]resampling"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("samples", total=samples)
    with progress:
        boot = bootstrap(
            cfg,
            samples,
            seed,
            block_length=block_length,
            compare=compare,
            market=market,
            jobs=jobs,
            scheduler=scheduler,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    paths = write_bootstrap(boot, folder, cfg=cfg, level=level)
    intervals = boot.intervals(level)
    table = Table(title=f"{level:.0%} intervals, {samples} paths", title_justify="left")
    for col in ("strategy", "metric", "point", "low", "high"):
        table.add_column(col, justify="left" if col in ("strategy", "metric") else "right")
    for r in intervals.reset_index().to_dict("records"):
        metric = str(r["metric"])
        if metric in HEADLINE:
            table.add_row(
                str(r["strategy"]),
                METRICS[metric].label,
                *(format_metric(metric, r[k]) for k in ("point", "low", "high")),
            )
    console.print(table)
    console.print(f"mean block length: {boot.block_length:.1f} bars, seed {seed}")
    if len(boot.strategies) > 1:
        first, *others = boot.strategies
        wins = boot.beats().loc[first].to_dict()
        for other in others:
            console.print(f"P({first} beats {other} on Sharpe) = {float(wins[other]):.0%}")
    console.print(f"outputs: {folder}")
    console.print(f"report: {paths['html']} (tearsheet with the intervals: {paths['report']})")


def register(app: typer.Typer) -> None:
    app.command("robustness")(robustness)
