"""The sweep grid: ``[sweep]`` lists multiplied into grid points, and the planner that groups them.

Each grid point is an ordinary experiment config with a stable ``point_id``; the planner groups points
that share a universe and a strategy config into one task, so their walk-forwards share allocations.
Re-exported by :mod:`backtest.sweep`. Design: docs/sweeps.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backtest.config import (
    ExperimentConfig,
    SweepConfig,
    apply_overrides,
    load_config,
    parse_config,
)
from backtest.errors import ConfigError


# --------------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class GridPoint:
    """One point of the grid: its id, its parameters (dotted path -> value) and its resolved config."""

    point_id: str
    params: dict[str, Any]
    config: ExperimentConfig

    def columns(self) -> dict[str, Any]:
        """The parameters as table cells: lists and tables as JSON text, dates as ISO text."""
        return {k: _cell(v) for k, v in self.params.items()}


def _cell(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def point_id(params: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit id of a parameter set: sha256 of its canonical JSON (sorted keys).

    >>> point_id({"strategy.lookback_days": 30, "strategy.name": "hrp"})
    '6a3408513bf1e32c'
    """
    text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(key: str, value: Any) -> dict[str, Any]:
    """A table value (``"costs" = [{fee_bps = 10}]``) becomes dotted keys, merged into the base."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(f"{key}.{k}", v))
        return out
    return {key: value}


def check_sweep(sweep: Any) -> dict[str, list[Any]]:
    """The grid lists of the ``[sweep]`` table, checked: non-empty lists without repeats. The
    validation options (``SweepConfig``'s fields, e.g. ``validation``) are not grid keys."""
    what = "the config has no [sweep] table; add one"
    if isinstance(sweep, Mapping) and sweep:
        what = "the [sweep] table has no grid lists; add one"
        sweep = {k: v for k, v in sweep.items() if k not in SweepConfig.model_fields}
    if not isinstance(sweep, Mapping) or not sweep:
        raise ConfigError(
            [("sweep", f'{what}, e.g. [sweep] "strategy.lookback_days" = [30, 90, 180]')]
        )
    out = {}
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(
                [(f"sweep.{key}", f"must be a non-empty list of values; got {values!r}")]
            )
        texts = [json.dumps(v, sort_keys=True, default=str) for v in values]
        if len(set(texts)) < len(texts):
            dup = next(v for v, t in zip(values, texts, strict=True) if texts.count(t) > 1)
            raise ConfigError(
                [(f"sweep.{key}", f"lists {dup!r} more than once (each grid point must be unique)")]
            )
        if key.split(".")[0] == "sweep":
            raise ConfigError([(f"sweep.{key}", "a sweep cannot sweep itself")])
        out[str(key)] = values
    return out


def expand_grid(data: Mapping[str, Any]) -> list[GridPoint]:
    """All grid points of a parsed TOML document (its ``[sweep]`` lists multiplied out, the last key
    varying fastest), each validated as a config and a strategy; a :class:`ConfigError` names the
    point that fails."""
    from backtest.experiment import strategy_from_config

    sweep = check_sweep(data.get("sweep"))
    base = {k: v for k, v in data.items() if k != "sweep"}
    keys = list(sweep)
    points = []
    for combo in itertools.product(*(sweep[k] for k in keys)):
        params = dict(zip(keys, combo, strict=True))
        overrides: dict[str, Any] = {}
        for k, v in params.items():
            overrides.update(_flatten(k, v))
        where = ", ".join(f"{k}={v!r}" for k, v in params.items())
        try:
            cfg = parse_config(apply_overrides(base, overrides))
        except ConfigError as exc:
            raise ConfigError(
                [(loc, f"{msg} (sweep point {where})") for loc, msg in exc.errors]
            ) from None
        try:  # the strategy's own parameter checks, before anything runs
            strategy_from_config(cfg.strategy, 365.0)
        except ValueError as exc:
            raise ConfigError([("strategy", f"{exc} (sweep point {where})")]) from None
        points.append(GridPoint(point_id(params), params, cfg))
    return points


def load_sweep(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], ExperimentConfig, list[GridPoint]]:
    """Read a sweep config: ``(raw TOML dict, validated base config, grid points)``."""
    base = load_config(path)  # file, TOML and schema errors, as for `backtest run`
    data = tomllib.loads(Path(path).read_text())
    return data, base, expand_grid(data)


# --------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class SweepTask:
    """Points that run together in one worker call: same universe and strategy (incl. lookback and
    bounds), so their walk-forwards share allocations; they differ in schedule, costs, risk, execution."""

    task_id: str
    market_key: str
    points: tuple[GridPoint, ...]


def data_key(cfg: ExperimentConfig) -> str:
    """Key of the universe a point loads (its ``[data]`` table)."""
    return grid_key(cfg.data)


def strategy_key(cfg: ExperimentConfig) -> str:
    """Key of what a point's prepare stage depends on: its strategy and its limits by symbol (and
    its fee and slippage, when the strategy prices its trades with them, and with market impact
    its impact coefficient and initial cash: :func:`backtest.pipeline.price_trades`)."""
    key = grid_key(cfg.strategy) + grid_key(cfg.constraints)
    if cfg.strategy.transaction_cost == "costs":
        key += json.dumps([cfg.costs.fee_bps, cfg.costs.slippage_bps])
        if cfg.costs.impact_coef > 0:
            key += json.dumps([cfg.costs.impact_coef, cfg.costs.initial_cash])
    return key


def grid_key(section: Any) -> str:
    return json.dumps(section.model_dump(mode="json"), sort_keys=True)


def plan_tasks(points: Sequence[GridPoint], market_keys: Mapping[str, str]) -> list[SweepTask]:
    """Group points into tasks (one per universe x strategy config), longest lookbacks first.

    ``market_keys`` maps :func:`data_key` to the key of the loaded market.
    """
    groups: dict[tuple[str, str], list[GridPoint]] = {}
    for p in points:
        groups.setdefault((market_keys[data_key(p.config)], strategy_key(p.config)), []).append(p)
    tasks = []
    for (mkey, _), pts in groups.items():
        pts = sorted(pts, key=lambda p: p.point_id)
        tid = hashlib.sha256("".join(p.point_id for p in pts).encode()).hexdigest()[:16]
        tasks.append(SweepTask(tid, mkey, tuple(pts)))
    s = lambda t: t.points[0].config.strategy  # noqa: E731
    return sorted(tasks, key=lambda t: (-s(t).lookback_days, s(t).name, t.task_id))
