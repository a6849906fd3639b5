"""Engine benchmarks (issues 5 and 16): the kernel alone, the whole job (``run_backtest`` end to end
against vectorbt, the kernel alone, and the allocator calls + the kernel), the full walk-forward,
the CLI process, memory.

Each job first checks that ours and the peer give the same answer on the same input, then times
both in this process (warm-up, median of repeats) and prints ``job | ours | peer | ratio``.
Data: the real Binance candles of ../shared/data (hourly for the kernel, daily for the walk-forward).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt_seconds, median_ratio, median_time, paired_times, row, shared_file
from peers import peer_walk_forward, pypfopt_hrp, skfolio_hrp

from backtest import (
    Costs,
    kernels,
    run_backtest,
)
from backtest.costs import RiskControls
from backtest.records import COST_DTYPE, TRADE_DTYPE, SimulationBuffers
from backtest.schedule import Schedule
from backtest.simulate import (
    Orders,
    check_orders,
    prepare_market,
    simulate_scenario,
    simulation_params,
)
from datasets import load_csv

ROOT = Path(__file__).resolve().parents[1]
HOURLY_20 = [
    "BTC/USDT",
    "ETH/USDT",
    "BNB/USDT",
    "XRP/USDT",
    "ADA/USDT",
    "LTC/USDT",
    "EOS/USDT",
    "ETC/USDT",
    "TRX/USDT",
    "XLM/USDT",
    "VET/USDT",
    "LINK/USDT",
    "XMR/USDT",
    "ATOM/USDT",
    "MATIC/USDT",
    "ALGO/USDT",
    "DOGE/USDT",
    "BCH/USDT",
    "SOL/USDT",
    "DOT/USDT",
]
DAILY_20 = [*HOURLY_20[:18], "ZEC/USDT", "THETA/USDT"]


def vectorbt_peer(market, targets: np.ndarray):
    """vectorbt ``from_orders`` on the same target weights (10 bps fee, 5 bps slippage, hourly)."""
    import vectorbt as vbt

    close_df = market.close
    size = pd.DataFrame(targets, index=close_df.index, columns=close_df.columns).where(
        close_df.notna()
    )

    def peer():
        return vbt.Portfolio.from_orders(
            close_df,
            size=size,
            size_type="targetpercent",
            fees=0.001,
            slippage=0.0005,
            init_cash=1e5,
            cash_sharing=True,
            group_by=True,
            call_seq="auto",
            freq="1h",
        )

    return peer


def kernel_job() -> list[dict]:
    market = load_csv(shared_file("binance_spot_usdt_1h.csv.gz"), symbols=HOURLY_20)
    market = market.between(market.index[-35_000], None)
    close = market.values("close")
    n_bars, n = close.shape
    targets = np.full((n_bars, n), np.nan)
    daily = np.arange(23, n_bars, 24)
    listed = np.isfinite(close[daily])
    targets[daily] = np.where(listed, 1.0, 0.0) / np.maximum(listed.sum(axis=1, keepdims=True), 1)
    costs = Costs(fee_bps=10, slippage_bps=5, sizing="vectorbt")
    risk = RiskControls()
    arrays = prepare_market(market.arrays, market.symbols, 24.0, costs, risk, "close")
    sched = Schedule(every="1D")

    orders = Orders(daily, targets[daily])

    def ours():
        return simulate_scenario(
            arrays,
            orders,
            costs=costs,
            risk=risk,
            schedule=sched,
            initial_cash=1e5,
            execution="close",
        )

    peer = vectorbt_peer(market, targets)

    ours_eq = ours().equity
    peer_eq = peer().value().to_numpy()
    np.testing.assert_allclose(ours_eq, peer_eq, rtol=1e-9)
    filled = pd.DataFrame(close).ffill().bfill().to_numpy()
    ftargets = np.where(np.isfinite(targets), targets, np.nan)

    def floor():
        return kernels.fees_slippage_floor_nb(filled, filled, ftargets, 1e5, 0.001, 0.0005)

    # the kernel call itself, outputs preallocated (as the floor's are by its own loop)
    _, order_row = check_orders(orders, close.shape)
    params = simulation_params(
        costs=costs, risk=risk, schedule=sched, initial_cash=1e5, execution="close"
    )
    out = SimulationBuffers(
        equity=np.empty(n_bars),
        cash=np.empty(n_bars),
        units=np.empty((1, n)),
        traded=np.empty(n_bars),
        trades=np.empty(daily.size * n + n, dtype=TRADE_DTYPE),
        totals=np.zeros(1, dtype=COST_DTYPE),
    )

    def kernel_call():
        out.totals[:] = 0
        return kernels.simulate_core_nb(arrays, orders.weights, order_row, params, out)

    kernel_call()
    np.testing.assert_allclose(out.equity, peer_eq, rtol=1e-9)
    t_ours = median_time(ours, repeats=21)
    t_kernel = median_time(kernel_call, repeats=21)
    t_peer = median_time(peer, repeats=5)
    t_floor = median_time(floor, repeats=21)
    return [
        row(
            f"simulate_scenario(), {n} assets x {n_bars} hourly bars, daily rebalance (validation, outputs, ledger)",
            t_ours,
            "vectorbt from_orders",
            t_peer,
            target=">= 50x, < 3 ms",
        ),
        row(
            "kernel call (simulate_core_nb) vs bare numba fees+slippage loop",
            t_kernel,
            "numba floor",
            t_floor,
            ratio=t_kernel / t_floor,
            target="<= 3x (ratio = ours / floor)",
        ),
        row(
            "simulate_scenario() wrapper vs bare numba loop",
            t_ours,
            "numba floor",
            t_floor,
            ratio=t_ours / t_floor,
            target="reported (ratio = ours / floor)",
        ),
    ]


def walk_forward_jobs() -> list[dict]:
    from strategies import HRPStrategy, MPTStrategy

    market = load_csv(shared_file("binance_spot_usdt_1d.csv.gz"), symbols=DAILY_20)
    costs = Costs(fee_bps=10, slippage_bps=5, sizing="vectorbt")
    out = []

    def ours(strategy, every, constraints=None):
        return run_backtest(
            market,
            strategy,
            every,
            costs,
            execution="close",
            benchmark=None,
            constraints=constraints,
        )

    hrp = HRPStrategy(lookback_days=90, linkage="single")
    res = ours(hrp, "1M")
    bars = np.flatnonzero(market.index.isin(res.target_weights.index))

    lookback = int(res.meta["lookback_bars"])

    def peer(allocate):
        return peer_walk_forward(market, bars, lookback, allocate, 0.001, 0.0005, 1e5).to_numpy()

    ours_eq = res.equity.to_numpy()
    np.testing.assert_allclose(ours_eq, peer(pypfopt_hrp), rtol=1e-9)
    np.testing.assert_allclose(ours_eq, peer(skfolio_hrp), rtol=1e-9)
    t_ours = median_time(lambda: ours(hrp, "1M"), repeats=9)
    t_sk = median_time(lambda: peer(skfolio_hrp), repeats=3)
    t_pp = median_time(lambda: peer(pypfopt_hrp), repeats=3)
    label = f"walk-forward, {market.n_assets} assets x {market.n_bars} daily bars, 90d lookback, monthly HRP"
    out.append(row(label, t_ours, "skfolio HRP + vectorbt", t_sk, target=">= 20x, < 50 ms"))
    out.append(row(label, t_ours, "PyPortfolioOpt HRPOpt + vectorbt", t_pp, target=">= 100x"))
    bounds = {"min_weight": 0.0, "max_weight": 0.3}
    for name, strategy in [
        ("weekly HRP", hrp),
        ("weekly max Sharpe (max 30%)", MPTStrategy(lookback_days=90)),
    ]:
        t = median_time(lambda s=strategy: ours(s, "1W", bounds), repeats=5)
        out.append(row(f"walk-forward, {name}", t, "-", None, target="reported"))
    return out


def _kernel_call(market, decisions, costs, risk, schedule, execution="close"):
    """The kernel alone on the decisions' orders: ``simulate_core_nb`` with preallocated outputs
    (as ``kernel_job`` times it, and as the whole job calls it: the ledger, no per-bar units), and
    its equity for the parity check."""
    from backtest.pipeline import decision_orders, market_arrays

    n_bars, n = market.n_bars, market.n_assets
    orders, order_row = check_orders(decision_orders(decisions, n_bars, execution), (n_bars, n))
    arrays = market_arrays(market, costs, risk, execution)
    params = simulation_params(
        costs=costs, risk=risk, schedule=schedule, initial_cash=1e5, execution=execution
    )
    out = SimulationBuffers(
        equity=np.empty(n_bars),
        cash=np.empty(n_bars),
        units=np.empty((1, n)),
        traded=np.empty(n_bars),
        trades=np.empty(orders.rows.size * n + n, dtype=TRADE_DTYPE),
        totals=np.zeros(1, dtype=COST_DTYPE),
    )

    def call():
        out.totals[:] = 0
        return kernels.simulate_core_nb(arrays, orders.weights, order_row, params, out)

    call()
    targets = np.full((n_bars, n), np.nan)
    targets[orders.rows] = orders.weights
    return call, out.equity.copy(), targets


def _whole_job(market, strategy, sched, costs, risk):
    """The whole job to time (``run_backtest`` + metrics), its result, the decisions it made, and
    the kernel alone on the same targets (checked equal to the whole job's equity)."""
    from backtest.pipeline import decide, decision_bars, prepare

    def ours():
        result = run_backtest(
            market, strategy, sched, costs, execution="close", benchmark=None, initial_cash=1e5
        )
        result.metrics()
        return result

    result = ours()
    prepared = prepare(market, strategy)
    decisions = decide(prepared, decision_bars(prepared, sched))
    kernel, kernel_eq, targets = _kernel_call(market, decisions, costs, risk, sched)
    start = int(decisions.bars[0])
    np.testing.assert_allclose(result.equity.to_numpy(), kernel_eq[start:], rtol=1e-12)
    return ours, result, prepared, decisions, kernel, targets


def whole_job_hourly() -> list[dict]:
    """``run_backtest`` end to end (metrics read), 20 assets x 35,000 hourly bars, equal weight,
    daily rebalance, against vectorbt given the same target weights (its whole job:
    ``from_orders`` and its metrics summary ``stats()``; and ``from_orders`` alone) and against
    the kernel alone. Ours and the kernel are timed in paired rounds (the ratio is the median of
    the per-round ratios)."""
    from strategies import EqualWeight

    market = load_csv(shared_file("binance_spot_usdt_1h.csv.gz"), symbols=HOURLY_20)
    market = market.between(market.index[-35_000], None)
    costs = Costs(fee_bps=10, slippage_bps=5, sizing="vectorbt")
    risk, sched = RiskControls(), Schedule(every="1D")
    strategy = EqualWeight(lookback_days=30)

    ours, result, _, decisions, kernel, targets = _whole_job(market, strategy, sched, costs, risk)
    peer = vectorbt_peer(market, targets)
    start = int(decisions.bars[0])
    pf = peer()
    np.testing.assert_allclose(result.equity.to_numpy(), pf.value().to_numpy()[start:], rtol=1e-9)

    def peer_job():
        return peer().stats(silence_warnings=True)

    stats = peer_job()
    ours_m = result.metrics()
    # the same book, so the same drawdown (vectorbt's curve starts at the first bar, ours at the
    # first decision: before it both hold cash, so the drawdown is the same)
    assert abs(stats["Max Drawdown [%]"] / -100 - ours_m["max_drawdown"]) < 1e-9
    t_ours, t_kernel = paired_times([ours, kernel], repeats=41)
    t_peer = median_time(peer_job, repeats=3)
    t_orders = median_time(peer, repeats=5)
    mid = statistics.median(t_ours)
    label = (
        f"whole job: run_backtest + metrics, {market.n_assets} assets x {market.n_bars} hourly bars, "
        f"equal weight, daily rebalance ({decisions.bars.size} decisions)"
    )
    return [
        row(label, mid, "vectorbt from_orders + stats(), same targets", t_peer, target=">= 50x"),
        row(label, mid, "vectorbt from_orders alone, same targets", t_orders, target="reported"),
        row(
            label,
            mid,
            "kernel alone (simulate_core_nb)",
            statistics.median(t_kernel),
            ratio=median_ratio(t_ours, t_kernel),
            target="<= 3x (ratio = ours / kernel, median of paired rounds)",
        ),
    ]


def whole_job_daily() -> list[dict]:
    """``run_backtest`` end to end (metrics read), 20 assets x ~2,000 daily bars, monthly HRP and
    weekly max Sharpe, against the sum of the allocator calls plus the kernel, timed in paired
    rounds in this run."""
    from strategies import HRPStrategy, MPTStrategy, universe_limits

    market = load_csv(shared_file("binance_spot_usdt_1d.csv.gz"), symbols=DAILY_20)
    costs = Costs(fee_bps=10, slippage_bps=5, sizing="vectorbt")
    risk = RiskControls()
    out = []
    for strategy, every in [
        (HRPStrategy(lookback_days=90), "1M"),
        (MPTStrategy(lookback_days=90), "1W"),
    ]:
        sched = Schedule(every=every)
        ours, _, prepared, decisions, kernel, _ = _whole_job(market, strategy, sched, costs, risk)
        # the allocator calls alone, on windows and limits prepared outside the timing
        calls = []
        L = prepared.lookback
        for k, t in enumerate(decisions.bars):
            members = np.flatnonzero(decisions.universe[k])
            if not members.size:  # all cash: no allocator call
                continue
            window = np.ascontiguousarray(prepared.panel.returns[t - L : t][:, members])
            limits = universe_limits(prepared.constraints, members, market.n_assets)
            previous = decisions.weights[k - 1, members] if k else np.zeros(members.size)
            calls.append((window, limits.constraints, previous))
        allocator = prepared.strategy

        def floor(allocator=allocator, calls=calls, kernel=kernel):
            for window, constraints, previous in calls:
                allocator.allocate_array(window, constraints, previous)
            kernel()

        t_ours, t_floor = paired_times([ours, floor], repeats=21)
        t_kernel = median_time(kernel, repeats=21)
        f_mid = statistics.median(t_floor)
        out.append(
            row(
                f"whole job: run_backtest + metrics, {market.n_assets} assets x {market.n_bars} "
                f"daily bars, {every} {strategy.name} ({decisions.bars.size} decisions)",
                statistics.median(t_ours),
                f"allocator calls {fmt_seconds(f_mid - t_kernel)} + kernel {fmt_seconds(t_kernel)}",
                f_mid,
                ratio=median_ratio(t_ours, t_floor),
                target="<= 1.5x (ratio = ours / (allocator calls + kernel), median of paired rounds)",
            )
        )
    return out


def _process_seconds(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def cli_jobs() -> list[dict]:
    exe = str(Path(sys.executable).with_name("backtest"))
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba"))
        cmd = [exe, "run", "examples/demo.toml", "--out", str(Path(tmp) / "out")]
        cold = _process_seconds(cmd, env)
        warm = min(_process_seconds(cmd, env) for _ in range(3))
        peer_env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba-vbt"))
        code = (
            "import numpy as np, pandas as pd, vectorbt as vbt; c = pd.DataFrame(np.random.rand(50, 3) + 1); "
            "vbt.Portfolio.from_orders(c, size=0.3, size_type='targetpercent', cash_sharing=True, "
            "group_by=True, call_seq='auto').value()"
        )
        peer = _process_seconds([sys.executable, "-c", code], peer_env)
    return [
        row(
            "`backtest run examples/demo.toml`, empty numba cache",
            cold,
            "vectorbt first simulation, empty cache",
            peer,
            target="< 10 s",
        ),
        row("`backtest run examples/demo.toml`, warm cache", warm, "-", None, target="< 3 s"),
    ]


def memory_job() -> list[dict]:
    """Peak RSS of a 50 x 50,000 backtest in a fresh process, with warm numba caches (a cold run
    also holds LLVM's compiler memory; it is reported too)."""
    code = (
        "from datasets import synthetic_market\n"
        "from strategies import InverseVolatility\n"
        "from backtest import run_backtest, Costs\n"
        "m = synthetic_market(n_assets=50, n_bars=50_000, timeframe='1h', seed=3)\n"
        "r = run_backtest(m, InverseVolatility(lookback_days=30), '1D', Costs(min_trade_value=10))\n"
        "r.metrics()\n"
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child of a big parent
        # would report the parent's size
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    )

    def peak(env: dict[str, str]) -> tuple[float, float]:
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
        )
        return int(out.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=tmp)
        cold_mb, _ = peak(env)
        warm_mb, seconds = peak(env)
    return [
        row(
            f"50 assets x 50,000 hourly bars, daily IV: peak memory {warm_mb:.0f} MB",
            seconds,
            "-",
            None,
            target="< 1 GB",
            note=f"(peak RSS {warm_mb:.0f} MB warm; {cold_mb:.0f} MB when the kernels compile first)",
        )
    ]


def padded_daily_market(n_assets: int = 500, n_bars: int = 3650) -> Any:
    """Real daily returns padded to ``n_assets`` x ``n_bars`` (10 years of daily bars by default).

    Column ``k`` takes the daily close-to-close returns of pair ``k % P`` of the Binance daily file
    (the ``P`` pairs with at least a year of closes), its listed history repeated end to end and
    started ``37 * (k // P)`` bars later for each further copy, so copies of a pair are not the
    same series. Prices are ``100 * cumprod(1 + r)``; open is the previous close, high / low the
    larger / smaller of open and close, volume a constant 10 million quote units a day.
    """
    from datasets import MarketData

    source = load_csv(shared_file("binance_spot_usdt_1d.csv.gz"))
    close = source.values("close")
    pairs = [j for j in range(source.n_assets) if np.isfinite(close[:, j]).sum() > 365]
    returns = np.empty((n_bars, n_assets))
    for k in range(n_assets):
        c = close[:, pairs[k % len(pairs)]]
        c = c[np.isfinite(c)]
        r = c[1:] / c[:-1] - 1.0
        returns[:, k] = np.resize(np.roll(r, -((37 * (k // len(pairs))) % len(r))), n_bars)
    prices = 100.0 * np.cumprod(1.0 + returns, axis=0)
    opens = np.vstack([np.full((1, n_assets), 100.0), prices[:-1]])
    return MarketData(
        index=pd.date_range("2015-01-01", periods=n_bars, freq="D", tz="UTC"),
        symbols=tuple(f"P{k:03d}/USDT" for k in range(n_assets)),
        timeframe="1d",
        arrays={
            "open": opens,
            "high": np.maximum(opens, prices),
            "low": np.minimum(opens, prices),
            "close": prices,
            "volume": 1e7 / prices,
        },
        source=f"padded real daily returns ({len(pairs)} Binance pairs)",
    )


def peak_rss_mb(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Peak RSS (VmHWM, MB) and wall time of ``python -c code`` (the code prints VmHWM last)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT, env=env
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - t0


def memory_daily_job() -> list[dict]:
    """Peak RSS of 500 assets x 10 years of daily bars (real returns, padded), weekly inverse
    volatility, metrics read, in a fresh process with warm numba caches (the method of
    :func:`memory_job`)."""
    code = (
        "import sys\n"
        "sys.path.insert(0, 'benchmarks')\n"
        "from bench_engine import padded_daily_market\n"
        "from strategies import InverseVolatility\n"
        "from backtest import run_backtest, Costs\n"
        "m = padded_daily_market(500, 3650)\n"
        "r = run_backtest(m, InverseVolatility(lookback_days=90), '1W', Costs(min_trade_value=10))\n"
        "r.metrics()\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=tmp)
        cold_mb, _ = peak_rss_mb(code, env)
        warm_mb, seconds = peak_rss_mb(code, env)
    return [
        row(
            f"500 assets x 3,650 daily bars (real returns, padded), weekly IV: peak memory "
            f"{warm_mb:.0f} MB",
            seconds,
            "-",
            None,
            target="< 1 GB",
            note=f"(peak RSS {warm_mb:.0f} MB warm; {cold_mb:.0f} MB when the kernels compile first)",
        )
    ]


def main() -> list[dict]:
    rows = kernel_job()
    rows += whole_job_hourly()
    rows += whole_job_daily()
    rows += walk_forward_jobs()
    rows += cli_jobs()
    rows += memory_job()
    rows += memory_daily_job()
    return rows


if __name__ == "__main__":
    main()
