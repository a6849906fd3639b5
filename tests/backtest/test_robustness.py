"""The stationary block bootstrap of a market and the whole pipeline rerun on it.

The kernels are checked against their NumPy twins, the block length against ``arch``, the resampling
against the analytic interval of a mean, and the whole run for determinism by seed (across routes)
and, on the real daily data, for an interval that holds the point estimate.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtest.cli import main
from backtest.config import parse_config
from backtest.robustness import (
    SourcePools,
    bootstrap,
    bootstrap_sources,
    optimal_block_length,
    resample_market,
)
from backtest.robustness.outputs import write_bootstrap
from backtest.robustness.resample import available_returns
from datasets import MarketData, synthetic_market


# ------------------------------------------------------------------------------- NumPy twins
def sources_twin(available: np.ndarray, stay: float, u_stay, u_pick) -> np.ndarray:
    """Source bars drawn from the definition: eligible = every asset with a return at ``t`` has one
    at the source; continue the block when ``u_stay < stay`` and the next bar is eligible."""
    n = available.shape[0]
    src = np.empty(n, dtype=np.int64)
    for t in range(n):
        eligible = np.flatnonzero(np.all(available[:, available[t]], axis=1))
        nxt = src[t - 1] + 1 if t > 0 else n
        if t > 0 and u_stay[t] < stay and nxt < n and nxt in set(eligible.tolist()):
            src[t] = nxt
        else:
            src[t] = eligible[min(int(u_pick[t] * len(eligible)), len(eligible) - 1)]
    return src


def prices_twin(market: MarketData, src: np.ndarray) -> dict[str, np.ndarray]:
    """The path's prices column by column: compound the source returns where the data has a return,
    carry the data's move across a gap, start at the first real price."""
    a = market.arrays
    out = {k: np.full_like(a["close"], np.nan) for k in ("open", "high", "low", "close", "volume")}
    close = a["close"]
    for j in range(close.shape[1]):
        last = None
        for t in range(close.shape[0]):
            if np.isnan(close[t, j]):
                continue
            if last == t - 1:
                s = src[t]
                out["close"][t, j] = out["close"][t - 1, j] * close[s, j] / close[s - 1, j]
            else:
                s = t
                prev = (
                    out["close"][last, j] * close[t, j] / close[last, j]
                    if last is not None
                    else None
                )
                out["close"][t, j] = close[t, j] if prev is None else prev
            scale = out["close"][t, j] / close[s, j]
            for k in ("open", "high", "low"):
                out[k][t, j] = a[k][s, j] * scale
            out["volume"][t, j] = a["volume"][s, j] / scale
            last = t
    return out


@pytest.fixture(scope="module")
def ragged() -> MarketData:
    """A synthetic market with late listings and a gap in one asset."""
    market = synthetic_market(n_assets=6, n_bars=400, seed=3)
    arrays = {k: v.copy() for k, v in market.arrays.items()}
    for k in arrays:
        arrays[k][150:153, 0] = np.nan  # an outage
    from dataclasses import replace

    return replace(market, arrays=arrays)


def test_source_draws_equal_their_twin(ragged):
    available = available_returns(ragged)
    pools = SourcePools(available)
    rng = np.random.default_rng(5)
    for block in (1.0, 4.0, 30.0):
        u_stay, u_pick = rng.random(len(available)), rng.random(len(available))
        from backtest.robustness.resample import stationary_sources_nb

        got = stationary_sources_nb(
            pools.pattern_of,
            pools.offsets,
            pools.bars,
            pools.eligible,
            1 - 1 / block,
            u_stay,
            u_pick,
        )
        np.testing.assert_array_equal(got, sources_twin(available, 1 - 1 / block, u_stay, u_pick))
        for t, s in enumerate(got):  # every asset with a return at t has one at its source
            assert available[s, available[t]].all()


def test_prices_equal_their_twin_and_keep_the_listing_pattern(ragged):
    pools = SourcePools(available_returns(ragged))
    src = bootstrap_sources(pools, 5.0, np.random.default_rng(2))
    sample = resample_market(ragged, src, "test")
    want = prices_twin(ragged, src)
    for k, v in want.items():
        np.testing.assert_allclose(sample.arrays[k], v, rtol=1e-13, equal_nan=True)
    np.testing.assert_array_equal(
        np.isnan(sample.arrays["close"]), np.isnan(ragged.arrays["close"])
    )
    first = np.isfinite(ragged.arrays["close"]).argmax(axis=0)
    cols = np.arange(ragged.n_assets)
    np.testing.assert_array_equal(
        sample.arrays["close"][first, cols], ragged.arrays["close"][first, cols]
    )
    returns = sample.arrays["close"][1:] / sample.arrays["close"][:-1] - 1
    data = ragged.arrays["close"][1:] / ragged.arrays["close"][:-1] - 1
    has = np.isfinite(data)  # where the data has a return, the path has its source's
    drawn = (ragged.arrays["close"][src] / ragged.arrays["close"][src - 1] - 1)[1:]
    assert np.isfinite(drawn[has]).all()
    np.testing.assert_allclose(returns[has], drawn[has], rtol=1e-12, atol=1e-15)
    assert (
        sample.source.startswith("bootstrap:") and "stationary block bootstrap" in sample.notes[-1]
    )


def test_block_length_one_gives_the_analytic_interval_of_the_mean():
    """I.i.d. returns, blocks of one bar: the bootstrap's 90% interval of the mean return equals
    mean +- 1.645 s / sqrt(n) (the percentile interval of the i.i.d. bootstrap) to within its
    Monte Carlo error."""
    rng = np.random.default_rng(11)
    n_bars = 801
    returns = rng.normal(0.001, 0.02, size=(n_bars - 1, 2))
    close = 100 * np.vstack([np.ones(2), np.cumprod(1 + returns, axis=0)])
    index = pd.date_range("2020-01-01", periods=n_bars, freq="D", tz="UTC")
    market = MarketData(
        index,
        ("A/USDT", "B/USDT"),
        "1d",
        {"open": close, "high": close, "low": close, "close": close, "volume": np.ones_like(close)},
    )
    pools = SourcePools(available_returns(market))
    draws = np.random.default_rng(12)
    means = []
    for _ in range(4000):
        sample = resample_market(market, bootstrap_sources(pools, 1.0, draws))
        c = sample.arrays["close"][:, 0]
        means.append(np.mean(c[1:] / c[:-1] - 1))
    low, high = np.quantile(means, [0.05, 0.95])
    x = returns[:, 0]
    half = 1.6448536269514722 * x.std(ddof=0) / math.sqrt(len(x))
    assert np.mean(means) == pytest.approx(x.mean(), abs=0.05 * half)
    assert low == pytest.approx(x.mean() - half, abs=0.08 * half)
    assert high == pytest.approx(x.mean() + half, abs=0.08 * half)


def test_block_length_equals_arch():
    arch = pytest.importorskip("arch.bootstrap")
    rng = np.random.default_rng(0)
    e = rng.normal(size=3000)
    ar = np.empty(3000)
    ar[0] = e[0]
    for t in range(1, 3000):
        ar[t] = 0.6 * ar[t - 1] + e[t]
    for x in (e, ar, ar**2, np.abs(rng.standard_t(3, size=500))):
        want = float(arch.optimal_block_length(x)["stationary"].iloc[0])
        assert optimal_block_length(x) == pytest.approx(want, rel=1e-12)


def test_block_length_errors():
    with pytest.raises(ValueError, match=r"`x` needs at least 8 observations .* got 3"):
        optimal_block_length(np.ones(3))


# --------------------------------------------------------------------------------- the whole run
CONFIG = {
    "name": "boot",
    "data": {"source": "synthetic", "n_assets": 5, "n_bars": 500, "seed": 4},
    "strategy": {"name": "hrp", "lookback_days": 60},
    "rebalance": {"every": "1M"},
    "compare": [{"name": "equal_weight", "lookback_days": 60}],
}


def test_same_seed_same_bytes_on_every_route(tmp_path):
    cfg = parse_config(CONFIG)
    one = bootstrap(cfg, 12, seed=3, compare=True)
    again = bootstrap(cfg, 12, seed=3, compare=True, jobs=2)
    other = bootstrap(cfg, 12, seed=4, compare=True)
    write_bootstrap(one, tmp_path / "a")
    write_bootstrap(again, tmp_path / "b")
    write_bootstrap(other, tmp_path / "c")
    a, b, c = ((tmp_path / d / "bootstrap.parquet").read_bytes() for d in "abc")
    assert a == b and a != c
    assert one.table.shape == (24, 12)
    assert list(one.table["sample"].unique()) == list(range(12))
    beats = one.beats()
    assert beats.loc["hrp", "equal_weight"] + beats.loc["equal_weight", "hrp"] == pytest.approx(1.0)


def test_intervals_and_fan(tmp_path):
    boot = bootstrap(parse_config(CONFIG), 30, seed=1, block_length=5)
    iv = boot.intervals(0.8)
    row = iv.loc[("hrp", "sharpe")]
    assert row["low"] <= row["median"] <= row["high"] and row["level"] == 0.8
    assert list(boot.fan.columns) == [0.05, 0.25, 0.5, 0.75, 0.95]
    fan = boot.fan.dropna().to_numpy()
    assert np.all(np.diff(fan, axis=1) >= 0)  # quantiles ordered at every bar
    paths = write_bootstrap(boot, tmp_path)
    html = paths["html"].read_text()
    assert "interval-table" in html and "resampled paths" in html and "SYNTHETIC" in html


def test_bad_arguments_are_named():
    cfg = parse_config(CONFIG)
    with pytest.raises(ValueError, match=r"`samples` must be an integer >= 1; got 0"):
        bootstrap(cfg, 0)
    with pytest.raises(ValueError, match=r"`block_length` must be >= 1 bar .* got 0.5"):
        bootstrap(cfg, 2, block_length=0.5)
    with pytest.raises(ValueError, match=r"`compare` needs \[\[compare\]\] strategies"):
        bootstrap(
            parse_config({k: v for k, v in CONFIG.items() if k != "compare"}), 2, compare=True
        )
    with pytest.raises(ValueError, match=r"`level` must be in \(0, 1\); got 1.5"):
        bootstrap(cfg, 2).intervals(1.5)


def test_cli_writes_the_table_and_the_page(tmp_path, capsys):
    path = tmp_path / "boot.toml"
    path.write_text(
        'name = "boot"\n[data]\nsource = "synthetic"\nn_assets = 5\nn_bars = 500\n'
        '[strategy]\nname = "hrp"\nlookback_days = 60\n[rebalance]\nevery = "1M"\n'
        '[[compare]]\nname = "equal_weight"\nlookback_days = 60\n'
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "robustness",
                str(path),
                "--samples",
                "8",
                "--seed",
                "2",
                "--compare",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "90% intervals, 8 paths" in text and "P(hrp beats equal_weight on Sharpe)" in text
    for name in (
        "bootstrap.parquet",
        "intervals.csv",
        "fan.parquet",
        "beats.csv",
        "robustness.html",
    ):
        assert (out / name).exists()
    assert main(["robustness", str(path), "--samples", "8", "--level", "2"]) == 2
    assert "`--level` must be in (0, 1), e.g. 0.9; got 2.0" in capsys.readouterr().err


@pytest.mark.shared
@pytest.mark.slow
def test_real_daily_sharpe_interval_holds_the_point(daily_csv):
    """12 real pairs, 3.5 years, monthly HRP: the 90% interval of the Sharpe ratio across 100
    resampled walk-forwards contains the backtest's own Sharpe ratio."""
    cfg = parse_config(
        {
            "data": {
                "source": "csv",
                "path": str(daily_csv),
                "symbols": ["BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT", "LTC/USDT",
                            "LINK/USDT", "TRX/USDT", "XLM/USDT", "ETC/USDT", "EOS/USDT", "VET/USDT"],
                "start": "2019-07-01",
                "end": "2022-12-31",
            },
            "strategy": {"name": "hrp", "lookback_days": 90},
            "rebalance": {"every": "1M"},
        }
    )  # fmt: skip
    boot = bootstrap(cfg, 100, seed=0)
    row = boot.intervals(0.9).loc[("hrp", "sharpe")]
    assert row["low"] < row["point"] < row["high"], row
    assert 1 <= boot.block_length <= 3 * math.sqrt(1300)


def test_a_dask_cluster_gives_the_serial_table():
    pytest.importorskip("distributed")
    cfg = parse_config(CONFIG)
    serial = bootstrap(cfg, 6, seed=9)
    on_dask = bootstrap(cfg, 6, seed=9, scheduler="local", jobs=2)
    pd.testing.assert_frame_equal(serial.table, on_dask.table)


def test_bad_sources_are_refused(ragged):
    n = ragged.n_bars
    with pytest.raises(ValueError, match=r"`sources` must be one integer bar per bar"):
        resample_market(ragged, np.zeros(n))
    with pytest.raises(ValueError, match=r"`sources` must be bars in \[0, 400\)"):
        resample_market(ragged, np.full(n, n, dtype=np.int64))
    late = int(np.isfinite(ragged.arrays["close"]).all(axis=1).argmax()) + 5  # all assets trade
    sources = np.arange(n, dtype=np.int64)
    sources[late] = 1  # bar 1: the late listings have no return there
    with pytest.raises(ValueError, match=rf"`sources` bar 1 is not eligible for bar {late}"):
        resample_market(ragged, sources)


def test_a_tearsheet_shows_only_its_own_intervals(tmp_path):
    """The intervals of a bootstrap reach the tearsheet of the same backtest, not another's."""
    from backtest.robustness.outputs import read_intervals

    cfg = parse_config(CONFIG)
    boot = bootstrap(cfg, 4, seed=1)
    write_bootstrap(boot, tmp_path, cfg=cfg)
    bounds, level, fan = read_intervals(tmp_path, boot.equity)
    assert level == 0.9 and set(bounds) >= {"sharpe", "cagr"} and len(fan) == len(boot.fan)
    assert "90% interval" in (tmp_path / "report.html").read_text()
    assert read_intervals(tmp_path, boot.equity * 1.01) is None
