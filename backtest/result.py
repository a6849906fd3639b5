"""`BacktestResult`: what a backtest produced, as pandas objects built on first access, with
save/load and vectorbt export.

A result assembled from a run (:func:`backtest.pipeline.assemble`) holds the kernel's arrays and
builds each frame the first time it is read; a result read back with :meth:`BacktestResult.load`
holds the saved frames. Metrics are computed the same way for both, from the equity and cash paths,
the ledger's costs summed per bar and the rebalance table, so a sweep that reads only metrics builds
no frame it does not need and still gets the numbers ``backtest run`` prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.ledger import per_bar, rebalance_columns
from backtest.records import TRADE_DTYPE
from backtest.simulate import SimulationOutput
from backtest.walkforward import Decisions
from datasets import MarketData

_SIDES = np.array(["sell", "buy"])
_REASONS = np.array(["rebalance", "band", "stop_loss", "delisting"])
TRADE_COLUMNS = [
    "time",
    "bar",
    "symbol",
    "side",
    "units",
    "price",
    "fill_price",
    "notional",
    "fee",
    "slippage",
    "impact",
    "reason",
]
FRAMES = ("equity", "cash", "close", "weights", "target_weights", "trades", "rebalances")


@dataclass(frozen=True)
class RunArrays:
    """What the walk-forward and the kernel produced for one scenario, before pandas."""

    market: MarketData
    decisions: Decisions
    sim: SimulationOutput
    start: int  # the first decision bar: the result starts there
    fill_shift: int  # 1 for next_open, 0 for close


class BacktestResult:
    """Outputs of :func:`backtest.run_backtest`.

    Attributes
    ----------
    equity : Series
        Portfolio value at each bar's close, from the first decision bar on.
    cash : Series
    close : DataFrame
        Valuation prices (closes, forward-filled) from the first decision bar on.
    weights : DataFrame
        Realised weights per bar (``units * close / equity``; cash is ``1 - sum``).
    target_weights : DataFrame
        One row per decision bar (index = decision time).
    trades : DataFrame
        Ledger: time, bar, symbol, side, units (> 0), price, fill_price, notional, fee, slippage,
        impact, reason.
    rebalances : DataFrame
        One row per decision: time, turnover, fees, slippage, impact, n_trades, universe, method, notes.
    benchmark : Series or None
    costs : dict
        Totals: fees, slippage, impact, traded notional, skipped trades.
    diagnostics : dict
        Allocator fallbacks, skipped trades, universe changes, data notes.
    meta : dict
        Strategy, parameters, schedule, costs, data source (``synthetic`` flag), timeframe...
    extras : dict
        The last allocation's extras (HRP linkage, MPT expected returns/covariance).
    """

    def __init__(
        self,
        *,
        benchmark: pd.Series | None,
        costs: dict[str, float],
        diagnostics: dict[str, Any] | None,
        meta: dict[str, Any],
        extras: dict[str, Any],
        run: RunArrays | None = None,
        **frames: Any,
    ) -> None:
        unknown = sorted(set(frames) - set(FRAMES))
        missing = [] if run is not None else sorted(set(FRAMES) - set(frames))
        if unknown or missing or (run is None and diagnostics is None):
            raise TypeError(
                f"BacktestResult needs a run or every frame ({', '.join(FRAMES)}) and the "
                f"diagnostics; unknown: {unknown}, missing: {missing}"
            )
        self.benchmark = benchmark
        self.costs = costs
        self.meta = meta
        self.extras = extras
        self._run = run
        if diagnostics is not None:
            self.__dict__["diagnostics"] = diagnostics
        self.__dict__.update(frames)  # a frame given here is not built again (cached_property)

    @classmethod
    def from_run(
        cls, run: RunArrays, *, benchmark: pd.Series | None, meta: dict[str, Any]
    ) -> BacktestResult:
        """The result of one simulation (:func:`backtest.pipeline.assemble`)."""
        totals = run.sim.totals
        costs = {
            "fees": float(totals.fees),
            "slippage": float(totals.slippage),
            "impact": float(totals.impact),
            "traded_notional": float(totals.traded_notional),
            "skipped_trades": int(totals.skipped_trades),
        }
        return cls(
            benchmark=benchmark,
            costs=costs,
            diagnostics=None,
            meta=meta,
            extras=run.decisions.last_extras,
            run=run,
        )

    # ------------------------------------------------------------------ frames, built when read
    def _arrays(self) -> RunArrays:
        if self._run is None:  # pragma: no cover - a loaded result holds every frame
            raise AttributeError("this result holds no run arrays")
        return self._run

    @cached_property
    def equity(self) -> pd.Series:
        run = self._arrays()
        index = run.market.index[run.start :]
        return pd.Series(run.sim.equity[run.start :], index=index, name="equity")

    @cached_property
    def cash(self) -> pd.Series:
        run = self._arrays()
        return pd.Series(run.sim.cash[run.start :], index=self.equity.index, name="cash")

    @cached_property
    def close(self) -> pd.DataFrame:
        run = self._arrays()
        market = run.market
        frame = pd.DataFrame(
            market.values("close"), index=market.index, columns=list(market.symbols)
        ).ffill()
        return frame.iloc[run.start :]

    @cached_property
    def weights(self) -> pd.DataFrame:
        run = self._arrays()
        units = run.sim.units
        held = pd.DataFrame(
            units[run.start :], index=self.equity.index, columns=list(run.market.symbols)
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            return (held * self.close.fillna(0.0)).div(self.equity, axis=0).fillna(0.0)

    @cached_property
    def target_weights(self) -> pd.DataFrame:
        run = self._arrays()
        d = run.decisions
        return pd.DataFrame(
            d.weights, index=run.market.index[d.bars], columns=list(run.market.symbols)
        )

    @cached_property
    def trades(self) -> pd.DataFrame:
        run = self._arrays()
        return trades_frame(run.sim.trades, run.market.index, run.market.symbols)

    @cached_property
    def rebalances(self) -> pd.DataFrame:
        run = self._arrays()
        return rebalance_table(
            run.decisions, run.market.index, run.sim.trades, run.sim.equity, run.fill_shift
        )

    @cached_property
    def diagnostics(self) -> dict[str, Any]:
        run = self._arrays()
        d, index, market = run.decisions, run.market.index, run.market
        fallbacks = [
            f"{index[t]:%Y-%m-%d %H:%M}: {m} ({'; '.join(nt)})"
            for t, m, nt in zip(d.bars, d.methods, d.notes, strict=True)
            if nt
        ]
        return {
            "n_decisions": int(d.bars.size),
            "allocator_fallbacks": fallbacks,
            "n_fallbacks": len(fallbacks),
            "skipped_trades": int(self.costs["skipped_trades"]),
            "universe_changes": _universe_changes(d, index, market.symbols),
            "data_notes": list(market.notes),
            "gaps": int(market.gaps()["n_bars"].sum()) if market.n_bars else 0,
        }

    @property
    def returns(self) -> pd.Series:
        """Simple returns of the equity curve per bar."""
        return self.equity.pct_change().fillna(0.0).rename("returns")

    # ------------------------------------------------------------------ metrics
    def metrics(
        self, periods_per_year: float | None = None, risk_free_rate: float | None = None
    ) -> dict[str, float]:
        """Performance metrics (see ``reports.metrics``), annualised from the data's timeframe.

        Costs and turnover come from the ledger summed per bar and the exposure from the cash path
        (the invested share ``1 - cash / equity`` is the sum of the realised weights), so reading
        metrics builds neither the ledger nor the weights frame.
        """
        from reports.metrics import compute_metrics

        ppy = periods_per_year or float(self.meta["periods_per_year"])
        rf = self.meta.get("risk_free_rate", 0.02) if risk_free_rate is None else risk_free_rate
        if self._run is not None:
            return self._run_metrics(self._run, ppy, rf)
        equity = self.equity
        position = equity.index.get_indexer(pd.DatetimeIndex(self.trades["time"]))
        bars, sums = per_bar(position, self.trades)
        with np.errstate(invalid="ignore", divide="ignore"):
            invested = 1.0 - self.cash.to_numpy() / equity.to_numpy()
        out = compute_metrics(
            equity,
            periods_per_year=ppy,
            risk_free_rate=rf,
            trades=pd.DataFrame({"bar": bars} | sums),
            weights=pd.DataFrame({"invested": invested}, index=equity.index),
            benchmark=self.benchmark,
            rebalances=self.rebalances,
        )
        out["n_trades"] = float(len(position))
        return out

    def _run_metrics(self, run: RunArrays, ppy: float, rf: float) -> dict[str, float]:
        """:meth:`metrics` of an assembled run: the steps of ``compute_metrics`` on the same
        numbers, from the equity and cash paths, the ledger's arrays and the rebalance table's
        turnover; the value checks of ``compute_metrics`` run, the frame checks (valid by
        construction) do not."""
        from reports.metrics import (
            benchmark_metrics,
            exposure,
            ordered,
            path_metrics,
            rebalance_metrics,
            trade_metrics,
        )
        from reports.series import periodic_risk_free, simple_returns
        from reports.validation import check_equity, check_periods_per_year, check_values

        ppy = check_periods_per_year(ppy)
        rf_p = periodic_risk_free(rf, ppy)
        # the arrays the Series would wrap (the index is the market's: valid by construction);
        # values > 0: the same errors as a loaded result's
        index = run.market.index[run.start :]
        values = check_values(run.sim.equity[run.start :], index)
        if self.benchmark is not None:
            check_equity(self.benchmark, "benchmark")
        if len(values) < 2:
            raise ValueError(f"`equity` must have at least 2 bars; got {len(values)}")
        r = simple_returns(values)
        out = path_metrics(values, index, r, ppy, rf_p)
        with np.errstate(invalid="ignore", divide="ignore"):
            invested = 1.0 - run.sim.cash[run.start :] / values
        out["exposure"] = exposure(invested)
        ledger = run.sim.trades
        bars, sums = per_bar(ledger["bar"] - run.start, ledger)
        out.update(trade_metrics(sums, bars, values, out["years"]))
        rebalances = rebalance_columns(
            run.decisions, run.market.n_bars, ledger, run.sim.equity, run.fill_shift
        )
        notes = run.decisions.notes
        n_noted = len(notes) - notes.count(())  # the engine's notes are never blank
        out.update(rebalance_metrics(rebalances["turnover"], n_noted))
        bench = None if self.benchmark is None else self.benchmark.to_numpy(dtype=np.float64)
        out.update(benchmark_metrics(r, bench, ppy))
        out = ordered(out)
        out["n_trades"] = float(len(ledger))
        return out

    def __repr__(self) -> str:
        label = " synthetic" if self.meta.get("synthetic") else ""
        n_trades = len(self._run.sim.trades) if self._run is not None else len(self.trades)
        return (
            f"<BacktestResult{label} {self.meta.get('strategy')} {len(self.equity)} bars, "
            f"{n_trades} trades, final equity {self.equity.iloc[-1]:,.2f}>"
        )

    # ------------------------------------------------------------------ vectorbt
    def to_vectorbt(self, close: pd.DataFrame | None = None) -> Any:
        """A vectorbt ``Portfolio`` of the same orders (amounts and fill prices from the ledger).

        Each ledger order becomes a vectorbt order of the same size at the same fill price with the
        same fee rate, so vectorbt's analytics see the same book. ``close`` defaults to the
        result's valuation prices (:attr:`close`, saved and loaded with the result).
        """
        import vectorbt as vbt

        if close is None:
            close = self.close.bfill().fillna(1.0)
        size = pd.DataFrame(np.nan, index=close.index, columns=close.columns)
        price = size.copy()
        fees = size.copy()
        if len(self.trades):
            grouped = self.trades.assign(
                signed=np.where(self.trades["side"] == "buy", 1.0, -1.0) * self.trades["units"]
            )
            for (time, symbol), rows in grouped.groupby(["time", "symbol"], sort=False):
                units = rows["signed"].sum()
                notional = (rows["units"] * rows["fill_price"]).sum()
                size.loc[time, symbol] = units
                price.loc[time, symbol] = notional / rows["units"].sum()
                fees.loc[time, symbol] = rows["fee"].sum() / notional if notional > 0 else 0.0
        return vbt.Portfolio.from_orders(
            close,
            size=size,
            size_type="amount",
            price=price,
            fees=fees.fillna(0.0),
            init_cash=float(self.meta["initial_cash"]),
            cash_sharing=True,
            group_by=True,
            call_seq="auto",
            freq=pd.Timedelta(self.meta.get("bar_ms", 86_400_000), unit="ms"),
        )

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """Write Parquet (equity, close, weights, target weights, trades, rebalances) and JSON (meta,
        costs, diagnostics) into ``folder``; returns the folder."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({"equity": self.equity, "cash": self.cash})
        if self.benchmark is not None:
            frame["benchmark"] = self.benchmark
        frame.to_parquet(out / "equity.parquet")
        self.close.to_parquet(out / "close.parquet")
        self.weights.to_parquet(out / "weights.parquet")
        self.target_weights.to_parquet(out / "target_weights.parquet")
        self.trades.to_parquet(out / "trades.parquet")
        self.rebalances.to_parquet(out / "rebalances.parquet")
        payload = {
            "meta": _jsonable(self.meta),
            "costs": _jsonable(self.costs),
            "diagnostics": _jsonable(self.diagnostics),
            "extras": _jsonable(self.extras),
        }
        (out / "result.json").write_text(json.dumps(payload, indent=2, sort_keys=True))
        return out

    @classmethod
    def load(cls, folder: str | Path) -> BacktestResult:
        """Read a result written by :meth:`save`."""
        src = Path(folder)
        if not (src / "result.json").exists():
            raise FileNotFoundError(
                f"{src} holds no saved backtest (result.json missing); run `backtest run` first"
            )
        payload = json.loads((src / "result.json").read_text())
        eq = pd.read_parquet(src / "equity.parquet")
        extras = payload.get("extras", {})
        return cls(
            benchmark=eq.get("benchmark"),
            costs=payload["costs"],
            diagnostics=payload["diagnostics"],
            meta=payload["meta"],
            extras={k: np.asarray(v) if isinstance(v, list) else v for k, v in extras.items()},
            equity=eq["equity"],
            cash=eq["cash"],
            close=pd.read_parquet(src / "close.parquet"),
            weights=pd.read_parquet(src / "weights.parquet"),
            target_weights=pd.read_parquet(src / "target_weights.parquet"),
            trades=pd.read_parquet(src / "trades.parquet"),
            rebalances=pd.read_parquet(src / "rebalances.parquet"),
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def trades_frame(
    trades: np.ndarray, index: pd.DatetimeIndex, symbols: tuple[str, ...]
) -> pd.DataFrame:
    """The kernel's structured ledger as a DataFrame."""
    if trades.dtype != TRADE_DTYPE:
        raise TypeError("expected a backtest.records.TRADE_DTYPE array")
    units = trades["units"]
    sym = np.asarray(symbols, dtype=object)
    return pd.DataFrame(
        {
            "time": index[trades["bar"]],
            "bar": trades["bar"],
            "symbol": sym[trades["asset"]] if len(trades) else np.array([], dtype=object),
            "side": _SIDES[(units > 0).astype(np.int64)],
            "units": np.abs(units),
            "price": trades["price"],
            "fill_price": trades["fill_price"],
            "notional": np.abs(units) * trades["price"],
            "fee": trades["fee"],
            "slippage": trades["slippage"],
            "impact": trades["impact"],
            "reason": _REASONS[trades["reason"]],
        },
        columns=TRADE_COLUMNS,
    )


def rebalance_table(
    decisions: Decisions,
    index: pd.DatetimeIndex,
    ledger: np.ndarray,
    equity: np.ndarray,
    exec_shift: int,
) -> pd.DataFrame:
    """One row per decision: turnover and costs of the rebalance trades filled for it."""
    c = rebalance_columns(decisions, len(index), ledger, equity, exec_shift)
    return pd.DataFrame(
        {
            "time": index[decisions.bars],
            "fill_time": index[c["at"]].where(c["ok"]),  # NaT: a decision on the last bar
            "turnover": c["turnover"],
            "fees": c["fees"],
            "slippage": c["slippage"],
            "impact": c["impact"],
            "n_trades": c["n_trades"],
            "universe": decisions.universe.sum(axis=1).astype(np.int64),
            "method": decisions.methods,
            "notes": ["; ".join(n) for n in decisions.notes],
        }
    )


def _universe_changes(
    decisions: Decisions, index: pd.DatetimeIndex, symbols: tuple[str, ...]
) -> list[str]:
    out = []
    prev = np.zeros(len(symbols), dtype=bool)
    for k, t in enumerate(decisions.bars):
        cur = decisions.universe[k]
        added = [symbols[j] for j in np.flatnonzero(cur & ~prev)]
        removed = [symbols[j] for j in np.flatnonzero(prev & ~cur)]
        if k > 0 and (added or removed):
            parts = ([f"+{', '.join(added)}"] if added else []) + (
                [f"-{', '.join(removed)}"] if removed else []
            )
            out.append(f"{index[t]:%Y-%m-%d %H:%M}: {' '.join(parts)}")
        prev = cur
    return out
