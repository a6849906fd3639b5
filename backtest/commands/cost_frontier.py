"""`backtest cost-frontier`: the cost / tracking-error frontier of rebalancing policies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backtest.commands import check_out_dir


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(
            f"`{option}` must be comma-separated numbers such as 0.01,0.02; got {text!r}"
        ) from None
    return values


def cost_frontier(
    config: Annotated[Path, typer.Argument(help="Experiment config (TOML).", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder (default: out/<experiment name>-frontier)."
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(
            help="Calendar policies, e.g. 1D,1W,1M (default: every period longer than a bar)."
        ),
    ] = None,
    bands: Annotated[
        str | None,
        typer.Option(
            help="Absolute drift bands, e.g. 0.01,0.05 (default 0.005,0.01,0.02,0.05,0.1)."
        ),
    ] = None,
    risk_aversion: Annotated[
        str | None,
        typer.Option(
            "--risk-aversion",
            help="Risk aversions of the cost-aware bands, e.g. 1,10 (default 0.1 to 100).",
        ),
    ] = None,
) -> None:
    """Simulate the experiment's strategy under a grid of rebalancing policies (calendar, drift
    bands, cost-aware bands) and write each policy's annual cost, tracking error (against the
    every-bar costless rebalance), turnover and Sharpe: Parquet, CSV and an HTML scatter."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from backtest.commands.run import progress_callback
    from backtest.config import load_config
    from backtest.cost_frontier import cost_frontier as frontier_of
    from backtest.cost_frontier import policy_grid, write_cost_frontier
    from backtest.experiment import load_market, run_settings, strategy_from_config

    console = Console()
    cfg = load_config(config)
    folder = check_out_dir(out or Path("out") / f"{cfg.name}-frontier")
    drift = _floats(bands, "--bands")
    aversions = _floats(risk_aversion, "--risk-aversion")
    calendar = [e.strip() for e in every.split(",") if e.strip()] if every is not None else None
    market = load_market(cfg)
    policies = policy_grid(
        market.index, every=calendar, drift_bands=drift, risk_aversions=aversions
    )
    strategy = strategy_from_config(cfg.strategy, market.periods_per_year)
    label = "SYNTHETIC data" if market.synthetic else f"data: {market.source}"
    console.print(
        f"[bold]{escape(cfg.name)}[/]: {len(policies)} rebalancing policies of "
        f"{cfg.strategy.name} on {market.n_assets} assets x {market.n_bars} {market.timeframe} "
        f"bars ({escape(label)})"
    )
    progress, update = progress_callback(console)
    with progress:
        frontier = frontier_of(
            market, strategy, policies=policies, progress=update, **run_settings(cfg)
        )
    paths = write_cost_frontier(
        frontier, folder, title=f"{cfg.name}: cost / tracking-error frontier"
    )
    shown = frontier.table[(frontier.table["kind"] == "calendar") | frontier.table["efficient"]]
    table = Table(
        title=f"{cfg.name}: the calendar and the efficient policies, {len(shown)} of "
        f"{len(frontier.table)} (all in cost_frontier.csv)"
    )
    for col in ("policy", "annual cost", "tracking error", "turnover", "Sharpe", "efficient"):
        table.add_column(col, justify="left" if col == "policy" else "right", no_wrap=True)
    for _, r in shown.iterrows():
        table.add_row(
            r["policy"],
            f"{r['annual_cost']:.3%}",
            f"{r['tracking_error']:.2%}",
            f"{r['turnover']:.2f}",
            f"{r['sharpe']:.2f}",
            "yes" if r["efficient"] else "",
        )
    console.print(table)
    for _, r in frontier.against_calendar().iterrows():
        if r["band"]:
            console.print(
                f"{r['calendar']}: cost {r['calendar_cost']:.3%}, tracking error "
                f"{r['calendar_tracking_error']:.2%}; the cheapest cost band as close, "
                f"{r['band']}: cost {r['band_cost']:.3%}, tracking error "
                f"{r['band_tracking_error']:.2%}"
            )
        else:
            console.print(f"{r['calendar']}: no cost band tracks as closely")
    console.print(f"outputs: {folder}")
    console.print(f"report: {paths['html']}")


def register(app: typer.Typer) -> None:
    app.command("cost-frontier")(cost_frontier)
