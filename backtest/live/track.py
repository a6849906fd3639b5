"""Tracking an account from its journal: value, weights, scores, drift, costs and shortfall, and the
backtest of the same config over the same period beside it.

:func:`track` reads a :class:`~backtest.live.journal.Journal` and returns a :class:`TrackResult` of
plain tables (what ``backtest track`` writes and :mod:`reports.track` draws):

* ``values``: the account's value at every snapshot time (the first snapshot of a time: a
  decision's pre-trade valuation, else the bar's mark), and the backtest's equity at the same bar
  closes scaled to the account's first value;
* ``weights``: current weights per snapshot time and asset;
* ``drift``: ``0.5 * sum |w_now - w_target|`` against the last executed (not dry-run) target before
  each snapshot (the first snapshots, before any target, have none);
* ``rebalances``: one row per decision, with the plan (score, planned value, estimated cost), what
  was executed (filled value, fees, slippage against the decision price), the opportunity cost of
  what did not fill, the implementation shortfall and the backtest's cost of the same decision.

Implementation shortfall (Perold) of a decision, in the quote currency, against the paper
portfolio that trades the plan at the decision's prices ``p0``::

    shortfall = sum_fills s * (fill_price - p0) * amount          (execution: slippage, spread)
              + sum_fills fee                                     (fees actually charged)
              + sum_trades s * unfilled * (p_next - p0)           (opportunity cost)

with ``s = +1`` for a buy and ``-1`` for a sell and ``p_next`` the asset's price at the next
snapshot after the decision. ``shortfall_bps`` divides it by the planned value. Fills are matched
to their decision through the order's first event (its ``intent``). See docs/live.md ("Track").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtest.errors import LiveError
from backtest.live.journal import Journal, config_hash, mask_secrets

REBALANCE_COLUMNS = (
    "time",
    "step",
    "dry_run",
    "total_value",
    "score",
    "drift",
    "n_trades",
    "planned_value",
    "estimated_cost",
    "filled_value",
    "fees",
    "slippage",
    "realised_cost",
    "unfilled_value",
    "opportunity_cost",
    "shortfall",
    "shortfall_bps",
    "backtest_cost",
)


@dataclass(frozen=True)
class TrackResult:
    """The tables of an account's history (see the module docstring).

    Attributes
    ----------
    account : str
    values : DataFrame
        Index ``time`` (UTC); columns ``value`` and ``backtest`` (NaN without a config).
    weights : DataFrame
        Index ``time``; one column per asset (cash included), current weights.
    drift : Series
        Index ``time``; distance from the last executed target.
    rebalances : DataFrame
        One row per decision, columns :data:`REBALANCE_COLUMNS`.
    summary : dict
        Period, growth of the account and of the backtest, cost totals.
    notes : tuple of str
    """

    account: str
    values: pd.DataFrame
    weights: pd.DataFrame
    drift: pd.Series
    rebalances: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def track(journal: Journal, cfg: Any = None, *, market: Any = None) -> TrackResult:
    """The account's history from ``journal``, with the backtest of ``cfg`` beside it.

    Parameters
    ----------
    journal : Journal
    cfg : ExperimentConfig, optional
        The config the account ran (its hash must be the journal's): the backtest of the same
        strategy over the journal's period is computed (:func:`backtest.live.backtest_beside`).
    market : MarketData, optional
        Instead of loading the config's data.

    Returns
    -------
    TrackResult

    Examples
    --------
    >>> import tempfile
    >>> from backtest.live.journal import snapshot_frame
    >>> j = Journal(tempfile.mkdtemp(), "demo")
    >>> t0 = pd.Timestamp("2022-01-02", tz="UTC")
    >>> _ = j.append({"snapshots": snapshot_frame(
    ...     t0, {"USDT": 100.0}, {}, {"USDT": 1.0}, {"USDT": 1.0}, score=0.0)})
    >>> track(j).values["value"].tolist()
    [100.0]
    """
    snaps = journal.snapshots()
    if snaps.empty:
        raise LiveError(
            f"{journal!r} has no snapshot to track: run `backtest rebalance` or `backtest paper` "
            "with this --journal first"
        )
    snaps = snaps.assign(time=pd.DatetimeIndex(snaps["time"]))
    values = _values(snaps)
    weights = _weights(snaps)
    drift = _drift(snaps, weights)
    rebalances = _rebalances(snaps, journal.plans(), journal.orders(), journal.fills(), drift)
    notes: list[str] = []
    if cfg is not None:
        bt = _beside(journal, snaps, cfg, market)
        values["backtest"] = _aligned_equity(bt, values, cfg)
        rebalances["backtest_cost"] = _backtest_costs(bt, rebalances, cfg)
    else:
        notes.append("no config given: the backtest beside the account is not computed")
    summary = _summary(journal, values, rebalances)
    summary["quote"] = cfg.live.quote if cfg is not None and cfg.live is not None else "USDT"
    weights.columns = [mask_secrets(str(c)) for c in weights.columns]  # text from the journal
    return TrackResult(
        mask_secrets(journal.account), values, weights, drift, rebalances, summary, tuple(notes)
    )


def write_track(result: TrackResult, out: Any, *, title: str | None = None) -> dict[str, Any]:
    """Write ``values.csv`` (value, backtest, drift), ``weights.csv``, ``rebalances.csv``,
    ``summary.json`` and the HTML page ``track.html`` into ``out``; returns their paths by name.
    Every text written passes through :func:`~backtest.live.journal.mask_secrets`."""
    import json
    from pathlib import Path

    from reports.page import ensure_out_dir, json_safe, write_text_atomic
    from reports.track import write_track_report

    folder = ensure_out_dir(Path(out))
    paths = {name: folder / f"{name}.csv" for name in ("values", "weights", "rebalances")}
    tables = {
        "values": result.values.assign(drift=result.drift),
        "weights": result.weights,
        "rebalances": result.rebalances,
    }
    for name, frame in tables.items():
        write_text_atomic(paths[name], mask_secrets(frame.to_csv()))
    summary = {**result.summary, "notes": list(result.notes)}
    paths["summary"] = folder / "summary.json"
    write_text_atomic(paths["summary"], mask_secrets(json.dumps(json_safe(summary), indent=2)))
    meta = {
        "title": mask_secrets(title or f"Account {result.account}: live against the backtest"),
        "quote": result.summary.get("quote", "USDT"),
        "notes": [mask_secrets(n) for n in result.notes],
    }
    paths["html"] = write_track_report(
        folder,
        result.values,
        result.weights,
        result.drift,
        result.rebalances,
        summary=result.summary,
        meta=meta,
    )
    return paths


# ---------------------------------------------------------------------------------- tables
def _values(snaps: pd.DataFrame) -> pd.DataFrame:
    first = snaps.drop_duplicates("time")
    out = pd.DataFrame(
        {"value": first["total_value"].to_numpy(dtype=float), "backtest": np.nan},
        index=pd.DatetimeIndex(first["time"], name="time"),
    )
    return out


def _weights(snaps: pd.DataFrame) -> pd.DataFrame:
    rows = snaps.drop_duplicates(["time", "asset"])
    out = rows.pivot(index="time", columns="asset", values="current_weight").fillna(0.0)
    out.columns.name = None
    order = list(dict.fromkeys(rows["asset"]))
    return out[order]


def _targets(snaps: pd.DataFrame) -> pd.DataFrame:
    """Target weights of the executed decisions (index: decision time)."""
    done = snaps[(snaps["kind"] == "rebalance") & ~snaps["dry_run"].astype(bool)]
    if done.empty:
        return pd.DataFrame()
    out = done.drop_duplicates(["time", "asset"]).pivot(
        index="time", columns="asset", values="target_weight"
    )
    return out.fillna(0.0)


def _drift(snaps: pd.DataFrame, weights: pd.DataFrame) -> pd.Series:
    targets = _targets(snaps)
    drift = pd.Series(np.nan, index=weights.index, name="drift")
    if targets.empty:
        return drift
    assets = sorted(set(weights.columns) | set(targets.columns))
    w = weights.reindex(columns=assets, fill_value=0.0)
    tg = targets.reindex(columns=assets, fill_value=0.0)
    for time in w.index:
        before = tg.index[tg.index < time]
        if len(before):
            gap = w.loc[time].to_numpy() - tg.loc[before[-1]].to_numpy()
            drift.loc[time] = 0.5 * float(np.abs(gap).sum())
    return drift


def _rebalances(
    snaps: pd.DataFrame,
    plans: pd.DataFrame,
    orders: pd.DataFrame,
    fills: pd.DataFrame,
    drift: pd.Series,
) -> pd.DataFrame:
    decisions = snaps[snaps["kind"] == "rebalance"].drop_duplicates("time")
    times = pd.DatetimeIndex(decisions["time"])
    rows = []
    fills = _with_decision(fills, orders, times)
    plans = plans.assign(time=pd.DatetimeIndex(plans["time"]))
    for (_, d), time in zip(decisions.iterrows(), times, strict=True):
        plan = plans[plans["time"] == time]
        done = fills[fills["decision"] == time]
        sign = np.where(done["side"] == "buy", 1.0, -1.0)
        ref = done["symbol"].map(dict(zip(plan["symbol"], plan["price"], strict=True)))
        gap = done["price"].to_numpy(dtype=float) - ref.to_numpy(dtype=float)
        slippage = float(np.nansum(sign * gap * done["amount"].to_numpy(dtype=float)))
        fees = float(np.nansum(done["fee"]))
        unfilled, opportunity = _opportunity(snaps, plan, done, time)
        planned = float(plan["value"].sum())
        shortfall = slippage + fees + opportunity
        rows.append(
            {
                "time": time,
                "step": int(d["step"]),
                "dry_run": bool(d["dry_run"]),
                "total_value": float(d["total_value"]),
                "score": float(d["score"]),
                "drift": float(drift.get(time, np.nan)),
                "n_trades": len(plan),
                "planned_value": planned,
                "estimated_cost": float(plan["estimated_cost"].sum()),
                "filled_value": float((done["amount"] * done["price"]).sum()),
                "fees": fees,
                "slippage": slippage,
                "realised_cost": fees + slippage,
                "unfilled_value": unfilled,
                "opportunity_cost": opportunity,
                "shortfall": shortfall,
                "shortfall_bps": shortfall / planned * 1e4 if planned > 0 else np.nan,
                "backtest_cost": np.nan,
            }
        )
    return pd.DataFrame(rows, columns=list(REBALANCE_COLUMNS))


def _with_decision(
    fills: pd.DataFrame, orders: pd.DataFrame, times: pd.DatetimeIndex
) -> pd.DataFrame:
    """``fills`` with the time of the decision each belongs to (through its order's first event)."""
    out = fills.assign(time=pd.DatetimeIndex(fills["time"]))
    first = orders.drop_duplicates("client_order_id").set_index("client_order_id")["time"]
    placed = pd.DatetimeIndex(
        pd.to_datetime(out["client_order_id"].map(first), utc=True).fillna(out["time"])
    )
    pos = times.searchsorted(placed, side="right") - 1
    out["decision"] = pd.DatetimeIndex([times[int(p)] if p >= 0 else pd.NaT for p in pos], tz="UTC")
    return out


def _opportunity(
    snaps: pd.DataFrame, plan: pd.DataFrame, done: pd.DataFrame, time: pd.Timestamp
) -> tuple[float, float]:
    """(unfilled value at the decision prices, its opportunity cost at the next snapshot's prices)."""
    later = snaps[snaps["time"] > time]
    after = later[later["time"] == later["time"].min()] if len(later) else later
    next_price = dict(zip(after["asset"], after["price"], strict=True))
    filled = done.groupby("symbol")["amount"].sum()
    unfilled_value = opportunity = 0.0
    for _, trade in plan.iterrows():
        left = max(float(trade["amount"]) - float(filled.get(trade["symbol"], 0.0)), 0.0)
        p0 = float(trade["price"])
        p1 = float(next_price.get(trade["asset"], p0))
        sign = 1.0 if trade["side"] == "buy" else -1.0
        unfilled_value += left * p0
        opportunity += sign * left * ((p1 if math.isfinite(p1) else p0) - p0)
    return unfilled_value, opportunity


# ---------------------------------------------------------------------------------- the backtest
def _step(cfg: Any) -> pd.Timedelta:
    from datasets.timeframe import timeframe_to_ms

    return pd.Timedelta(milliseconds=timeframe_to_ms(cfg.data.timeframe))


def _beside(journal: Journal, snaps: pd.DataFrame, cfg: Any, market: Any) -> Any:
    """``run_backtest`` of ``cfg`` from the journal's first decision to its last snapshot."""
    from backtest.live.replay import backtest_beside

    hashes = snaps["config_hash"].dropna().unique().tolist()
    mine = config_hash(cfg)
    if hashes and mine not in hashes:
        raise LiveError(
            f"the config's hash {mine} is not the journal's ({', '.join(hashes)}): the backtest "
            f"beside {journal!r} must run the config the account ran; pass that config"
        )
    decisions = snaps[snaps["kind"] == "rebalance"]
    if decisions.empty:
        raise LiveError(f"{journal!r} has no decision snapshot: nothing to compare")
    step = _step(cfg)
    start = pd.Timestamp(decisions["time"].min()) - step  # journal times are bar closes
    end = pd.Timestamp(snaps["time"].max()) - step
    if end <= start:
        end = start + step
    return backtest_beside(cfg, start, end, market)


def _aligned_equity(bt: Any, values: pd.DataFrame, cfg: Any) -> np.ndarray:
    """The backtest's equity at the journal's times (bar closes), scaled to the first value."""
    equity = bt.equity.copy()
    equity.index = pd.DatetimeIndex(equity.index) + _step(cfg)
    aligned = equity.reindex(equity.index.union(values.index)).ffill().reindex(values.index)
    first = aligned.dropna()
    if first.empty:
        return np.full(len(values), np.nan)
    scale = float(values["value"].loc[first.index[0]]) / float(first.iloc[0])
    return aligned.to_numpy(dtype=float) * scale


def _backtest_costs(bt: Any, rebalances: pd.DataFrame, cfg: Any) -> np.ndarray:
    """The backtest's fees + slippage + impact of the decision on the same bar (NaN: none)."""
    r = bt.rebalances
    cost = (r["fees"] + r["slippage"] + r["impact"]).to_numpy(dtype=float)
    by_close = dict(zip(pd.DatetimeIndex(r["time"]) + _step(cfg), cost, strict=True))
    return np.array([by_close.get(t, np.nan) for t in rebalances["time"]], dtype=float)


def _summary(journal: Journal, values: pd.DataFrame, rebalances: pd.DataFrame) -> dict[str, Any]:
    v, b = values["value"], values["backtest"].dropna()
    growth = float(v.iloc[-1] / v.iloc[0] - 1.0)
    bt_growth = float(b.iloc[-1] / b.iloc[0] - 1.0) if len(b) > 1 else math.nan
    done = rebalances[~rebalances["dry_run"]]
    planned = float(done["planned_value"].sum())
    return {
        "account": mask_secrets(journal.account),
        "start": f"{values.index[0]:%Y-%m-%d %H:%M}",
        "end": f"{values.index[-1]:%Y-%m-%d %H:%M}",
        "n_snapshots": len(values),
        "n_rebalances": len(done),
        "n_dry_runs": int(rebalances["dry_run"].sum()),
        "start_value": float(v.iloc[0]),
        "end_value": float(v.iloc[-1]),
        "growth": growth,
        "backtest_growth": bt_growth,
        "difference": growth - bt_growth,
        "estimated_cost": float(done["estimated_cost"].sum()),
        "realised_cost": float(done["realised_cost"].sum()),
        "backtest_cost": float(done["backtest_cost"].sum(min_count=1)),
        "fees": float(done["fees"].sum()),
        "shortfall": float(done["shortfall"].sum()),
        "shortfall_bps": float(done["shortfall"].sum()) / planned * 1e4
        if planned > 0
        else math.nan,
    }
