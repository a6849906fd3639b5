"""`BacktestResult`: what a backtest produced, as pandas objects, with save/load and vectorbt export."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest import kernels
from backtest.simulate import SimulationOutput, fill_shift
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


@dataclass
class BacktestResult:
    """Outputs of :func:`backtest.run_backtest`.

    Attributes
    ----------
    equity : Series
        Portfolio value at each bar's close, from the first decision bar on.
    cash : Series
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

    equity: pd.Series
    cash: pd.Series
    weights: pd.DataFrame
    target_weights: pd.DataFrame
    trades: pd.DataFrame
    rebalances: pd.DataFrame
    benchmark: pd.Series | None
    costs: dict[str, float]
    diagnostics: dict[str, Any]
    meta: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def returns(self) -> pd.Series:
        """Simple returns of the equity curve per bar."""
        return self.equity.pct_change().fillna(0.0).rename("returns")

    def metrics(
        self, periods_per_year: float | None = None, risk_free_rate: float | None = None
    ) -> dict[str, float]:
        """Performance metrics (see ``reports.metrics``), annualised from the data's timeframe."""
        from reports.metrics import compute_metrics

        return compute_metrics(
            self.equity,
            periods_per_year=periods_per_year or float(self.meta["periods_per_year"]),
            risk_free_rate=self.meta.get("risk_free_rate", 0.02)
            if risk_free_rate is None
            else risk_free_rate,
            trades=self.trades,
            weights=self.weights,
            benchmark=self.benchmark,
            rebalances=self.rebalances,
        )

    def __repr__(self) -> str:
        label = " synthetic" if self.meta.get("synthetic") else ""
        return (
            f"<BacktestResult{label} {self.meta.get('strategy')} {len(self.equity)} bars, "
            f"{len(self.trades)} trades, final equity {self.equity.iloc[-1]:,.2f}>"
        )

    # ------------------------------------------------------------------ vectorbt
    def to_vectorbt(self, close: pd.DataFrame | None = None) -> Any:
        """A vectorbt ``Portfolio`` of the same orders (amounts and fill prices from the ledger).

        Each ledger order becomes a vectorbt order of the same size at the same fill price with the
        same fee rate, so vectorbt's analytics see the same book. ``close`` defaults to the
        valuation prices stored in ``meta`` by :func:`build_result` (forward-filled closes).
        """
        import vectorbt as vbt

        if close is None:
            close = self._valuation_close()
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

    def _valuation_close(self) -> pd.DataFrame:
        close = self.meta.get("_close")
        if isinstance(close, pd.DataFrame):
            return close.bfill().fillna(1.0)
        raise ValueError(
            "this result has no valuation prices (loaded from disk); pass `close` to to_vectorbt()"
        )

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """Write Parquet (equity, weights, target weights, trades, rebalances) and JSON (meta, costs,
        diagnostics) into ``folder``; returns the folder."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({"equity": self.equity, "cash": self.cash})
        if self.benchmark is not None:
            frame["benchmark"] = self.benchmark
        frame.to_parquet(out / "equity.parquet")
        self.weights.to_parquet(out / "weights.parquet")
        self.target_weights.to_parquet(out / "target_weights.parquet")
        self.trades.to_parquet(out / "trades.parquet")
        self.rebalances.to_parquet(out / "rebalances.parquet")
        payload = {
            "meta": _jsonable({k: v for k, v in self.meta.items() if not k.startswith("_")}),
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
            equity=eq["equity"],
            cash=eq["cash"],
            weights=pd.read_parquet(src / "weights.parquet"),
            target_weights=pd.read_parquet(src / "target_weights.parquet"),
            trades=pd.read_parquet(src / "trades.parquet"),
            rebalances=pd.read_parquet(src / "rebalances.parquet"),
            benchmark=eq.get("benchmark"),
            costs=payload["costs"],
            diagnostics=payload["diagnostics"],
            meta=payload["meta"],
            extras={k: np.asarray(v) if isinstance(v, list) else v for k, v in extras.items()},
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
    if trades.dtype != kernels.TRADE_DTYPE:
        raise TypeError("expected a kernels.TRADE_DTYPE array")
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


def _rebalance_table(
    decisions: Decisions,
    index: pd.DatetimeIndex,
    ledger: np.ndarray,
    equity: np.ndarray,
    exec_shift: int,
) -> pd.DataFrame:
    """One row per decision: turnover and costs of the rebalance trades filled for it."""
    n_bars = len(index)
    rebal = ledger[ledger["reason"] == kernels.REASON_REBALANCE]
    bar = rebal["bar"]
    notional = np.abs(rebal["units"]) * rebal["price"]

    def per_bar(values: np.ndarray) -> np.ndarray:
        return np.bincount(bar, weights=values, minlength=n_bars)

    fill = decisions.bars + exec_shift
    ok = fill < n_bars
    at = np.where(ok, fill, n_bars - 1)
    ref = equity[at]

    def pick(arr: np.ndarray) -> np.ndarray:
        return np.where(ok, arr[at], 0.0)

    with np.errstate(invalid="ignore", divide="ignore"):
        turnover = np.where(ref > 0, pick(per_bar(notional)) / ref, 0.0)
    fill_time = pd.Series(index[at]).where(ok)  # NaT for a decision on the last bar (no fill)
    return pd.DataFrame(
        {
            "time": index[decisions.bars],
            "fill_time": fill_time.to_numpy(),
            "turnover": turnover,
            "fees": pick(per_bar(rebal["fee"])),
            "slippage": pick(per_bar(rebal["slippage"])),
            "impact": pick(per_bar(rebal["impact"])),
            "n_trades": pick(np.bincount(bar, minlength=n_bars).astype(np.float64)).astype(
                np.int64
            ),
            "universe": decisions.universe.sum(axis=1).astype(np.int64),
            "method": decisions.methods,
            "notes": ["; ".join(n) for n in decisions.notes],
        }
    )


def build_result(
    market: MarketData,
    decisions: Decisions,
    targets: np.ndarray,
    sim: SimulationOutput,
    *,
    start: int,
    benchmark: pd.Series | None,
    info: dict[str, Any],
) -> BacktestResult:
    """Wrap kernel outputs in pandas, from bar ``start`` (the first decision) on."""
    index = market.index
    symbols = list(market.symbols)
    close = pd.DataFrame(market.values("close"), index=index, columns=symbols).ffill()
    equity = pd.Series(sim.equity, index=index, name="equity")
    units = pd.DataFrame(sim.units, index=index, columns=symbols)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = (units * close.fillna(0.0)).div(equity, axis=0).fillna(0.0)
    trades = trades_frame(sim.trades, index, market.symbols)
    rebalances = _rebalance_table(
        decisions, index, sim.trades, sim.equity, fill_shift(info.get("execution", "next_open"))
    )
    target_weights = pd.DataFrame(decisions.weights, index=index[decisions.bars], columns=symbols)
    universe_changes = _universe_changes(decisions, index, market.symbols)
    fallbacks = [
        f"{index[t]:%Y-%m-%d %H:%M}: {m} ({'; '.join(nt)})"
        for t, m, nt in zip(decisions.bars, decisions.methods, decisions.notes, strict=True)
        if nt
    ]
    costs = {
        "fees": float(sim.costs[0]),
        "slippage": float(sim.costs[1]),
        "impact": float(sim.costs[2]),
        "traded_notional": float(sim.costs[3]),
        "skipped_trades": int(sim.costs[4]),
    }
    diagnostics = {
        "n_decisions": int(decisions.bars.size),
        "allocator_fallbacks": fallbacks,
        "n_fallbacks": len(fallbacks),
        "skipped_trades": int(sim.costs[4]),
        "universe_changes": universe_changes,
        "data_notes": list(market.notes),
        "gaps": int(market.gaps()["n_bars"].sum()) if market.n_bars else 0,
    }
    meta = {
        **info,
        "data_source": market.source,
        "synthetic": bool(market.synthetic),
        "timeframe": market.timeframe,
        "periods_per_year": float(market.periods_per_year),
        "symbols": symbols,
        "start": index[start].isoformat(),
        "end": index[-1].isoformat(),
        "bar_ms": int((index[1] - index[0]).total_seconds() * 1000)
        if len(index) > 1
        else 86_400_000,
        "gap_policy": next(
            (n for n in market.notes if n.startswith("gap policy")), "gap policy: leave NaN"
        ),
        "_close": close.iloc[start:],
    }
    sl = slice(start, None)
    return BacktestResult(
        equity=equity.iloc[sl],
        cash=pd.Series(sim.cash, index=index, name="cash").iloc[sl],
        weights=weights.iloc[sl],
        target_weights=target_weights,
        trades=trades,
        rebalances=rebalances,
        benchmark=benchmark,
        costs=costs,
        diagnostics=diagnostics,
        meta=meta,
        extras=decisions.last_extras,
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
