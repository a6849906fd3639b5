"""The whole pipeline on resampled markets: how much of a result is the path the market took.

Every sample is a stationary block bootstrap of the experiment's market
(:mod:`backtest.robustness.resample`); on it the whole walk-forward runs again (estimation windows,
the allocator's decisions, the rebalancing with costs), for the experiment's strategy and, with
``compare``, its ``[[compare]]`` strategies on the same resampled paths. Sample ``i`` draws from
``SeedSequence([seed, i])``, so a table depends on the seed alone, not on the route (this process,
worker processes or a Dask cluster) nor on the order samples finish in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtest.config import ExperimentConfig, StrategyConfig
from backtest.robustness.resample import (
    SourcePools,
    available_returns,
    bootstrap_sources,
    market_block_length,
    resample_market,
)
from datasets import MarketData

log = logging.getLogger(__name__)

#: The metrics kept per sample (``BacktestResult.metrics()`` keys).
METRICS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "turnover",
    "cost_drag_bps",
    "total_costs",
)
#: The figures whose intervals the report leads with.
HEADLINE: tuple[str, ...] = ("sharpe", "cagr", "max_drawdown", "cost_drag_bps")
#: Quantiles of the equity fan chart.
FAN_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class Bootstrap:
    """What :func:`bootstrap` found.

    Attributes
    ----------
    table : DataFrame
        One row per (sample, strategy): ``sample``, ``strategy`` and :data:`METRICS`.
    point : DataFrame
        The same metrics on the data itself, one row per strategy (index: strategy).
    fan : DataFrame
        Quantiles (columns, :data:`FAN_QUANTILES`) of the first strategy's equity across samples
        at each bar (index: the market's timestamps), from its first decision.
    result : BacktestResult
        The first strategy's backtest on the data itself (the point estimates).
    block_length : float
        The mean block length used.
    seed : int
    meta : dict
        ``synthetic``, ``data_source``, ``symbols``, ``start``, ``end``, ``experiment``.
    """

    table: pd.DataFrame
    point: pd.DataFrame
    fan: pd.DataFrame
    result: Any
    block_length: float
    seed: int
    meta: dict[str, Any]

    @property
    def equity(self) -> pd.Series:
        """The first strategy's equity on the data itself."""
        return self.result.equity

    @property
    def strategies(self) -> list[str]:
        return list(self.point.index)

    def intervals(self, level: float = 0.9) -> pd.DataFrame:
        """Per strategy and metric: the point estimate and the central ``level`` interval of the
        samples (percentile interval), rows ``(strategy, metric)``."""
        if not 0 < level < 1:
            raise ValueError(f"`level` must be in (0, 1); got {level}")
        tail = (1.0 - level) / 2.0
        point = self.point.to_dict("index")
        rows = []
        for name, group in self.table.groupby("strategy", sort=False):
            for metric in METRICS:
                values = group[metric].to_numpy(dtype=float)
                values = values[np.isfinite(values)]
                low, high = (
                    np.quantile(values, [tail, 1.0 - tail]) if values.size else (np.nan, np.nan)
                )
                rows.append(
                    {
                        "strategy": name,
                        "metric": metric,
                        "point": float(point[name][metric]),
                        "low": float(low),
                        "median": float(np.median(values)) if values.size else np.nan,
                        "high": float(high),
                        "level": level,
                    }
                )
        return pd.DataFrame(rows).set_index(["strategy", "metric"])

    def beats(self, metric: str = "sharpe") -> pd.DataFrame:
        """``P(row beats column)``: the share of samples in which the row strategy's ``metric`` is
        higher than the column strategy's on the same resampled path (ties count half)."""
        wide = self.table.pivot(index="sample", columns="strategy", values=metric)[self.strategies]
        values = wide.to_numpy(dtype=float)
        names = self.strategies
        out = np.full((len(names), len(names)), np.nan)
        for i in range(len(names)):
            for j in range(len(names)):
                if i != j:
                    a, b = values[:, i], values[:, j]
                    ok = np.isfinite(a) & np.isfinite(b)
                    out[i, j] = float(np.mean((a[ok] > b[ok]) + 0.5 * (a[ok] == b[ok])))
        return pd.DataFrame(out, index=names, columns=names)


@dataclass(frozen=True)
class _Job:
    """What every sample needs (sent once per worker)."""

    cfg: ExperimentConfig
    market: MarketData
    strategies: tuple[StrategyConfig, ...]
    first: int
    block_length: float
    seed: int


def _strategy_label(scfg: StrategyConfig, taken: Sequence[str]) -> str:
    name, k = scfg.name, 2
    while name in taken:
        name, k = f"{scfg.name}#{k}", k + 1
    return name


def _run_one(job: _Job, market: MarketData) -> list[Any]:
    """Each strategy's backtest result on ``market``."""
    from backtest.experiment import run_experiment

    return [
        run_experiment(job.cfg, market, strategy_cfg=scfg, first_decision=job.first)
        for scfg in job.strategies
    ]


def _kept(result: Any) -> tuple[dict[str, float], np.ndarray]:
    metrics = result.metrics()
    return {k: float(metrics.get(k, np.nan)) for k in METRICS}, result.equity.to_numpy(dtype=float)


def run_samples(job: _Job, samples: Sequence[int]) -> list[tuple[int, list[Any]]]:
    """Run the samples ``samples`` of ``job``: per sample its metrics and equity per strategy."""
    pools = SourcePools(available_returns(job.market))
    out = []
    for i in samples:
        rng = np.random.default_rng(np.random.SeedSequence([job.seed, int(i)]))
        sources = bootstrap_sources(pools, job.block_length, rng)
        market = resample_market(job.market, sources, f"sample {i}, seed {job.seed}")
        out.append((int(i), [_kept(r) for r in _run_one(job, market)]))
    return out


_WORKER_JOB: list[_Job] = []


def _init_worker(job: _Job) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_JOB[:] = [job]


def _worker(samples: Sequence[int]) -> list[tuple[int, list[Any]]]:
    return run_samples(_WORKER_JOB[0], samples)


def _chunks(n: int, size: int) -> list[list[int]]:
    return [list(range(k, min(n, k + size))) for k in range(0, n, size)]


def _dispatch(
    job: _Job,
    n_samples: int,
    jobs: int,
    scheduler: str | None,
    progress: Callable[[int, int], None] | None,
) -> list[tuple[int, list[Any]]]:
    from backtest.sweep.routes import choose_route

    route = choose_route(scheduler, jobs, n_samples)
    size = max(1, min(25, n_samples // max(1, 4 * jobs)))
    chunks = _chunks(n_samples, size)
    done: list[tuple[int, list[Any]]] = []

    def collect(part: list[tuple[int, list[Any]]]) -> None:
        done.extend(part)
        if progress is not None:
            progress(len(done), n_samples)

    if route == "serial":
        for chunk in chunks:
            collect(run_samples(job, chunk))
    elif route == "processes":
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=mp.get_context(method),
            initializer=_init_worker,
            initargs=(job,),
        ) as pool:
            futures = [pool.submit(_worker, chunk) for chunk in chunks]
            try:
                for future in as_completed(futures):
                    collect(future.result())
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    else:
        collect_dask(job, chunks, scheduler or "local", jobs, collect)
    return sorted(done, key=lambda item: item[0])


def collect_dask(
    job: _Job,
    chunks: list[list[int]],
    scheduler: str,
    jobs: int,
    collect: Callable[[list[tuple[int, list[Any]]]], None],
) -> None:
    """Run the chunks on a Dask cluster (``"local"``: a local cluster of ``jobs`` workers)."""
    import functools

    from dask.distributed import as_completed

    from backtest.sweep.routes import dask_client

    with dask_client(scheduler, jobs, functools.partial(run_samples, job, [0])) as client:
        remote = client.scatter(job, broadcast=True)
        # pure=False: a unique key per submission (two bootstraps never share a result)
        futures = [client.submit(run_samples, remote, chunk, pure=False) for chunk in chunks]
        try:
            for future in as_completed(futures):
                collect(future.result())
        except BaseException:
            client.cancel(futures)
            raise


def bootstrap(
    cfg: ExperimentConfig,
    samples: int = 200,
    seed: int = 0,
    *,
    block_length: float | None = None,
    compare: bool = False,
    market: MarketData | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Bootstrap:
    """Rerun the experiment ``cfg`` on ``samples`` stationary block bootstraps of its market.

    Parameters
    ----------
    cfg : ExperimentConfig
    samples : int
        Number of resampled markets (each runs the whole walk-forward).
    seed : int
        Seed of the draws: the same seed gives the same table.
    block_length : float, optional
        Mean block length in bars (>= 1); chosen by
        :func:`~backtest.robustness.resample.market_block_length` when not given.
    compare : bool
        Also run the config's ``[[compare]]`` strategies on the same resampled paths.
    market : MarketData, optional
        The market (loaded from ``cfg`` when not given).
    jobs, scheduler
        Worker processes, or a Dask scheduler (``"local"`` or an address), as for sweeps.
    progress : callable, optional
        Called with ``(done, total)`` samples.

    Returns
    -------
    Bootstrap

    Examples
    --------
    >>> from backtest.config import parse_config
    >>> cfg = parse_config({"data": {"source": "synthetic", "n_assets": 4, "n_bars": 300},
    ...                     "strategy": {"name": "equal_weight", "lookback_days": 20},
    ...                     "rebalance": {"every": "1M"}})
    >>> boot = bootstrap(cfg, samples=5, seed=1)
    >>> boot.table.shape[0], float(boot.intervals().loc[("equal_weight", "sharpe"), "level"])
    (5, 0.9)
    """
    from backtest.experiment import common_start, load_market

    if not (isinstance(samples, int | np.integer) and samples >= 1):
        raise ValueError(f"`samples` must be an integer >= 1; got {samples!r}")
    if block_length is not None and not block_length >= 1:
        raise ValueError(
            f"`block_length` must be >= 1 bar (1: no blocks, i.i.d. bars); got {block_length}"
        )
    market = market if market is not None else load_market(cfg)
    strategies = (cfg.strategy, *(cfg.compare or [])) if compare else (cfg.strategy,)
    if compare and len(strategies) < 2:
        raise ValueError(
            "`compare` needs [[compare]] strategies in the config to compare the strategy with"
        )
    first = common_start(cfg, market, list(strategies))
    length = float(block_length) if block_length is not None else market_block_length(market)
    labels: list[str] = []
    for scfg in strategies:
        labels.append(_strategy_label(scfg, labels))
    job = _Job(cfg, market, tuple(strategies), first, length, int(seed))
    actual = _run_one(job, market)
    point = {label: _kept(r)[0] for label, r in zip(labels, actual, strict=True)}
    log.info("bootstrap: %d samples, mean block length %.2f bars", samples, length)
    done = _dispatch(job, int(samples), jobs, scheduler, progress)
    rows = []
    paths = []
    for i, per_strategy in done:
        for label, (metrics, _) in zip(labels, per_strategy, strict=True):
            rows.append({"sample": i, "strategy": label, **metrics})
        paths.append(per_strategy[0][1])
    table = pd.DataFrame(rows, columns=["sample", "strategy", *METRICS])
    table["sample"] = table["sample"].astype(np.int64)
    stacked = np.vstack(paths)
    stacked = stacked / stacked[:, :1]
    fan = pd.DataFrame(
        np.quantile(stacked, FAN_QUANTILES, axis=0).T * cfg.costs.initial_cash,
        index=actual[0].equity.index,
        columns=list(FAN_QUANTILES),
    )
    return Bootstrap(
        table=table,
        point=pd.DataFrame.from_dict(point, orient="index")[list(METRICS)],
        fan=fan,
        result=actual[0],
        block_length=length,
        seed=int(seed),
        meta={
            "experiment": cfg.name,
            "synthetic": bool(market.synthetic),
            "data_source": market.source,
            "symbols": list(market.symbols),
            "start": str(market.index[first]),
            "end": str(market.index[-1]),
        },
    )
