"""`PortfolioAnalyzer`: exchange balances -> current weights -> target allocation -> rebalancing trades.

The live path uses the backtest's own pieces: history comes through the Parquet store
(:func:`datasets.fetch.ensure_history`, fetching only what is missing), the target from the same
allocators, and the trade list from the backtest kernel's trade rules
(:func:`backtest.trade_rules.plan_trades`), so what was tested is what is traded. Two live-only
steps follow the kernel's rules, because an exchange needs them:

* a full exit is truncated to the lot step (the exchange cannot sell a fraction of a step; the
  remainder stays as dust), and the minimum notional is checked at the limit price;
* an order larger than ``max_slice_value`` (or ``max_volume_share`` of the 24 h quote volume) is
  split into slices of whole lots (the backtest's ``participation`` cap truncates instead).

Weights are keyed by asset code (``"BTC"``, ``"USDT"`` for cash); ``"BTC/USDT"`` is accepted too.
The result types are in :mod:`backtest.live.results`; :meth:`PortfolioAnalyzer.execute` runs the
plan through the execution loop (:mod:`backtest.live.execution`); the package
:mod:`backtest.live` exports them all. See docs/live.md.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from backtest.config import LiveConfig
from backtest.costs import Costs
from backtest.errors import LiveError
from backtest.live.execution import ExecutionLoop, ExecutionReport, ExecutionSettings
from backtest.live.results import AnalysisResult, RebalancePlan, Trade
from backtest.trade_rules import floor_to_grid, on_grid, plan_trades, slice_cap, split_order
from strategies import Allocator, MPTStrategy, decision_frontier

log = logging.getLogger(__name__)


_SUM_TOL = 1e-6
_DECISION_KEYS = ("labels", "weights", "decision_time_bar")  # added by the walk-forward


class PortfolioAnalyzer:
    """Current allocation, target allocation and rebalancing trades for an exchange account.

    Parameters
    ----------
    exchange : datasets.ExchangeConnector
        Where balances, prices, market rules (and orders) come from.
    strategy : allocator, optional
        An allocator of :mod:`strategies` (default ``MPTStrategy()``).
    lookback_days : float
        History window of the allocation.
    universe : sequence of str, optional
        Assets (``"BTC"``) or symbols (``"BTC/USDT"``) to allocate across; default: the assets held.
    timeframe : str
        Candle timeframe of the history (``"1d"``).
    store : OHLCVStore, str or None
        Parquet store for the history (default: ``$ALPHAPULSE_DATA`` or ``./data``).
    settings : LiveConfig or dict, optional
        Dust threshold, ``min_trade_value``, slicing, limit offset, cash reserve (see
        :class:`backtest.config.LiveConfig`); ``settings.quote`` must match the connector's.
    costs : Costs, optional
        Fees and slippage for net-of-cost sizing and the cost estimate (default 10 + 5 bps).

    Examples
    --------
    >>> exchange = BinanceConnector()  # doctest: +SKIP
    >>> analyzer = PortfolioAnalyzer(exchange=exchange, strategy=MPTStrategy(), lookback_days=30)  # doctest: +SKIP
    >>> current = await analyzer.get_current_allocation()  # doctest: +SKIP
    >>> result = await analyzer.analyze_portfolio(constraints={"min_weight": 0.05, "max_weight": 0.4})  # doctest: +SKIP
    >>> plan = analyzer.get_rebalancing_trades(current, result.weights, total_value=100_000)  # doctest: +SKIP
    """

    def __init__(
        self,
        exchange: Any,
        strategy: Allocator | None = None,
        lookback_days: float = 30,
        *,
        universe: Sequence[str] | None = None,
        timeframe: str = "1d",
        store: Any = None,
        settings: LiveConfig | Mapping[str, Any] | None = None,
        costs: Costs | None = None,
    ) -> None:
        from datasets.timeframe import timeframe_to_ms

        if not (isinstance(lookback_days, int | float) and lookback_days > 0):
            raise LiveError(f"`lookback_days` must be > 0; got {lookback_days!r}")
        timeframe_to_ms(timeframe)
        self.exchange = exchange
        self.strategy: Allocator = strategy if strategy is not None else MPTStrategy()
        self.lookback_days = float(lookback_days)
        self.timeframe = timeframe
        self.store = store
        if not isinstance(settings, LiveConfig):
            settings = LiveConfig.model_validate({"quote": exchange.quote, **(settings or {})})
        self.settings = settings
        if self.settings.quote != exchange.quote:
            raise LiveError(
                f"`settings.quote` ({self.settings.quote}) must match the connector's quote "
                f"({exchange.quote})"
            )
        self.costs = costs if costs is not None else Costs()
        self.quote: str = exchange.quote
        self.universe = None if universe is None else [self._asset(s, "universe") for s in universe]
        self.prices: dict[str, float] = {}
        self.rules: dict[str, Any] = {}
        self.volumes: dict[str, float] = {}
        self.holdings: dict[str, float] = {}
        self.ignored: dict[str, str] = {}
        self.total_value: float | None = None
        self._allocation: dict[str, float] = {}

    def __repr__(self) -> str:
        return (
            f"PortfolioAnalyzer(exchange={self.exchange!r}, strategy={type(self.strategy).__name__}, "
            f"lookback_days={self.lookback_days:g}, timeframe={self.timeframe!r})"
        )

    # ------------------------------------------------------------------ names
    def _asset(self, key: str, where: str) -> str:
        if not isinstance(key, str) or not key:
            raise LiveError(
                f"`{where}` keys must be asset codes such as 'BTC' or symbols such as "
                f"'BTC/{self.quote}'; got {key!r}"
            )
        if "/" in key:
            base, quote = key.split("/", 1)
            if quote.split(":")[0] != self.quote:
                raise LiveError(
                    f"`{where}` has {key!r}, quoted in {quote}; this account is valued in {self.quote} "
                    f"(use '{base}/{self.quote}' or the connector's `quote`)"
                )
            return base
        return key

    def _weights(self, weights: Mapping[str, float], where: str) -> dict[str, float]:
        if not isinstance(weights, Mapping) or not weights:
            raise LiveError(
                f"`{where}` must be a non-empty mapping of asset to weight; got {weights!r}"
            )
        out: dict[str, float] = {}
        for key, value in weights.items():
            asset = self._asset(key, where)
            try:
                w = float(value)
            except (TypeError, ValueError):
                w = math.nan
            if not math.isfinite(w) or w < -1e-12:
                raise LiveError(
                    f"`{where}` must be finite and >= 0 (long only); {key} has {value!r}"
                )
            out[asset] = out.get(asset, 0.0) + max(w, 0.0)
        total = sum(out.values())
        if abs(total - 1.0) > _SUM_TOL:
            raise LiveError(
                f"`{where}` must sum to 1 (cash as '{self.quote}'); they sum to {total:.6g} "
                f"(normalise them, or add the rest as {{'{self.quote}': {1 - total:.6g}}})"
            )
        return out

    # ------------------------------------------------------------------ exchange state
    async def refresh_market_data(self, assets: Sequence[str]) -> None:
        """Fetch prices, 24 h volumes and order rules of ``assets`` (raises for an asset without a
        market against the quote currency)."""
        wanted = [a for a in dict.fromkeys(assets) if a != self.quote]
        if not wanted:
            return
        symbols = [self.exchange.symbol(a) for a in wanted]
        rules = await self.exchange.fetch_markets(symbols)
        tickers = await self.exchange.fetch_tickers(symbols)
        for asset, symbol in zip(wanted, symbols, strict=True):
            price = tickers[symbol].price
            if not price > 0:
                raise LiveError(f"{self.exchange.exchange_id} reports no price for {symbol}")
            self.prices[asset] = price
            self.volumes[asset] = tickers[symbol].quote_volume
            self.rules[asset] = rules[symbol]

    async def get_current_allocation(self) -> dict[str, float]:
        """Current weights by asset (the quote currency is cash), valued at the last prices.

        Balances without a market against the quote currency, and balances worth less than
        ``settings.dust_threshold``, are left out (listed in ``self.ignored``). Sets
        ``self.holdings`` (units), ``self.prices`` and ``self.total_value``.

        Returns
        -------
        dict of str to float
            Weights summing to 1, largest first, cash last.
        """
        balances = await self.exchange.fetch_balances()
        self.ignored = {}
        risky = [a for a in balances if a != self.quote]
        priced = []
        for asset in risky:
            if await self.exchange.has_market(self.exchange.symbol(asset)):
                priced.append(asset)
            else:
                self.ignored[asset] = f"no {self.exchange.symbol(asset)} market to value it"
        await self.refresh_market_data(priced)
        values = {a: balances[a] * self.prices[a] for a in priced}
        for asset, value in list(values.items()):
            if value < self.settings.dust_threshold:
                self.ignored[asset] = (
                    f"dust: worth {value:.4g} {self.quote} < {self.settings.dust_threshold:g}"
                )
                del values[asset]
        cash = balances.get(self.quote, 0.0)
        total = sum(values.values()) + cash
        if not total > 0:
            raise LiveError(
                f"the account holds nothing worth at least {self.settings.dust_threshold:g} {self.quote} "
                f"(ignored: {self.ignored or 'none'})"
            )
        if self.ignored:
            log.warning(
                "left out of the allocation: %s",
                "; ".join(f"{a}: {r}" for a, r in self.ignored.items()),
            )
        self.holdings = {a: balances[a] for a in values}
        self.holdings[self.quote] = cash
        self.total_value = total
        weights = {a: v / total for a, v in sorted(values.items(), key=lambda kv: -kv[1])}
        weights[self.quote] = cash / total
        self._allocation = dict(weights)
        return weights

    async def load_history(self, assets: Sequence[str]) -> Any:
        """Candles of ``assets`` for the lookback window through the Parquet store (fetching what is
        missing), ending with the last closed bar on the exchange's clock. A connector with its own
        ``now_ms()`` and ``load_history(symbols, start_ms, end_ms)`` (the paper account) serves them."""
        from datasets.fetch import ensure_history
        from datasets.timeframe import days_to_bars, timeframe_to_ms

        own = getattr(self.exchange, "load_history", None)
        sync_exchange = None if own is not None else self.exchange.history_exchange()
        now = self.exchange.now_ms() if sync_exchange is None else sync_exchange.milliseconds()
        step = timeframe_to_ms(self.timeframe)
        end = (int(now) // step) * step - step
        start = end - days_to_bars(self.lookback_days, self.timeframe) * step
        symbols = [self.exchange.symbol(a) for a in assets]
        if own is not None:
            return await own(symbols, start, end)
        return await asyncio.to_thread(
            ensure_history,
            self.store,
            self.exchange.exchange_id,
            symbols,
            self.timeframe,
            start,
            end,
            exchange=sync_exchange,
        )

    # ------------------------------------------------------------------ target
    async def analyze_portfolio(self, constraints: Any = None) -> AnalysisResult:
        """Target weights from the strategy on the lookback window, with return, risk and Sharpe.

        Parameters
        ----------
        constraints : Constraints or dict, optional
            E.g. ``{"min_weight": 0.05, "max_weight": 0.40}``, over the whole book (cash reserve
            included); per-asset bounds and group members index ``universe``. They hold for the
            assets with a full lookback window: when their caps cannot fill the book the rest is
            held in cash (noted); floors that need more than the invested share raise
            ``ConstraintError``.

        Returns
        -------
        AnalysisResult
        """
        from backtest.errors import EngineError
        from backtest.pipeline import decide, prepare, price_trades

        current = await self.get_current_allocation()
        universe = self.universe or [a for a in current if a != self.quote]
        if not universe:
            raise LiveError(
                f"nothing to allocate: the account holds only {self.quote}; pass "
                "`universe=['BTC', 'ETH', ...]` (or `data.symbols` in the config)"
            )
        await self.refresh_market_data(universe)
        market = await self.load_history(universe)
        try:  # the backtest's stages: one decision on the last closed bar
            prepared = prepare(market, self.strategy, constraints, self.lookback_days, bars_after=0)
        except EngineError as exc:
            raise LiveError(
                f"not enough {self.timeframe} history for {', '.join(universe)}: {exc}"
            ) from None
        # transaction_cost = "costs": the reference trade is a share of the account's value
        prepared = price_trades(prepared, self.costs, float(self.total_value or 0.0))
        t = market.n_bars - 1
        invest = 1.0 - self.settings.cash_reserve
        decisions = decide(
            prepared,
            np.array([t]),
            previous=np.array([current.get(a, 0.0) for a in universe]),
            invest=invest,
        )
        members = np.flatnonzero(decisions.universe[0])
        if members.size == 0:
            raise LiveError(
                f"not enough {self.timeframe} history for {', '.join(universe)}: no asset has "
                f"every close of the last {self.lookback_days:g} days"
            )
        assets = [universe[j] for j in members]
        excluded = {
            universe[j]: "incomplete history in the lookback window"
            for j in np.flatnonzero(~decisions.universe[0])
        }
        returns = prepared.panel.window(t, members)
        extras = decisions.last_extras
        mu, cov = _moments(extras, returns, market.periods_per_year)
        strategy = prepared.strategy
        name = getattr(strategy, "name", type(strategy).__name__)
        w = decisions.weights[0, members]
        ret, vol = float(w @ mu), math.sqrt(max(float(w @ cov @ w), 0.0))
        rf = float(getattr(strategy, "risk_free_rate", 0.0))
        weights = {a: float(x) for a, x in zip(universe, decisions.weights[0], strict=True)}
        weights[self.quote] = self.settings.cash_reserve + (invest - decisions.budgets[0])
        method = decisions.methods[0]
        notes = (*decisions.notes[0], *(f"{a} excluded: {r}" for a, r in excluded.items()))
        diagnostics = {
            "strategy": name,
            "method": method,
            "notes": notes,
            "universe": list(universe),
            "excluded": excluded,
            "timeframe": self.timeframe,
            "lookback_days": self.lookback_days,
            "n_obs": int(returns.shape[0]),
            "window_start": f"{market.index[t - prepared.lookback]:%Y-%m-%d %H:%M}",
            "window_end": f"{market.index[t]:%Y-%m-%d %H:%M}",
            "periods_per_year": market.periods_per_year,
            "risk_free_rate": rf,
            "total_value": self.total_value,
            "ignored_balances": dict(self.ignored),
        }
        frontier = None
        if isinstance(strategy, MPTStrategy) and len(assets) >= 2:
            frontier = decision_frontier(
                mu,
                cov,
                prepared.constraints,
                members,
                len(universe),
                risk_free_rate=rf,
                symbols=assets,
                invest=invest,
                n_points=self.settings.frontier_points,
            )
        return AnalysisResult(
            weights=weights,
            expected_return=ret,
            volatility=vol,
            sharpe_ratio=(ret - rf) / vol if vol > 0 else math.nan,
            method=method,
            notes=notes,
            diagnostics=diagnostics,
            frontier=frontier,
            current_weights=current,
            extras={k: v for k, v in extras.items() if k not in _DECISION_KEYS},
        )

    # ------------------------------------------------------------------ trades
    def get_rebalancing_trades(
        self,
        current_weights: Mapping[str, float],
        target_weights: Mapping[str, float],
        total_value: float,
        min_trade_value: float | None = None,
    ) -> RebalancePlan:
        """The trades from ``current_weights`` to ``target_weights`` under the backtest's rules.

        Prices, lot steps, minimum notionals and volumes are those fetched by
        :meth:`get_current_allocation` / :meth:`analyze_portfolio` (or :meth:`refresh_market_data`).

        Parameters
        ----------
        current_weights, target_weights : mapping of str to float
            Weights by asset (or ``"BTC/USDT"`` symbol); each must sum to 1 with cash as the quote
            currency's entry.
        total_value : float
            Value of the book in the quote currency (> 0).
        min_trade_value : float, optional
            Trades worth less are dropped (default ``settings.min_trade_value``).

        Returns
        -------
        RebalancePlan
            Trades (sells first) with amounts on the lot step, value, weight change and slices; the
            rebalancing score and the estimated cost.
        """
        total = _positive_value(total_value, self.quote)
        mtv = self.settings.min_trade_value if min_trade_value is None else float(min_trade_value)
        if not (math.isfinite(mtv) and mtv >= 0):
            raise LiveError(f"`min_trade_value` must be >= 0; got {min_trade_value!r}")
        current = self._weights(current_weights, "current_weights")
        target = self._weights(target_weights, "target_weights")
        assets = [a for a in dict.fromkeys([*current, *target]) if a != self.quote]
        self._check_market_data(assets)
        prices = np.array([self.prices[a] for a in assets])
        offset = self.settings.limit_offset_bps / 10_000
        lots = np.array([self.rules[a].lot_step for a in assets])
        # the exchange's minimum order value must also hold at a sell's limit price, p * (1 - offset)
        min_notional = np.array(
            [
                self.rules[a].min_order_value(p) / (1.0 - offset)
                for a, p in zip(assets, prices, strict=True)
            ]
        )
        units = np.array([current.get(a, 0.0) for a in assets]) * total / prices
        cash = current.get(self.quote, 0.0) * total
        if current == self._allocation and total == self.total_value:
            # the allocation just read from the exchange: trade from its exact balances, not from
            # weights * value / price (which can be a last bit off and move a trade by one lot)
            units = np.array([self.holdings.get(a, 0.0) for a in assets])
            cash = self.holdings.get(self.quote, 0.0)
        weights = np.array([target.get(a, 0.0) for a in assets])
        plan = plan_trades(
            units,
            prices,
            weights,
            cash,
            costs=replace(self.costs, min_trade_value=mtv, participation=0.0),
            lot_step=lots,
            min_notional=min_notional,
        )
        trades, notes = [], []
        for row in plan.ledger:
            i = int(row["asset"])
            asset, units_traded = assets[i], float(row["units"])
            amount = on_grid(abs(units_traded), lots[i]) if lots[i] > 0 else abs(units_traded)
            threshold = max(mtv, float(min_notional[i]))
            if units_traded < 0 and weights[i] == 0.0 and lots[i] > 0:  # a full exit
                whole = floor_to_grid(abs(units_traded), lots[i])
                if whole < amount:
                    notes.append(
                        f"{asset}: full exit rounded down to the lot step {lots[i]:g}; "
                        f"{abs(units_traded) - whole:.8g} stays as dust"
                    )
                amount = whole
                if amount * prices[i] < threshold:
                    notes.append(
                        f"{asset}: the whole lots of the exit ({amount:g}) are worth less than the "
                        f"minimum order value {threshold:.4g}; not traded"
                    )
                    continue
            share = amount / abs(units_traded)
            trades.append(
                self._trade(
                    asset,
                    amount,
                    units_traded < 0,
                    prices[i],
                    current,
                    target,
                    float(row["fee"]) * share,
                    float(row["slippage"] + row["impact"]) * share,
                    threshold,
                )
            )
        skipped = tuple(assets[i] for i in np.flatnonzero(plan.skipped))
        if skipped:
            notes.append(
                f"below the lot step or the minimum order value ({mtv:g} {self.quote} or the exchange's "
                f"minimum notional), not traded: {', '.join(skipped)}"
            )
        score = 0.5 * sum(
            abs(target.get(a, 0.0) - current.get(a, 0.0)) for a in {*current, *target}
        )
        trades.sort(key=lambda t: (t.side != "sell", -t.value))
        return RebalancePlan(
            trades=tuple(trades),
            score=score,
            total_value=total,
            quote=self.quote,
            skipped=skipped,
            notes=tuple(notes),
            cash_after=plan.cash_after,
        )

    def _trade(
        self,
        asset: str,
        amount: float,
        sell: bool,
        price: float,
        current: dict[str, float],
        target: dict[str, float],
        fee: float,
        slippage: float,
        min_value: float,
    ) -> Trade:
        offset = self.settings.limit_offset_bps / 10_000
        rules = self.rules[asset]
        limit = on_grid(price * (1.0 - offset if sell else 1.0 + offset), rules.tick_size)
        cap = slice_cap(
            self.settings.max_slice_value, self.settings.max_volume_share, self.volumes.get(asset)
        )
        return Trade(
            symbol=self.exchange.symbol(asset),
            asset=asset,
            side="sell" if sell else "buy",
            amount=amount,
            price=price,
            value=amount * price,
            weight_change=target.get(asset, 0.0) - current.get(asset, 0.0),
            current_weight=current.get(asset, 0.0),
            target_weight=target.get(asset, 0.0),
            fee=fee,
            slippage=slippage,
            limit_price=limit,
            slices=split_order(amount, price, rules.lot_step, cap, min_value),
        )

    def _check_market_data(self, assets: list[str]) -> None:
        for asset in assets:
            if asset in self.prices and asset in self.rules:
                continue
            symbol = self.exchange.symbol(asset)
            raise LiveError(
                f"no market data for {symbol}: it was not fetched, or {self.exchange.exchange_id} has "
                f"no {symbol} market; run `await analyzer.refresh_market_data([{asset!r}])` first "
                "(it raises for a symbol without a market)"
            )

    async def execute(
        self,
        plan: RebalancePlan,
        journal: Any = None,
        *,
        settings: ExecutionSettings | None = None,
        prefix: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        now: Callable[[], Any] | None = None,
        commit: Callable[[dict[str, Any]], Any] | None = None,
    ) -> ExecutionReport:
        """Execute the plan with the :class:`~backtest.live.execution.ExecutionLoop`: first settle
        the journal's orders that may still be open (``reconcile``), then place the slices as limit
        orders (sells first), watch them, reprice or cancel them after the timeout, carry partial
        fills into the next slice and compare the balances at the end with the fills.

        The connector must not be read-only (checked before any order). An order the exchange
        rejects is reported (``status == "rejected"``, its amount in ``unfilled``) and the others
        go on; a network error stops the run, leaving the order in the journal as an ``intent``
        or ``open`` that the next run reconciles before placing anything.

        Parameters
        ----------
        plan : RebalancePlan
        journal : Journal, optional
            Where the intents, statuses and fills are committed and what ``reconcile`` reads
            (without one a crash leaves no record of the orders).
        settings : ExecutionSettings, optional
            Default: ``ExecutionSettings.from_config(self.settings, self.costs.fee_rate)`` (the
            ``[live]`` poll, timeout, reprices, deadline and limit offset).
        prefix, clock, sleep, now, commit
            As for :class:`~backtest.live.execution.ExecutionLoop` (the paper replay passes a
            simulated clock and collects a decision's rows into one commit).

        Returns
        -------
        ExecutionReport
            ``orders`` (one per order placed, reprices included, in the order they ended),
            ``fills``, ``unfilled`` (base units per symbol), ``reconciled``, ``balances``,
            ``mismatches`` and ``notes``.
        """
        loop = ExecutionLoop(
            self.exchange,
            journal,
            settings=settings or ExecutionSettings.from_config(self.settings, self.costs.fee_rate),
            prefix=prefix,
            clock=clock,
            sleep=sleep,
            now=now,
            commit=commit,
        )
        return await loop.run(plan)


def _positive_value(value: Any, quote: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise LiveError(
            f"`total_value` must be a number > 0 (the book's value in {quote}); got {value!r}"
        ) from None
    if not (math.isfinite(out) and out > 0):
        raise LiveError(f"`total_value` must be > 0 (the book's value in {quote}); got {value!r}")
    return out


def _moments(
    extras: Mapping[str, Any], returns: np.ndarray, periods_per_year: float
) -> tuple[np.ndarray, np.ndarray]:
    """Annualised (mu, cov): the allocator's when it reports both (MPT), else mean and sample covariance."""
    from strategies.estimators import covariance, expected_returns

    mu, cov = extras.get("expected_returns"), extras.get("covariance")
    if mu is None or cov is None:
        mu = expected_returns(returns, "mean", periods_per_year)
        cov = covariance(returns, "sample", periods_per_year)
    return np.asarray(mu, dtype=np.float64), np.asarray(cov, dtype=np.float64)
