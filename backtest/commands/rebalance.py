"""``backtest rebalance CONFIG [--execute] [--yes] [--out DIR]``: live rebalancing of an exchange account.

Dry run by default: prints the current allocation, the target (with expected return, volatility and
Sharpe), the trades under the backtest's trade rules and their estimated cost. ``--execute`` places
the limit orders after showing the plan and asking for confirmation (``--yes`` skips the question)
and reports each order's status. API keys come from ``EXCHANGE_API_KEY`` / ``EXCHANGE_API_SECRET``.
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
        bool, typer.Option("--execute", help="Place the limit orders (default: dry run).")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation before placing orders.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write plan.json, trades.csv (and orders.json)."),
    ] = None,
) -> None:
    """Current allocation -> target allocation -> rebalancing trades (dry run unless --execute)."""
    import asyncio

    from backtest.config import load_config

    cfg = load_config(config)
    if out is not None:
        check_out_dir(out)
    asyncio.run(_rebalance(cfg, execute=execute, yes=yes, out=out))


def _connector(cfg: Any, execute: bool) -> Any:
    from backtest.config import LiveConfig
    from datasets.connectors import BinanceConnector, ExchangeConnector

    live = cfg.live or LiveConfig.model_validate({})
    if cfg.data.exchange == "binance":
        return BinanceConnector(read_only=not execute, quote=live.quote, sandbox=live.sandbox)
    return ExchangeConnector(
        cfg.data.exchange, read_only=not execute, quote=live.quote, sandbox=live.sandbox
    )


async def _rebalance(cfg: Any, *, execute: bool, yes: bool, out: Path | None) -> None:
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
        reports = await analyzer.execute(plan)
        _show_orders(console, reports)
        if out is not None:
            (out / "orders.json").write_text(json.dumps([r.__dict__ for r in reports], indent=2))
        failed = [r for r in reports if r.error]
        if failed:
            raise RuntimeError(
                f"{len(failed)} of {len(reports)} order(s) failed; first: {failed[0].symbol}: "
                f"{failed[0].error}"
            )
    finally:
        await connector.close()


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


def _show_orders(console: Any, reports: list) -> None:
    from rich.table import Table

    table = Table(title="orders")
    for col in ("side", "symbol", "amount", "price", "status", "order id", "error"):
        table.add_column(col)
    for r in reports:
        table.add_row(
            r.side,
            r.symbol,
            f"{r.amount:.8g}",
            f"{r.price:.8g}",
            r.status,
            r.order_id or "",
            r.error or "",
        )
    console.print(table)


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
