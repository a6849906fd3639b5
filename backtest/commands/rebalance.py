"""``backtest rebalance CONFIG [--execute] [--yes] [--out DIR]``: live rebalancing of an exchange account.

Dry run by default: prints the current allocation, the target (with expected return, volatility and
Sharpe), the trades under the backtest's trade rules and their estimated cost. ``--execute`` shows
the plan, asks for confirmation (``--yes`` skips the question) and runs it through the execution
loop (:meth:`backtest.live.PortfolioAnalyzer.execute`: the journal's possibly open orders settled
first, limit orders watched, repriced or canceled after ``[live] order_timeout_seconds``, balances
checked at the end), then reports each order's outcome. Every run writes its snapshot and plan (dry
runs marked ``dry_run``), and the execution's intents, statuses and fills, to the account's journal
(``--journal DIR``, default the Parquet store root's ``journal/``; see :mod:`backtest.live.journal`).
API keys come from ``EXCHANGE_API_KEY`` / ``EXCHANGE_API_SECRET``.
ccxt and the engine are imported inside the command, so ``backtest --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from backtest.commands import check_out_dir


def register(app: typer.Typer) -> None:
    """Attach ``rebalance`` to the main app."""
    app.command("rebalance")(rebalance)


def rebalance(
    config: Annotated[
        Path,
        typer.Argument(
            help="Experiment config (TOML) with [data], [strategy], [costs], [live].",
            show_default=False,
        ),
    ],
    execute: Annotated[
        bool, typer.Option("--execute", help="Place and watch the limit orders (default: dry run).")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation before placing orders.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write plan.json, trades.csv (and orders.json)."),
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option(
            "--journal",
            help="Journal root (one folder per account); default: the store root's journal/.",
        ),
    ] = None,
) -> None:
    """Current allocation -> target allocation -> rebalancing trades (dry run unless --execute)."""
    import asyncio

    from backtest.config import load_config

    cfg = load_config(config)
    if out is not None:
        check_out_dir(out)
    if journal is not None:
        check_out_dir(journal, "--journal")
    asyncio.run(_rebalance(cfg, execute=execute, yes=yes, out=out, journal_root=journal))


def _connector(cfg: Any, execute: bool) -> Any:
    from backtest.config import LiveConfig
    from datasets.connectors import BinanceConnector, ExchangeConnector

    live = cfg.live or LiveConfig.model_validate({})
    if cfg.data.exchange == "binance":
        return BinanceConnector(read_only=not execute, quote=live.quote, sandbox=live.sandbox)
    return ExchangeConnector(
        cfg.data.exchange, read_only=not execute, quote=live.quote, sandbox=live.sandbox
    )


def open_journal(cfg: Any, root: Path | None, redact: Any = None) -> Any:
    """The config's account journal under ``root`` (default: the store root's ``journal/``);
    the account is ``[live] account``, else ``<exchange>-<mode>``."""
    from backtest.config import LiveConfig
    from backtest.live.journal import Journal
    from datasets.store import OHLCVStore

    live = cfg.live or LiveConfig.model_validate({})
    folder = root if root is not None else OHLCVStore(cfg.data.store_root).root / "journal"
    return Journal(folder, live.account or f"{cfg.data.exchange}-{live.mode}", redact=redact)


async def _rebalance(
    cfg: Any, *, execute: bool, yes: bool, out: Path | None, journal_root: Path | None = None
) -> None:
    from backtest.config import LiveConfig
    from backtest.costs import Costs
    from backtest.experiment import strategy_from_config
    from backtest.live import PortfolioAnalyzer
    from datasets.store import OHLCVStore
    from datasets.timeframe import periods_per_year

    live = cfg.live or LiveConfig.model_validate({})
    connector = _connector(cfg, execute)
    connector.require_keys("reading the account's balances")
    strategy = strategy_from_config(cfg.strategy, periods_per_year(cfg.data.timeframe))
    c = cfg.costs
    analyzer = PortfolioAnalyzer(
        connector,
        strategy,
        cfg.strategy.lookback_days,
        universe=cfg.data.symbols,
        timeframe=cfg.data.timeframe,
        store=OHLCVStore(cfg.data.store_root),
        settings=live,
        costs=Costs(
            fee_bps=c.fee_bps,
            slippage_bps=c.slippage_bps,
            impact_coef=c.impact_coef,
            sizing=c.sizing,
        ),
    )
    console = _console()
    try:
        result = await analyzer.analyze_portfolio(cfg.constraints.spec(cfg.strategy))
        plan = analyzer.get_rebalancing_trades(
            result.current_weights, result.weights, result.diagnostics["total_value"]
        )
        _show(console, cfg, connector, analyzer, result, plan)
        journal = open_journal(cfg, journal_root, connector.redact)
        _record_plan(journal, cfg, analyzer, result, plan, dry_run=not execute)
        if out is not None:
            _write(out, result, plan)
        if not execute:
            console.print("dry run: no orders placed (add --execute to place them)")
            return
        if not len(plan):
            console.print("nothing to trade: no orders placed")
            return
        n_orders = sum(len(t.slices) for t in plan)
        if not yes:
            typer.confirm(
                f"Place {n_orders} limit order(s) on {connector.exchange_id} "
                f"(turnover {plan.turnover:,.2f} {plan.quote})?",
                abort=True,
            )
        report = await analyzer.execute(plan, journal)
        _show_execution(console, report)
        if out is not None:
            (out / "orders.json").write_text(
                json.dumps([r.__dict__ for r in report.orders], indent=2)
            )
        failed = [r for r in report.orders if r.error]
        if failed:
            raise RuntimeError(
                f"{len(failed)} of {len(report.orders)} order(s) failed; first: "
                f"{failed[0].symbol}: {failed[0].error}"
            )
    finally:
        await connector.close()


def _record_plan(
    journal: Any, cfg: Any, analyzer: Any, result: Any, plan: Any, *, dry_run: bool
) -> None:
    """Commit the snapshot (holdings, prices, weights, score) and the plan."""
    import pandas as pd

    from backtest.live.journal import decision_snapshot, plan_frame

    now = pd.Timestamp.now(tz="UTC").floor("ms")
    snapshot = decision_snapshot(now, analyzer, result, plan, cfg, dry_run=dry_run)
    journal.append({"snapshots": snapshot, "plans": plan_frame(now, plan)})


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False, markup=False)
    if not console.is_terminal:
        console.width = 160
    return console


def _show(console: Any, cfg: Any, connector: Any, analyzer: Any, result: Any, plan: Any) -> None:
    from rich.table import Table

    quote = plan.quote
    console.print(f"{cfg.name}: {connector.exchange_id} account, {plan.total_value:,.2f} {quote}")
    table = Table()
    for col in ("asset", "current", "target", "change"):
        table.add_column(col, justify="left" if col == "asset" else "right")
    for asset in dict.fromkeys([*result.current_weights, *result.weights]):
        cur, tgt = result.current_weights.get(asset, 0.0), result.weights.get(asset, 0.0)
        table.add_row(asset, f"{cur:.2%}", f"{tgt:.2%}", f"{tgt - cur:+.2%}")
    console.print(table)
    console.print(
        f"target: {result.diagnostics['strategy']} ({result.method}) on {result.diagnostics['n_obs']} "
        f"{analyzer.timeframe} returns to {result.diagnostics['window_end']}: expected return "
        f"{result.expected_return:.2%}, volatility {result.volatility:.2%}, Sharpe {result.sharpe_ratio:.2f}"
    )
    for note in (*result.notes, *(f"{a}: {r}" for a, r in analyzer.ignored.items())):
        console.print(f"  note: {note}")
    trades = Table(title="rebalancing trades (sells first)")
    for col in (
        "side",
        "symbol",
        "amount",
        "limit price",
        f"value ({quote})",
        "weight change",
        "orders",
    ):
        trades.add_column(col, justify="left" if col in ("side", "symbol") else "right")
    for t in plan:
        trades.add_row(
            t.side,
            t.symbol,
            f"{t.amount:.8g}",
            f"{t.limit_price:.8g}",
            f"{t.value:,.2f}",
            f"{t.weight_change:+.2%}",
            str(len(t.slices)),
        )
    console.print(trades)
    for note in plan.notes:
        console.print(f"  note: {note}")
    console.print(
        f"rebalancing score {plan.score:.4f} (half the sum of |target - current| weights); "
        f"turnover {plan.turnover:,.2f} {quote}; estimated cost {plan.estimated_cost:,.4f} {quote} "
        f"(fees {plan.fees:,.4f})"
    )


def _show_execution(console: Any, report: Any) -> None:
    """The orders (settled ones of an earlier run first), what stayed unfilled and the notes."""
    from rich.table import Table

    table = Table(title="orders")
    for col in ("side", "symbol", "amount", "price", "status", "filled", "client id", "error"):
        table.add_column(col)
    for r in (*report.reconciled, *report.orders):
        table.add_row(
            r.side,
            r.symbol,
            f"{r.amount:.8g}",
            f"{r.price:.8g}",
            r.status,
            f"{r.filled:.8g}",
            r.client_order_id or "",
            r.error or "",
        )
    console.print(table)
    if report.reconciled:
        console.print(
            f"  note: {len(report.reconciled)} order(s) left open by an earlier run were settled "
            "before placing new ones"
        )
    for symbol, amount in report.unfilled.items():
        console.print(f"  note: {symbol}: {amount:.8g} not filled")
    for note in report.notes:
        console.print(f"  note: {note}")


def _write(folder: Path, result: Any, plan: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    analysis = {
        "current_weights": result.current_weights,
        "target_weights": result.weights,
        "expected_return": result.expected_return,
        "volatility": result.volatility,
        "sharpe_ratio": result.sharpe_ratio,
        "method": result.method,
        "notes": list(result.notes),
        "diagnostics": result.diagnostics,
    }
    (folder / "plan.json").write_text(
        json.dumps({"analysis": analysis, "plan": plan.as_dict()}, indent=2, default=str)
    )
    plan.to_frame().to_csv(folder / "trades.csv", index=False)
    if result.frontier is not None:
        result.frontier.to_csv(folder / "frontier.csv", index=False)
