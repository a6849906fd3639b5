"""The cost / tracking-error frontier of rebalancing policies.

For one strategy, a grid of **policies** (when to trade) is simulated on the same decisions:

* ``calendar``: trade to the target at each period of ``every`` (``"1D"``, ``"1W"``, ``"1M"`` ...);
* ``drift``: refresh the target every bar, trade back to it only when some weight leaves an
  absolute band (``drift_band``);
* ``cost``: refresh the target every bar, trade an asset only when it leaves its cost-aware
  no-trade region, and then only to the region's edge (``band_mode = "cost"``, one policy per
  ``risk_aversion``; see :mod:`backtest.schedule`).

Each policy is measured against the **reference**: the same decisions (the strategy refreshed at
every bar; a cost-aware allocator keeps the scenario's cost in its objective) traded in full at
every bar without costs. The table has one row per policy: ``annual_cost`` (fees + slippage + impact
as a fraction of equity per year), ``tracking_error`` (annualised standard deviation of the policy's
returns minus the reference's), ``turnover`` (annualised one-way), ``sharpe`` (net of costs) and
``efficient`` (no other policy has both a lower cost and a lower tracking error).

The allocator is called once per bar for the reference; every policy reads its decisions from the
same memo (:class:`backtest.walkforward.SharedWork`), so the grid costs one walk-forward plus one
simulation per policy (one kernel call per band mode).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from backtest.costs import Costs, RiskControls
from backtest.errors import EngineError
from backtest.pipeline import (
    Prepared,
    Scenario,
    assemble,
    decide,
    decision_bars,
    decision_orders,
    market_arrays,
    prepare,
    price_trades,
)
from backtest.schedule import Schedule, period_labels
from backtest.simulate import Execution, SimulationOutput, simulate_batch
from backtest.walkforward import Decisions, SharedWork
from datasets import MarketData
from strategies import Allocator, Constraints

PolicyKind = Literal["calendar", "drift", "cost"]

#: The default grid (calendar periods shorter than two bars are dropped).
CALENDAR = ("4H", "12H", "1D", "2D", "1W", "2W", "1M", "1Q")
DRIFT_BANDS = (0.005, 0.01, 0.02, 0.05, 0.1)
RISK_AVERSIONS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
EVERY_BAR = "bar"  # the refresh of a band policy whose target follows every bar

COLUMNS = (
    "policy",
    "kind",
    "refresh",
    "parameter",
    "annual_cost",
    "tracking_error",
    "turnover",
    "sharpe",
    "cagr",
    "n_trades",
    "efficient",
)


@dataclass(frozen=True)
class Policy:
    """One rebalancing policy of the grid: its label, kind, target refresh (a calendar period or
    ``"bar"``), parameter (band or risk aversion; NaN for a calendar policy) and schedule."""

    name: str
    kind: PolicyKind
    refresh: str
    parameter: float
    schedule: Schedule

    @classmethod
    def calendar(cls, every: str) -> Policy:
        """Trade to the target at each period of ``every`` (``"bar"``: at every bar)."""
        return cls(f"every {every}", "calendar", every, math.nan, _banded(every))

    @classmethod
    def drift(cls, band: float, refresh: str = EVERY_BAR) -> Policy:
        """Refresh the target at ``refresh``; trade back to it when a weight leaves ``+- band``."""
        return cls(
            f"{refresh} + drift {band:g}",
            "drift",
            refresh,
            float(band),
            _banded(refresh, drift_band=band),
        )

    @classmethod
    def cost(cls, risk_aversion: float, refresh: str = EVERY_BAR) -> Policy:
        """Refresh the target at ``refresh``; trade an asset that leaves its cost-aware no-trade
        region to the region's edge."""
        schedule = _banded(refresh, band_mode="cost", risk_aversion=risk_aversion)
        return cls(
            f"{refresh} + cost g={risk_aversion:g}", "cost", refresh, float(risk_aversion), schedule
        )


def _banded(refresh: str, **band: Any) -> Schedule:
    if refresh == EVERY_BAR:
        return Schedule(every=None, bars=1, **band)
    return Schedule(every=refresh, **band)


def policy_grid(
    index: pd.DatetimeIndex,
    *,
    every: Sequence[str] | None = None,
    drift_bands: Sequence[float] | None = None,
    risk_aversions: Sequence[float] | None = None,
) -> list[Policy]:
    """The policies to compare on bars ``index``: a calendar policy at every bar and per period of
    ``every`` (default: the periods of :data:`CALENDAR` that span more than one bar of the data),
    and a drift band per ``drift_bands`` and a cost band per ``risk_aversions`` for each refresh:
    every bar and each period of ``every``."""
    if every is None:
        every = [e for e in CALENDAR if _bars_per_period(index, e) > 1.5]
    every = [e for e in every if e != EVERY_BAR]
    for e in every:
        period_labels(index[:1], e)  # a clear error for a bad period
    bands = DRIFT_BANDS if drift_bands is None else drift_bands
    aversions = RISK_AVERSIONS if risk_aversions is None else risk_aversions
    policies = [Policy.calendar(e) for e in (EVERY_BAR, *every)]
    for refresh in (EVERY_BAR, *every):
        policies += [Policy.drift(b, refresh) for b in bands]
        policies += [Policy.cost(g, refresh) for g in aversions]
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise EngineError(
            f"the policies repeat: {sorted({n for n in names if names.count(n) > 1})}"
        )
    return policies


def _bars_per_period(index: pd.DatetimeIndex, every: str) -> float:
    labels = period_labels(index, every)
    return len(index) / max(int(np.unique(labels).size), 1)


@dataclass(frozen=True)
class CostFrontier:
    """The policy table and the reference run it is measured against."""

    table: pd.DataFrame
    reference: pd.Series  # equity of the every-bar, costless rebalance
    meta: dict[str, Any]

    def against_calendar(self, kind: PolicyKind = "cost") -> pd.DataFrame:
        """For each calendar policy: the cheapest policy of ``kind`` whose tracking error is at most
        the calendar's (empty ``band`` when none tracks as closely), with both costs, tracking
        errors and turnovers."""
        table = self.table
        bands = table[(table["kind"] == kind) & np.isfinite(table["tracking_error"])]
        rows = []
        for _, cal in table[table["kind"] == "calendar"].iterrows():
            close = bands[bands["tracking_error"] <= cal["tracking_error"]]
            best = close.loc[close["annual_cost"].idxmin()] if len(close) else None
            rows.append(
                {
                    "calendar": cal["policy"],
                    "calendar_cost": cal["annual_cost"],
                    "calendar_tracking_error": cal["tracking_error"],
                    "calendar_turnover": cal["turnover"],
                    "band": "" if best is None else best["policy"],
                    "band_cost": math.nan if best is None else best["annual_cost"],
                    "band_tracking_error": math.nan if best is None else best["tracking_error"],
                    "band_turnover": math.nan if best is None else best["turnover"],
                }
            )
        return pd.DataFrame(
            rows,
            columns=[
                "calendar",
                "calendar_cost",
                "calendar_tracking_error",
                "calendar_turnover",
                "band",
                "band_cost",
                "band_tracking_error",
                "band_turnover",
            ],
        )


def cost_frontier(
    market: MarketData,
    strategy: Allocator,
    costs: Costs | None = None,
    *,
    policies: Sequence[Policy] | None = None,
    initial_cash: float = 100_000.0,
    execution: Execution = "next_open",
    constraints: Constraints | Mapping[str, Any] | None = None,
    risk: RiskControls | None = None,
    lookback_days: float | None = None,
    risk_free_rate: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CostFrontier:
    """Simulate each rebalancing policy of ``policies`` (default :func:`policy_grid`) for
    ``strategy`` and measure it against the every-bar costless rebalance.

    Examples
    --------
    >>> from datasets import synthetic_market
    >>> from strategies import InverseVolatility
    >>> market = synthetic_market(n_assets=4, n_bars=300)
    >>> grid = [Policy.calendar("1W"), Policy.drift(0.02), Policy.cost(1.0, refresh="1W")]
    >>> frontier = cost_frontier(market, InverseVolatility(lookback_days=30), policies=grid)
    >>> frontier.table["policy"].tolist()
    ['every 1W', 'bar + drift 0.02', '1W + cost g=1']
    """
    costs = costs or Costs()
    risk = risk or RiskControls()
    policies = list(policies) if policies is not None else policy_grid(market.index)
    prepared = prepare(market, strategy, constraints, lookback_days)
    prepared = price_trades(prepared, costs, initial_cash)
    shared = SharedWork()
    every_bar = Schedule(every=None, bars=1)
    reference_decisions = decide(
        prepared, decision_bars(prepared, every_bar), shared=shared, progress=progress
    )
    start = int(reference_decisions.bars[0])
    free = Costs(fee_bps=0.0, slippage_bps=0.0)
    (reference,) = _simulate(
        prepared, [reference_decisions], free, [every_bar], initial_cash, risk, execution
    )
    by_refresh: dict[str, Decisions] = {EVERY_BAR: reference_decisions}
    for p in policies:
        if p.refresh not in by_refresh:
            bars = decision_bars(prepared, p.schedule)
            by_refresh[p.refresh] = decide(prepared, bars, shared=shared)
    decisions = [by_refresh[p.refresh] for p in policies]
    sims: list[SimulationOutput | None] = [None] * len(policies)
    for group in _batches(policies):
        outs = _simulate(
            prepared,
            [decisions[i] for i in group],
            costs,
            [policies[i].schedule for i in group],
            initial_cash,
            risk,
            execution,
        )
        for i, out in zip(group, outs, strict=True):
            sims[i] = out
    ppy = float(market.periods_per_year)
    ref_returns = _returns(reference.equity[start:])
    rows = []
    for policy, dec, sim in zip(policies, decisions, sims, strict=True):
        assert sim is not None
        scenario = Scenario(costs, policy.schedule, initial_cash)
        result = assemble(
            prepared,
            dec,
            sim,
            scenario,
            risk=risk,
            execution=execution,
            benchmark=(None, None),
            risk_free_rate=risk_free_rate,
        )
        m = result.metrics()
        active = _returns(sim.equity[start:]) - ref_returns
        rows.append(
            {
                "policy": policy.name,
                "kind": policy.kind,
                "refresh": policy.refresh,
                "parameter": policy.parameter,
                "annual_cost": m["cost_drag_bps"] / 1e4,
                "tracking_error": float(np.std(active, ddof=1) * math.sqrt(ppy))
                if active.size > 1
                else math.nan,
                "turnover": m["turnover"],
                "sharpe": m["sharpe"],
                "cagr": m["cagr"],
                "n_trades": int(m["n_trades"]),
            }
        )
    table = pd.DataFrame(rows)
    table["efficient"] = efficient(
        table["annual_cost"].to_numpy(), table["tracking_error"].to_numpy()
    )
    reference_equity = pd.Series(
        reference.equity[start:], index=market.index[start:], name="reference"
    )
    meta = {
        "strategy": getattr(prepared.strategy, "name", type(prepared.strategy).__name__),
        "costs": {k: v for k, v in dataclasses.asdict(costs).items() if not isinstance(v, Mapping)},
        "execution": execution,
        "start": market.index[start].isoformat(),
        "end": market.index[-1].isoformat(),
        "n_bars": int(market.n_bars - start),
        "symbols": list(market.symbols),
        "synthetic": bool(market.synthetic),
        "data_source": market.source,
    }
    return CostFrontier(table=table[list(COLUMNS)], reference=reference_equity, meta=meta)


def efficient(cost: np.ndarray, tracking_error: np.ndarray) -> np.ndarray:
    """Whether each policy is on the frontier: no other has a cost and a tracking error both at
    most its own, one of them strictly lower (NaN is never efficient).

    Examples
    --------
    >>> efficient(np.array([1.0, 2.0, 3.0, 1.5]), np.array([3.0, 1.0, 0.5, 3.5])).tolist()
    [True, True, True, False]
    """
    cost, te = np.asarray(cost, dtype=np.float64), np.asarray(tracking_error, dtype=np.float64)
    ok = np.isfinite(cost) & np.isfinite(te)
    out = np.zeros(cost.shape, dtype=bool)
    for i in np.flatnonzero(ok):
        le = ok & (cost <= cost[i]) & (te <= te[i])
        lt = (cost < cost[i]) | (te < te[i])
        out[i] = not np.any(le & lt)
    return out


def _returns(equity: np.ndarray) -> np.ndarray:
    return equity[1:] / equity[:-1] - 1.0


def _batches(policies: Sequence[Policy]) -> list[list[int]]:
    """Indices of the policies that share a kernel call (the same band mode and band target)."""
    groups: dict[tuple[str, bool], list[int]] = {}
    for i, p in enumerate(policies):
        groups.setdefault((p.schedule.band_mode, p.schedule.to_edge), []).append(i)
    return list(groups.values())


def _simulate(
    prepared: Prepared,
    decisions: Sequence[Decisions],
    costs: Costs,
    schedules: Sequence[Schedule],
    initial_cash: float,
    risk: RiskControls,
    execution: Execution,
) -> list[SimulationOutput]:
    market = prepared.market
    arrays = market_arrays(market, costs, risk, execution)
    return simulate_batch(
        arrays,
        [decision_orders(d, market.n_bars, execution) for d in decisions],
        costs=[costs] * len(decisions),
        risk=risk,
        schedules=list(schedules),
        initial_cash=[initial_cash] * len(decisions),
        execution=execution,
    )


def write_cost_frontier(
    frontier: CostFrontier, out: Path, *, title: str | None = None
) -> dict[str, Path]:
    """Write ``cost_frontier.parquet``, ``cost_frontier.csv`` (the policy table), ``comparison.csv``
    (:meth:`CostFrontier.against_calendar`) and ``cost_frontier.html`` (the scatter) to ``out``."""
    from reports.cost_frontier import write_cost_frontier_report

    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "parquet": out / "cost_frontier.parquet",
        "csv": out / "cost_frontier.csv",
        "comparison": out / "comparison.csv",
    }
    frontier.table.to_parquet(paths["parquet"], index=False)
    frontier.table.to_csv(paths["csv"], index=False)
    comparison = frontier.against_calendar()
    comparison.to_csv(paths["comparison"], index=False)
    meta = frontier.meta
    label = "SYNTHETIC data" if meta["synthetic"] else str(meta["data_source"])
    paths["html"] = write_cost_frontier_report(
        out,
        frontier.table,
        comparison=comparison,
        meta={
            "title": title or f"Cost / tracking-error frontier: {meta['strategy']}",
            "subtitle": (
                f"{len(meta['symbols'])} assets, {meta['start'][:10]} to {meta['end'][:10]} "
                f"({label}); fee {meta['costs']['fee_bps']:g} bps, slippage "
                f"{meta['costs']['slippage_bps']:g} bps"
            ),
            "synthetic": meta["synthetic"],
            "notes": meta.get("notes", []),
        },
    )
    return paths
