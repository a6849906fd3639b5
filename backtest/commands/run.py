"""`backtest run`, `backtest compare` and `backtest report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from backtest.commands import check_out_dir

OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Output folder (default: out/<experiment name>).")
]

_HEADLINE = [
    ("total_return", "Total return", "{:.2%}"),
    ("cagr", "CAGR", "{:.2%}"),
    ("volatility", "Volatility (ann.)", "{:.2%}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("max_drawdown", "Max drawdown", "{:.2%}"),
    ("calmar", "Calmar", "{:.2f}"),
    ("turnover", "Turnover (ann.)", "{:.2f}"),
    ("fees", "Fees paid", "{:,.2f}"),
    ("total_costs", "All costs", "{:,.2f}"),
    ("cost_drag_bps", "Cost drag (bps/yr)", "{:.1f}"),
    ("n_trades", "Trades", "{:.0f}"),
]


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return pattern.format(value)


def metrics_table(
    columns: dict[str, dict[str, float]], title: str, caption: str | None = None
) -> Any:
    """A rich table of headline metrics, one column per strategy.

    ``title`` (keep it short: the experiment's name) and ``caption`` (details such as the data
    source) are plain text, one line each: the table widens to fit them, up to the console's width,
    and beyond that they are cut with an ellipsis rather than wrapped into the table's width.
    """
    from rich.table import Table
    from rich.text import Text

    def line(text: str, style: str = "") -> Text:
        return Text(text, style=style, no_wrap=True, overflow="ellipsis")

    table = Table(
        title=line(title, "table.title"),
        caption=line(caption, "table.caption") if caption else None,
        min_width=max(len(title), len(caption or "")) + 4,
        show_lines=False,
    )
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    for key, label, pattern in _HEADLINE:
        if any(key in m for m in columns.values()):
            table.add_row(label, *(_fmt(m.get(key), pattern) for m in columns.values()))
    return table


def progress_callback(console: Any) -> tuple[Any, Any]:
    """A transient rich progress bar of the allocator's decisions and its ``(done, total)`` callback."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]allocating"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("decisions", total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (TOML).", show_default=False)],
    out: OutOption = None,
    no_html: Annotated[bool, typer.Option("--no-html", help="Skip the HTML tearsheet.")] = False,
) -> None:
    """Run one walk-forward backtest: metrics table, Parquet/JSON outputs and an HTML tearsheet."""
    from rich.console import Console
    from rich.markup import escape

    from backtest.config import load_config
    from backtest.experiment import load_market, run_experiment, write_outputs

    console = Console(stderr=False)
    cfg = load_config(config)
    folder = check_out_dir(out or Path("out") / cfg.name)
    market = load_market(cfg)
    label = "SYNTHETIC data" if market.synthetic else f"data: {market.source}"
    console.print(
        f"[bold]{escape(cfg.name)}[/]: {cfg.strategy.name} on {market.n_assets} assets x "
        f"{market.n_bars} {market.timeframe} bars ({escape(label)})"
    )
    progress, update = progress_callback(console)
    with progress:
        result = run_experiment(cfg, market, progress=update)
    paths = write_outputs(result, cfg, folder, html=not no_html)
    metrics = json.loads(paths["metrics"].read_text())
    console.print(metrics_table({cfg.strategy.name: metrics}, cfg.name, label))
    if result.diagnostics["n_fallbacks"]:
        console.print(
            f"allocator fallbacks: {result.diagnostics['n_fallbacks']} (see the report's data notes)"
        )
    console.print(f"outputs: {folder}")
    if "report" in paths:
        console.print(f"report: {paths['report']}")


def compare(
    configs: Annotated[
        list[Path],
        typer.Argument(help="One or more configs; a config's [[compare]] tables add strategies."),
    ],
    out: OutOption = None,
) -> None:
    """Run several strategies/configs on the same data and write a comparison report."""
    from rich.console import Console

    from backtest.config import load_config
    from backtest.experiment import (
        common_start,
        load_market,
        report_meta,
        run_experiment,
        write_outputs,
    )
    from reports.html import write_comparison

    console = Console()
    cfgs = [load_config(c) for c in configs]
    results: dict[str, Any] = {}
    folder = check_out_dir(out or Path("out") / ("compare-" + "-".join(c.name for c in cfgs)))
    fingerprints = set()
    # every strategy starts on one calendar: the first bar at which all have a full lookback
    markets = [load_market(cfg) for cfg in cfgs]
    starts = [
        market.index[common_start(cfg, market, [cfg.strategy, *(cfg.compare or [])])]
        for cfg, market in zip(cfgs, markets, strict=True)
    ]
    start = max(starts)
    for cfg, market in zip(cfgs, markets, strict=True):
        fingerprints.add(market.fingerprint())
        first = int(market.index.searchsorted(start))
        for scfg in [cfg.strategy, *(cfg.compare or [])]:
            label = _unique(f"{cfg.name}:{scfg.name}" if len(cfgs) > 1 else scfg.name, results)
            console.print(f"running {label} ...")
            result = run_experiment(cfg, market, strategy_cfg=scfg, first_decision=first)
            sub = folder / _slug(label)
            write_outputs(result, cfg.model_copy(update={"strategy": scfg}), sub, html=False)
            results[label] = {
                "equity": result.equity,
                "weights": result.weights,
                "metrics": result.metrics(),
                "meta": report_meta(result),
                "benchmark": result.benchmark,
                "trades": result.trades,
                "rebalances": result.rebalances,
            }
    if len(fingerprints) > 1:
        console.print(
            "[yellow]warning: the configs load different data; the comparison mixes markets[/]"
        )
    path = write_comparison(folder, results)
    console.print(metrics_table({k: v["metrics"] for k, v in results.items()}, "comparison"))
    console.print(f"report: {path}")


def report(
    result_dir: Annotated[Path, typer.Argument(help="A folder written by `backtest run`.")],
    out: OutOption = None,
) -> None:
    """Rebuild the HTML tearsheet from a saved result folder."""
    from backtest.experiment import write_tearsheet
    from backtest.result import BacktestResult

    if out is not None:
        check_out_dir(out)
    result = BacktestResult.load(result_dir)
    path = write_tearsheet(result, out or result_dir, folder=result_dir)
    typer.echo(f"report: {path}")


def _unique(label: str, taken: dict[str, Any]) -> str:
    name, k = label, 2
    while name in taken:
        name, k = f"{label}#{k}", k + 1
    return name


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("compare")(compare)
    app.command("report")(report)
