"""Replay: the live pipeline, day by day over history, against the paper account, into a journal.

At each decision bar of the config's schedule (the backtest's own
:func:`backtest.pipeline.decision_bars`, so the same bars as ``run_backtest``) the clock of a
:class:`~backtest.live.paper.PaperBook` stands at that bar's close and
:class:`~backtest.live.PortfolioAnalyzer` does what it does live: current allocation from the
paper balances, ``analyze_portfolio`` on the history up to the clock, the plan under the kernel's
trade rules, then :meth:`~backtest.live.PortfolioAnalyzer.execute`: the live execution loop
(:mod:`backtest.live.execution`) on the book's clock. A bar is two polls: the next bar's open
(:meth:`PaperBook.open_next`: what the open crosses fills, and a buy the sells' proceeds now pay is
placed at that instant), then the bar itself (resting limit orders fill when it crosses their
price); an order still open after a bar is canceled and
repriced at the new close (up to ``[live] max_reprices``); the deadline is the bars left before the
next decision (the last one included), when everything still open is canceled. Each decision is
**one journal commit**: the snapshot (before trading, with the target), the plan, the loop's
orders (``intent``, then each status seen) and fills, and a ``mark`` snapshot (valuation) at every
bar close until the next decision. Every time is the simulated clock, none is wall-clock.

Resuming: a replay starts after the journal's last snapshot, with the paper balances rebuilt from
the journal's fills (:meth:`PaperBook.apply_fill`, the function the fills went through), so a
replay stopped or killed midway and resumed writes the same tables as an uninterrupted one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from backtest.errors import LiveError
from backtest.live.execution import ExecutionSettings
from backtest.live.journal import (
    Journal,
    config_hash,
    decision_snapshot,
    plan_frame,
    snapshot_frame,
)
from backtest.live.paper import PaperBook, PaperConnector


@dataclass(frozen=True)
class ReplayResult:
    """What a replay call did.

    Attributes
    ----------
    journal : Journal
    steps : int
        Decisions replayed by this call (0 when the journal was already at ``end``).
    finished : bool
        False when ``stop_after`` stopped it early.
    values : Series
        The account's value at every bar close in the journal (``mark`` snapshots), UTC index.
    """

    journal: Journal
    steps: int
    finished: bool
    values: pd.Series

    @property
    def growth(self) -> float:
        """Final value over the starting cash, minus 1."""
        return float(self.values.iloc[-1] / self.values.iloc[0] - 1.0) if len(self.values) else 0.0


def replay_window(
    cfg: Any, start: Any, end: Any, market: Any = None
) -> tuple[Any, Any, np.ndarray]:
    """``(market, prepared, bars)``: the config's market up to ``end``, prepared as a backtest
    prepares it (trades not priced: the paper decisions price them against the account's value,
    in the analyzer), and the decision bars from ``start`` on that have a next bar to trade in."""
    from backtest.experiment import load_market, run_settings, strategy_from_config
    from backtest.pipeline import decision_bars, prepare

    start, end = _utc(start, "start"), _utc(end, "end")
    if start >= end:
        raise LiveError(f"`--replay` START ({start:%Y-%m-%d}) must be before END ({end:%Y-%m-%d})")
    market = (market if market is not None else load_market(cfg)).between(None, end)
    first = int(market.index.searchsorted(start))
    if first >= market.n_bars - 1:
        raise LiveError(
            f"`--replay` START {start:%Y-%m-%d} is at or after the data's last bar "
            f"{market.index[-1]:%Y-%m-%d}; widen [data] start/end"
        )
    settings = run_settings(cfg)
    strategy = strategy_from_config(cfg.strategy, market.periods_per_year)
    prepared = prepare(market, strategy, settings["constraints"], cfg.strategy.lookback_days)
    bars = decision_bars(prepared, cfg.rebalance.schedule(), first)
    return market, prepared, bars[bars < market.n_bars - 1]


def replay(
    cfg: Any,
    start: Any,
    end: Any,
    journal: Journal,
    *,
    market: Any = None,
    stop_after: int | None = None,
) -> ReplayResult:
    """Replay the config's strategy in paper mode from ``start`` to ``end`` into ``journal``.

    Parameters
    ----------
    cfg : ExperimentConfig
        ``[data]`` gives the history (it must cover the lookback before ``start``), ``[strategy]``,
        ``[rebalance]``, ``[costs]`` (fees, slippage, ``initial_cash``) and ``[live]`` as for
        ``backtest rebalance``.
    start, end : str or Timestamp
        UTC dates.
    journal : Journal
        Where the account is recorded; a journal with snapshots is resumed after the last one.
    market : MarketData, optional
        Instead of loading the config's data.
    stop_after : int, optional
        Stop after this many decisions (a replay can be resumed later).

    Returns
    -------
    ReplayResult
    """
    market, _, bars = replay_window(cfg, start, end, market)
    book, connector, analyzer = _paper_account(cfg, market, journal)
    last = journal.last_time()
    step_ms = _step_ms(market)
    closes = market.index.as_unit("ms").asi8 + step_ms
    if last is not None:
        bars = bars[closes[bars] > last.value // 1_000_000]
    stops = [*bars[1:], market.n_bars][: bars.size]  # marks run until the next decision or the end
    done = 0
    for t, until in zip(bars, stops, strict=True):
        if stop_after is not None and done >= stop_after:
            return ReplayResult(journal, done, False, _values(journal))
        asyncio.run(_step(cfg, journal, book, connector, analyzer, int(t), int(until)))
        done += 1
    return ReplayResult(journal, done, True, _values(journal))


def backtest_beside(cfg: Any, start: Any, end: Any, market: Any = None) -> Any:
    """``run_backtest`` of the same config over the replay's window: the same market (up to
    ``end``), decisions from the same first bar; its equity is indexed by bar open time (the
    journal's times are bar closes)."""
    from backtest.experiment import run_experiment

    market, _, bars = replay_window(cfg, start, end, market)
    return run_experiment(cfg, market=market, first_decision=int(bars[0]))


def _paper_account(
    cfg: Any, market: Any, journal: Journal
) -> tuple[PaperBook, PaperConnector, Any]:
    from backtest.config import LiveConfig
    from backtest.experiment import strategy_from_config
    from backtest.live.analyzer import PortfolioAnalyzer

    live = cfg.live or LiveConfig.model_validate({"mode": "paper"})
    costs = cfg.costs.costs()
    book = PaperBook(market, {live.quote: cfg.costs.initial_cash}, costs, live.fill_share)
    fills = journal.fills()
    for symbol, side, amount, price, fee in zip(  # the balances the journal says
        fills["symbol"], fills["side"], fills["amount"], fills["price"], fills["fee"], strict=True
    ):
        book.apply_fill(str(symbol), str(side), float(amount), float(price), float(fee))
    orders = journal.orders()  # ids continue after the orders the book took (not the rejected)
    book.first_id = int(orders.loc[orders["order_id"] != "", "order_id"].nunique()) + 1
    connector = PaperConnector(book, quote=live.quote)
    analyzer = PortfolioAnalyzer(
        connector,
        strategy_from_config(cfg.strategy, market.periods_per_year),
        cfg.strategy.lookback_days,
        universe=cfg.data.symbols or list(market.symbols),
        timeframe=market.timeframe,
        settings=live,
        costs=costs,
    )
    return book, connector, analyzer


async def _step(
    cfg: Any,
    journal: Journal,
    book: PaperBook,
    connector: PaperConnector,
    analyzer: Any,
    t: int,
    until: int,
) -> None:
    """One decision at the close of bar ``t``: the plan executed by the live execution loop, one
    poll per bar, until the next decision bar ``until``; marks at the bar closes in between."""
    book.set_now(t)
    now = _ts(book.now_ms)
    marks: list[pd.DataFrame] = []
    rows: dict[str, list[pd.DataFrame]] = {"orders": [], "fills": []}

    async def next_bar(seconds: float) -> None:  # a poll: the next bar's open, then the bar
        if book.opened != book.now + 1:
            book.open_next()  # the clock stays: orders placed now may still fill in that bar
            return
        book.advance(book.now + 1)
        if book.now < until:  # the next decision values bar `until` itself
            marks.append(_mark(book, cfg))

    def collect(tables: dict[str, pd.DataFrame]) -> None:
        for table, frame in tables.items():
            rows[table].append(frame)

    async with connector:
        result = await analyzer.analyze_portfolio(cfg.constraints.spec(cfg.strategy))
        plan = analyzer.get_rebalancing_trades(
            result.current_weights, result.weights, result.diagnostics["total_value"]
        )
        await analyzer.execute(
            plan,
            journal,
            settings=_bar_settings(analyzer, book, min(until, book.market.n_bars - 1) - t),
            prefix=f"p{now:%Y%m%d%H%M}",
            clock=lambda: book.now_ms / 1000,
            sleep=next_bar,
            now=lambda: _ts(book.now_ms),
            commit=collect,
        )
    for _ in range(book.now + 1, until):  # the orders are done: value the book to the next decision
        book.advance(book.now + 1)
        marks.append(_mark(book, cfg))
    snapshot = decision_snapshot(now, analyzer, result, plan, cfg)
    journal.append(  # the decision in one commit
        {
            "snapshots": pd.concat([snapshot, *marks], ignore_index=True),
            "plans": plan_frame(now, plan),
            **{t: pd.concat(f, ignore_index=True) for t, f in rows.items() if f},
        }
    )


def _bar_settings(analyzer: Any, book: PaperBook, bars: int) -> ExecutionSettings:
    """The ``[live]`` execution settings on the book's clock: a poll and an order's timeout are one
    bar, the deadline the ``bars`` left before the next decision."""
    seconds = _step_ms(book.market) / 1000
    return replace(
        ExecutionSettings.from_config(analyzer.settings, analyzer.costs.fee_rate),
        poll_seconds=seconds,
        order_timeout_seconds=seconds,
        deadline_seconds=bars * seconds,
    )


def _mark(book: PaperBook, cfg: Any) -> pd.DataFrame:
    """A valuation snapshot at the close of bar ``book.now`` (no target: weights are the current
    ones)."""
    prices = {
        a: book.last(s) for s in book.market.symbols if (a := s.split("/")[0]) in book.balances
    }
    prices = {a: (p if np.isfinite(p) else 0.0) for a, p in prices.items()}
    quote = book.market.symbols[0].split("/")[1]
    values = {a: u * prices.get(a, 1.0) for a, u in book.balances.items()}
    total = sum(values.values())
    weights = {a: v / total for a, v in values.items()}
    return snapshot_frame(
        _ts(book.now_ms),
        book.balances,
        {**prices, quote: 1.0},
        weights,
        weights,
        config_hash=config_hash(cfg),
        strategy=cfg.strategy.name,
        kind="mark",
    )


def _values(journal: Journal) -> pd.Series:
    """Total value at each snapshot time (a decision's pre-trade snapshot, else the mark)."""
    snaps = journal.snapshots().drop_duplicates("time")
    return pd.Series(
        snaps["total_value"].to_numpy(dtype=float),
        index=pd.DatetimeIndex(snaps["time"]),
        name="value",
    )


def _step_ms(market: Any) -> int:
    from datasets.timeframe import timeframe_to_ms

    return int(timeframe_to_ms(market.timeframe))


def _ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _utc(value: Any, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise LiveError(f"`{what}` must be a date such as 2022-01-01; got {value!r}") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
