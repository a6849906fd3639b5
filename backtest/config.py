"""Experiment configs (TOML) validated with pydantic v2.

Every table forbids unknown keys; each error is reported as ``section.key: message`` and the CLI
exits with code 2. A run writes the resolved config (defaults filled in) beside its outputs.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backtest.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    """Where the prices come from."""

    source: Literal["synthetic", "csv", "store", "ccxt"] = "synthetic"
    exchange: str = "binance"
    symbols: list[str] | None = None
    timeframe: str = "1d"
    start: dt.date | None = None
    end: dt.date | None = None
    path: str | None = Field(
        None, description="CSV file for source = 'csv' (a bare name is looked up in ../shared/data)"
    )
    store_root: str | None = Field(
        None, description="Parquet store root (default $ALPHAPULSE_DATA or ./data)"
    )
    max_fill_bars: int = Field(
        0, ge=0, description="forward-fill gaps up to this many bars (flagged); 0 leaves NaN"
    )
    days_per_year: float | None = Field(None, gt=0, le=366)
    n_assets: int = Field(12, ge=1, le=2000, description="synthetic only")
    n_bars: int = Field(1500, ge=10, description="synthetic only")
    seed: int = Field(7, description="synthetic only")

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        from datasets.timeframe import timeframe_to_ms

        timeframe_to_ms(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"`start` ({self.start}) must be before `end` ({self.end})")
        if self.source == "csv" and not self.path:
            raise ValueError("source = 'csv' needs `path` (e.g. 'binance_spot_usdt_1d.csv.gz')")
        if self.source in ("store", "ccxt") and not self.symbols:
            raise ValueError(
                f"source = '{self.source}' needs `symbols` (e.g. ['BTC/USDT', 'ETH/USDT'])"
            )
        return self


class StrategyConfig(_Section):
    """The allocator and its parameters (passed to ``strategies.registry.build_strategy``)."""

    name: str = "hrp"
    lookback_days: float = Field(90, gt=0)
    risk_free_rate: float = Field(0.02, ge=-0.5, le=1.0)
    min_weight: float = Field(0.0, ge=0, le=1)
    max_weight: float = Field(1.0, gt=0, le=1)
    objective: str | None = None
    target_return: float | None = None
    target_volatility: float | None = Field(None, gt=0)
    linkage: str | None = None
    covariance: str | None = None
    expected_returns: str | None = None
    fallback: list[str] | None = None
    risk_aversion: float | None = Field(None, gt=0)
    transaction_cost: float | list[float] | Literal["costs"] | None = None
    max_turnover: float | None = Field(None, gt=0)
    risk_budget: dict[str, float] | list[float] | None = None
    # hierarchical clustering (herc, nco): the risk measure, the cluster cap, nco's nested allocators
    risk_measure: str | None = None
    max_clusters: int | None = Field(None, ge=1)
    inner: str | None = None
    outer: str | None = None
    # Black-Litterman (strategies.black_litterman): views by expression, their confidences
    # (a list in the views' order, or by expression), the prior, tau and omega
    views: dict[str, float] | None = None
    view_confidences: dict[str, float] | list[float] | None = None
    omega: str | None = None
    tau: float | None = Field(None, gt=0, le=1)
    prior: str | None = None
    prior_returns: dict[str, float] | list[float] | None = None
    prior_weights: dict[str, float] | list[float] | None = None
    posterior_covariance: bool | None = None
    # tail risk (min_cvar, min_cdar): the confidence level of the CVaR / CDaR
    beta: float | None = Field(None, gt=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> StrategyConfig:
        if self.min_weight > self.max_weight:
            raise ValueError(
                f"`min_weight` ({self.min_weight}) must be <= `max_weight` ({self.max_weight})"
            )
        return self

    def params(self) -> dict[str, Any]:
        """Parameters for the strategy constructor: the ones set, minus the constraint bounds."""
        fields = self.model_dump(exclude={"name", "min_weight", "max_weight"}, exclude_none=True)
        if "fallback" in fields:
            fields["fallback"] = tuple(fields["fallback"])
        return fields


class RebalanceConfig(_Section):
    """When to refresh targets and when to trade (see ``backtest.schedule``)."""

    every: str | None = "1W"
    bars: int | None = Field(None, ge=1)
    drift_band: float | None = Field(None, gt=0, lt=1)
    band_mode: Literal["absolute", "relative", "cost"] = "absolute"
    band_target: Literal["full", "edge"] | None = None
    risk_aversion: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> RebalanceConfig:
        self.schedule()  # raises ValueError naming the field
        return self

    def schedule(self) -> Any:
        from backtest.schedule import Schedule

        every = None if self.bars is not None else self.every
        return Schedule(
            every=every,
            bars=self.bars,
            drift_band=self.drift_band,
            band_mode=self.band_mode,
            band_target=self.band_target,
            risk_aversion=self.risk_aversion,
        )


class CostsConfig(_Section):
    """Fees, slippage, impact, order rules and the starting cash."""

    fee_bps: float = Field(10.0, ge=0, lt=10_000)
    slippage_bps: float = Field(5.0, ge=0, lt=10_000)
    impact_coef: float = Field(0.0, ge=0)
    participation: float = Field(0.0, ge=0, le=1)
    min_trade_value: float = Field(0.0, ge=0)
    initial_cash: float = Field(100_000.0, gt=0)
    lot_size: dict[str, float] = Field(default_factory=dict)
    min_notional: dict[str, float] = Field(default_factory=dict)
    sizing: Literal["net", "vectorbt"] = "net"

    def costs(self) -> Any:
        from backtest.costs import Costs

        return Costs(
            fee_bps=self.fee_bps,
            slippage_bps=self.slippage_bps,
            impact_coef=self.impact_coef,
            participation=self.participation,
            min_trade_value=self.min_trade_value,
            lot_size=self.lot_size,
            min_notional=self.min_notional,
            sizing=self.sizing,
        )


class GroupConfig(_Section):
    """A group of symbols whose total weight is kept within ``[min, max]``."""

    symbols: list[str] = Field(min_length=1)
    min: float = Field(0.0, ge=0, le=1)
    max: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> GroupConfig:
        if self.min > self.max:
            raise ValueError(f"`min` ({self.min}) must be <= `max` ({self.max})")
        return self


class ConstraintsConfig(_Section):
    """Limits by symbol, on top of the strategy's ``min_weight`` / ``max_weight``.

    ``groups.NAME = {symbols = [...], min = 0.0, max = 0.2}``; ``bounds = {"BTC/USDT" = [0.1,
    0.5]}``. Every named symbol must be in the data (checked when the run starts)."""

    groups: dict[str, GroupConfig] = Field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @field_validator("bounds")
    @classmethod
    def _check_bounds(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for symbol, (low, high) in value.items():
            if not 0 <= low <= high <= 1:
                raise ValueError(
                    f"bounds for {symbol!r} need 0 <= min <= max <= 1; got [{low:g}, {high:g}]"
                )
        return value

    def spec(self, strategy: StrategyConfig) -> dict[str, Any]:
        """The named constraints of ``strategy`` (:func:`strategies.by_symbol.resolve_constraints`
        resolves them against the market's symbols)."""
        return {
            "min_weight": strategy.min_weight,
            "max_weight": strategy.max_weight,
            "bounds": {s: list(b) for s, b in self.bounds.items()},
            "groups": {name: g.model_dump() for name, g in self.groups.items()},
        }


class RiskConfig(_Section):
    stop_loss: float = Field(0.0, ge=0, lt=1)
    liquidity_cap: float = Field(0.0, ge=0)
    liquidity_window_days: float = Field(30.0, gt=0)


class BacktestConfig(_Section):
    execution: Literal["next_open", "close"] = "next_open"
    benchmark: str = Field(
        "auto",
        description="'auto' (BTC if present, else equal weight), a symbol, 'equal_weight' or 'none'",
    )


class ReportConfig(_Section):
    title: str | None = None
    html: bool = True


class Tolerance(_Section):
    """One tolerance: a value holds when ``|current - baseline| <= abs + rel * |baseline|``.

    A field left unset inherits the table default (``[regress] abs / rel``).
    """

    abs: float | None = None
    rel: float | None = None

    @field_validator("abs", "rel")
    @classmethod
    def _non_negative(cls, value: float | None) -> float | None:
        return _check_tolerance(value)


def _check_tolerance(value: float | None) -> float | None:
    import math

    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError("a tolerance must be a finite number >= 0 (0 demands an exact match)")
    return value


class RegressConfig(_Section):
    """Tolerances of ``backtest regress check`` (see docs/regression.md).

    ``abs`` / ``rel`` apply to every metric unless ``metrics.<name>`` overrides them; ``equity`` applies
    to the sampled equity curve and ``weights`` to the target weights at each rebalance. ``strict``
    also requires the sha256 of the full equity curve and of the weights to match bit for bit.
    """

    abs: float = 1e-9
    rel: float = 1e-6
    metrics: dict[str, Tolerance] = Field(default_factory=dict)
    equity: Tolerance = Field(default_factory=lambda: Tolerance(abs=1e-6, rel=1e-6))
    weights: Tolerance = Field(default_factory=lambda: Tolerance(abs=1e-6, rel=0.0))
    strict: bool = False

    @field_validator("abs", "rel")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        _check_tolerance(value)
        return value

    def tolerance(self, metric: str) -> tuple[float, float]:
        """``(abs, rel)`` for ``metric``: its own entry, else the table defaults."""
        return self._inherit(self.metrics.get(metric, Tolerance()))

    def series_tolerance(self, which: Literal["equity", "weights"]) -> tuple[float, float]:
        """``(abs, rel)`` for the equity samples or the rebalance weights."""
        return self._inherit(self.equity if which == "equity" else self.weights)

    def _inherit(self, own: Tolerance) -> tuple[float, float]:
        return (self.abs if own.abs is None else own.abs, self.rel if own.rel is None else own.rel)


_KEY_LIKE = ("key", "secret", "password", "passphrase", "token")


class LiveConfig(_Section):
    """Live rebalancing (``backtest rebalance``; see docs/live.md).

    API keys never go here: they come from ``EXCHANGE_API_KEY`` / ``EXCHANGE_API_SECRET``.
    The exchange, the universe (``data.symbols``; default: the assets held), the timeframe and the
    Parquet store come from ``[data]``; the allocator from ``[strategy]``; fees and slippage for the
    sizing and the cost estimate from ``[costs]``.
    """

    quote: str = Field(
        "USDT", min_length=2, description="currency the book is valued and traded in"
    )
    dust_threshold: float = Field(
        1.0, ge=0, description="balances worth less (in quote) are ignored"
    )
    min_trade_value: float = Field(
        10.0, ge=0, description="trades below this value (quote) are dropped"
    )
    max_slice_value: float | None = Field(
        None, gt=0, description="split orders into slices of at most this value"
    )
    max_volume_share: float | None = Field(
        None, gt=0, le=1, description="... or of this share of the 24 h quote volume"
    )
    limit_offset_bps: float = Field(
        5.0, ge=0, lt=10_000, description="limit price = last * (1 +/- offset)"
    )
    cash_reserve: float = Field(
        0.0, ge=0, lt=1, description="share of the book kept in the quote currency"
    )
    frontier_points: int = Field(
        20, ge=2, le=500, description="points of the efficient frontier (MPT)"
    )
    sandbox: bool = Field(False, description="use the exchange's test network")
    mode: Literal["live", "paper"] = Field(
        "live", description="'paper': simulated balances and fills, no keys (backtest.live.paper)"
    )
    account: str | None = Field(
        None, description="journal folder name (default '<exchange>-<mode>')"
    )
    fill_share: float | None = Field(
        None, gt=0, le=1, description="paper: at most this share of a bar's volume fills per order"
    )
    poll_seconds: float = Field(
        5.0, description="execution: seconds between two checks of the open orders"
    )
    order_timeout_seconds: float = Field(
        60.0, description="execution: an order open this long is canceled, then repriced"
    )
    max_reprices: int = Field(2, description="execution: replacements at a fresh limit per trade")
    deadline_seconds: float | None = Field(
        None, description="execution: everything open is canceled after this long"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            found = [k for k in data if any(word in str(k).lower() for word in _KEY_LIKE)]
            if found:
                raise ValueError(
                    f"{found[0]}: API keys never go in config files; set EXCHANGE_API_KEY and "
                    "EXCHANGE_API_SECRET in the environment instead"
                )
        return data

    @field_validator("quote")
    @classmethod
    def _quote(cls, value: str) -> str:
        if not value.isalnum():
            raise ValueError(f"`quote` must be a currency code such as 'USDT'; got {value!r}")
        return value.upper()

    @model_validator(mode="after")
    def _execution(self) -> LiveConfig:
        from backtest.live.order_rules import check_execution

        # the execution loop's own rule (a LiveError is a ValueError), in the config's names
        check_execution(
            self.poll_seconds, self.order_timeout_seconds, self.max_reprices, self.deadline_seconds
        )
        return self


_CPCV_DEFAULTS = {"groups": 6, "test_groups": 2, "purge": 0, "embargo": 0}


class SweepConfig(BaseModel):
    """``[sweep]``: grid lists under dotted config paths, plus the validation options (these names).

    ``validation = "cpcv"`` adds combinatorial purged cross-validation (backtest/sweep/cpcv.py) of
    the choice of the best point: ``groups`` contiguous groups of bars, ``test_groups`` of them tested
    per split, ``purge`` bars dropped from training on both sides of a test block and ``embargo``
    more after it (docs/sweeps.md).
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, list[Any]] = Field(init=False)

    validation: Literal["cpcv"] | None = None
    groups: int | None = Field(None, ge=2)
    test_groups: int | None = Field(None, ge=1)
    purge: int | None = Field(None, ge=0)
    embargo: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        from backtest.sweep.cpcv import check_cpcv

        options = {k: getattr(self, k) for k in _CPCV_DEFAULTS if getattr(self, k) is not None}
        if self.validation is None:
            if options:
                raise ValueError(
                    f'`{next(iter(options))}` is a CPCV option; add `validation = "cpcv"` to [sweep]'
                )
            return self
        cfg = self.model_copy(update={**_CPCV_DEFAULTS, **options})
        try:  # the library's rule, in the config's names
            check_cpcv(cfg.groups or 0, cfg.test_groups or 0, cfg.purge or 0, cfg.embargo or 0)
        except ValueError as exc:
            raise ValueError(str(exc).replace("`n_", "`")) from None
        return cfg

    def grid(self) -> dict[str, list[Any]]:
        """The grid lists (every key but the options)."""
        return dict(self.model_extra or {})


class ExperimentConfig(_Section):
    """A whole experiment: one TOML file."""

    name: str = "experiment"
    data: DataConfig = Field(default_factory=DataConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    rebalance: RebalanceConfig = Field(default_factory=RebalanceConfig)
    costs: CostsConfig = Field(default_factory=CostsConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    constraints: ConstraintsConfig = Field(default_factory=ConstraintsConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    compare: list[StrategyConfig] | None = Field(
        None, description="extra strategies for `backtest compare`"
    )
    sweep: SweepConfig | None = None
    regress: RegressConfig = Field(default_factory=RegressConfig)
    live: LiveConfig | None = Field(
        None, description="live rebalancing settings for `backtest rebalance`"
    )

    @model_validator(mode="after")
    def _check_strategy(self) -> ExperimentConfig:
        from strategies.registry import STRATEGIES

        for where, strat in [
            ("strategy", self.strategy),
            *((f"compare.{i}", s) for i, s in enumerate(self.compare or [])),
        ]:
            if strat.name not in STRATEGIES:
                import difflib

                close = difflib.get_close_matches(strat.name, list(STRATEGIES), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(
                    f"{where}.name: unknown strategy '{strat.name}'{hint}; choose one of {sorted(STRATEGIES)}"
                )
        return self

    def resolved(self) -> dict[str, Any]:
        """The config with every default filled in, as plain TOML-able data."""
        return self.model_dump(mode="json", exclude_none=True)


def _location(error: Mapping[str, Any]) -> str:
    return ".".join(
        str(part) for part in error["loc"] if not str(part).startswith("function-after")
    )


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if error["type"] == "extra_forbidden":
        return "unknown key (check the spelling; see examples/ for the allowed keys)"
    if (
        "input" in error
        and error["type"] not in ("missing",)
        and not isinstance(error["input"], dict)
    ):
        return f"{msg}; got {error['input']!r}"
    return msg


def parse_config(data: dict[str, Any]) -> ExperimentConfig:
    """Validate a config dict; raise :class:`ConfigError` listing ``section.key: message`` pairs."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc, msg = _location(err), _message(err)
            if (
                not loc
                and ": " in msg
                and msg.split(": ", 1)[0].replace(".", "").replace("_", "").isalnum()
            ):
                loc, msg = msg.split(": ", 1)
            errors.append((loc, msg))
        raise ConfigError(errors) from None


def load_config(
    path: str | os.PathLike[str], overrides: dict[str, Any] | None = None
) -> ExperimentConfig:
    """Read and validate a TOML experiment config.

    ``overrides`` maps dotted keys (``"strategy.lookback_days"``) to values, applied before validation
    (used by sweeps).

    Examples
    --------
    >>> cfg = load_config("examples/demo.toml")  # doctest: +SKIP
    >>> cfg.strategy.name  # doctest: +SKIP
    'hrp'
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError([("", f"config file not found: {p}")])
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("", f"{p} is not valid TOML: {exc}")]) from None
    return parse_config(apply_overrides(data, overrides or {}))


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``data`` with dotted-key overrides set."""
    import copy

    out = copy.deepcopy(data)
    for key, value in overrides.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError([(key, "cannot override inside a non-table value")])
        node[parts[-1]] = value
    return out
