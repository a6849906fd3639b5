"""From a validated config to a market, a strategy, a backtest and its output folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backtest.config import ExperimentConfig, StrategyConfig
from backtest.costs import RiskControls
from backtest.engine import run_backtest
from backtest.result import BacktestResult
from datasets import MarketData
from strategies import Allocator

log = logging.getLogger(__name__)


def load_market(cfg: ExperimentConfig) -> MarketData:
    """The panel the config asks for (synthetic, CSV, Parquet store, or ccxt fetch-then-cache)."""
    d = cfg.data
    if d.source == "synthetic":
        from datasets import synthetic_market

        market = synthetic_market(
            n_assets=d.n_assets, n_bars=d.n_bars, timeframe=d.timeframe, seed=d.seed
        )
        if d.symbols:
            market = market.select(d.symbols)
        if d.start or d.end:
            market = market.between(
                str(d.start) if d.start else None, str(d.end) if d.end else None
            )
    elif d.source == "csv":
        from datasets import load_csv

        market = load_csv(
            d.path or "",
            symbols=d.symbols,
            start=str(d.start) if d.start else None,
            end=str(d.end) if d.end else None,
            timeframe=d.timeframe,
        )
        if d.max_fill_bars:
            market = market.fill_gaps(d.max_fill_bars)
    else:
        from datasets.store import OHLCVStore

        store = OHLCVStore(d.store_root)
        if d.source == "ccxt":
            from datasets.fetch import ensure_history

            market = ensure_history(
                store,
                d.exchange,
                d.symbols or [],
                d.timeframe,
                d.start,
                d.end,
                max_fill_bars=d.max_fill_bars,
            )
        else:
            market = store.load(
                d.exchange,
                d.symbols or [],
                d.timeframe,
                d.start and str(d.start),
                d.end and str(d.end),
                max_fill_bars=d.max_fill_bars,
            )
    if d.days_per_year is not None:
        from dataclasses import replace

        market = replace(market, days_per_year=d.days_per_year)
    return market.drop_empty()


def strategy_from_config(strategy: StrategyConfig, periods_per_year: float) -> Allocator:
    """Instantiate the allocator named in the config (``strategies.registry``)."""
    from strategies.registry import STRATEGIES, build_strategy

    accepted = STRATEGIES[strategy.name].parameters
    # defaults the user did not write (e.g. risk_free_rate for equal weight) are dropped when the
    # strategy has no such parameter; anything written explicitly is checked by the registry
    params = {
        k: v
        for k, v in strategy.params().items()
        if k in accepted or k in strategy.model_fields_set
    }
    if "periods_per_year" in accepted:
        params["periods_per_year"] = periods_per_year
    return build_strategy(strategy.name, **params)


def run_experiment(
    cfg: ExperimentConfig,
    market: MarketData | None = None,
    strategy_cfg: StrategyConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    first_decision: int | None = None,
) -> BacktestResult:
    """Run the backtest a config describes (``strategy_cfg`` overrides ``cfg.strategy``;
    ``first_decision``: see :func:`backtest.engine.run_backtest`)."""
    market = market if market is not None else load_market(cfg)
    scfg = strategy_cfg or cfg.strategy
    strategy = strategy_from_config(scfg, market.periods_per_year)
    return run_backtest(
        market,
        strategy,
        rebalance=cfg.rebalance.schedule(),
        **run_settings(cfg, scfg),
        benchmark=cfg.backtest.benchmark,
        meta={"experiment": cfg.name, "title": cfg.report.title or f"{cfg.name}: {scfg.name}"},
        progress=progress,
        first_decision=first_decision,
    )


def run_settings(cfg: ExperimentConfig, scfg: StrategyConfig | None = None) -> dict[str, Any]:
    """The keyword arguments of a run that a config sets besides the market, the strategy and the
    schedule: costs, cash, execution, constraints, risk controls, the risk-free rate."""
    scfg = scfg or cfg.strategy
    return {
        "costs": cfg.costs.costs(),
        "initial_cash": cfg.costs.initial_cash,
        "execution": cfg.backtest.execution,
        "constraints": cfg.constraints.spec(scfg),
        "risk": RiskControls(**cfg.risk.model_dump()),
        "risk_free_rate": scfg.risk_free_rate,
    }


def common_start(
    cfg: ExperimentConfig, market: MarketData, strategies: list[StrategyConfig]
) -> int:
    """The first bar at which every strategy has a full lookback window (to compare them on one
    calendar)."""
    from backtest.pipeline import prepare

    return max(
        prepare(market, strategy_from_config(s, market.periods_per_year)).lookback
        for s in strategies
    )


def write_outputs(
    result: BacktestResult, cfg: ExperimentConfig, out: Path, *, html: bool = True
) -> dict[str, Path]:
    """Save the result, its resolved config, metrics JSON and (optionally) the HTML tearsheet."""
    import tomli_w

    out.mkdir(parents=True, exist_ok=True)
    result.save(out)
    (out / "config.toml").write_text(tomli_w.dumps(cfg.resolved()))
    metrics = result.metrics()
    paths = {"folder": out, "metrics": out / "metrics.json"}
    if html and cfg.report.html:
        paths["report"] = write_tearsheet(result, out, metrics)  # writes metrics.json beside it
    else:
        (out / "metrics.json").write_text(json.dumps(_finite(metrics), indent=2, sort_keys=True))
    return paths


def write_tearsheet(
    result: BacktestResult,
    out: Path,
    metrics: dict[str, float] | None = None,
    *,
    folder: Path | None = None,
) -> Path:
    """The HTML tearsheet of one result (frontier for MPT, dendrogram for HRP when available; the
    bootstrap intervals and the equity fan when ``backtest robustness`` wrote them to ``folder``,
    the result's folder, by default ``out``)."""
    from backtest.robustness.outputs import read_intervals
    from reports.html import write_report

    bootstrap = read_intervals(folder or out, result.equity)
    intervals, level, fan = bootstrap if bootstrap is not None else (None, 0.9, None)
    frontier, chosen = None, None
    extras = result.extras
    if "expected_returns" in extras and "covariance" in extras:
        frontier, chosen = _frontier(result)
    return write_report(
        out,
        equity=result.equity,
        meta=report_meta(result),
        benchmark=result.benchmark,
        weights=result.weights,
        trades=result.trades,
        rebalances=result.rebalances,
        metrics=metrics or result.metrics(),
        frontier=frontier,
        chosen=chosen,
        linkage=extras.get("linkage"),
        linkage_labels=extras.get("labels"),
        intervals=intervals,
        interval_level=level,
        fan=fan,
    )


def _frontier(result: BacktestResult) -> tuple[Any, Any]:
    """The last decision's frontier under its universe's limits, and the chosen portfolio on it."""
    import numpy as np

    from strategies.frontier import decision_frontier

    mu = np.asarray(result.extras["expected_returns"], dtype=float)
    cov = np.asarray(result.extras["covariance"], dtype=float)
    symbols = list(result.meta["symbols"])
    labels = [str(s) for s in result.extras.get("labels", [])] or symbols[: mu.size]
    net: dict[str, Any] = {}
    if "previous" in result.extras:  # a cost-aware MPT: the frontier net of trading from its book
        params = result.meta.get("strategy_params", {})
        net = {
            "previous": np.asarray(result.extras["previous"], dtype=float),
            "transaction_cost": np.asarray(  # per member with market impact (the walk-forward's)
                result.extras.get("transaction_cost", params.get("transaction_cost", 0.0)),
                dtype=float,
            ),
            "max_turnover": params.get("max_turnover"),
            "risk_aversion": float(params.get("risk_aversion", 1.0)),
        }
    frame = decision_frontier(
        mu,
        cov,
        result.meta.get("constraints"),
        [symbols.index(s) for s in labels],
        len(symbols),
        risk_free_rate=result.meta.get("risk_free_rate", 0.02),
        symbols=labels,
        **net,
    )
    w = np.asarray(result.extras.get("weights", []), dtype=float)
    chosen = None
    if w.size == mu.size:
        chosen = {"return": float(w @ mu), "volatility": float(np.sqrt(w @ cov @ w))}
    return frame, chosen


def report_meta(result: BacktestResult) -> dict[str, Any]:
    m = result.meta
    return {
        "title": m.get("title", m.get("strategy")),
        "strategy": m.get("strategy"),
        "strategy_params": m.get("strategy_params", {}),
        "data_source": m.get("data_source"),
        "synthetic": m.get("synthetic", False),
        "timeframe": m.get("timeframe"),
        "periods_per_year": m.get("periods_per_year"),
        "risk_free_rate": m.get("risk_free_rate"),
        "gap_policy": m.get("gap_policy"),
        "data_notes": result.diagnostics.get("data_notes", []),
        "universe_changes": result.diagnostics.get("universe_changes", []),
        "allocator_fallbacks": result.diagnostics.get("allocator_fallbacks", []),
        "symbols": m.get("symbols", []),
        "schedule": m.get("schedule"),
        "execution": m.get("execution"),
        "costs": m.get("costs", {}),
        "benchmark": m.get("benchmark"),
    }


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    import math

    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()
    }
