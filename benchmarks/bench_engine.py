"""Engine benchmarks (issue 5): the kernel alone, the full walk-forward, the CLI process, memory.

Each job first checks that ours and the peer give the same answer on the same input, then times
both in this process (warm-up, median of repeats) and prints ``job | ours | peer | ratio``.
Data: the real Binance candles of ../shared/data (hourly for the kernel, daily for the walk-forward).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, row, shared_file
from peers import peer_walk_forward, pypfopt_hrp, skfolio_hrp

from backtest import (
    Costs,
    kernels,
    run_backtest,
)
from backtest.costs import RiskControls
from backtest.records import COST_DTYPE, TRADE_DTYPE, SimulationBuffers
from backtest.schedule import Schedule
from backtest.simulate import check_targets, prepare_market, simulate_scenario, simulation_params
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

    def ours():
        return simulate_scenario(
            arrays,
            targets,
            costs=costs,
            risk=risk,
            schedule=sched,
            initial_cash=1e5,
            execution="close",
            order_rows=daily,
        )

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

    ours_eq = ours().equity
    peer_eq = peer().value().to_numpy()
    np.testing.assert_allclose(ours_eq, peer_eq, rtol=1e-9)
    filled = pd.DataFrame(close).ffill().bfill().to_numpy()
    ftargets = np.where(np.isfinite(targets), targets, np.nan)

    def floor():
        return kernels.fees_slippage_floor_nb(filled, filled, ftargets, 1e5, 0.001, 0.0005)

    # the kernel call itself, outputs preallocated (as the floor's are by its own loop)
    _, order_row = check_targets(targets, close.shape, daily)
    params = simulation_params(
        costs=costs, risk=risk, schedule=sched, initial_cash=1e5, execution="close"
    )
    out = SimulationBuffers(
        equity=np.empty(n_bars),
        cash=np.empty(n_bars),
        units=np.empty(close.shape),
        traded=np.empty(n_bars),
        trades=np.empty(daily.size * n + n, dtype=TRADE_DTYPE),
        totals=np.zeros(1, dtype=COST_DTYPE),
    )

    def kernel_call():
        out.totals[:] = 0
        return kernels.simulate_core_nb(arrays, targets, order_row, params, out)

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


def main() -> list[dict]:
    rows = kernel_job()
    rows += walk_forward_jobs()
    rows += cli_jobs()
    rows += memory_job()
    return rows


if __name__ == "__main__":
    main()
