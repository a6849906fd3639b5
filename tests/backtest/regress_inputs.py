"""Small experiments for the regression-baseline tests (a few hundred bars: each run well under 1 s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SMALL = """name = "{name}"

[data]
source = "synthetic"
n_assets = 5
n_bars = 400
seed = 11

[strategy]
name = "hrp"
lookback_days = 30
max_weight = 0.5

[rebalance]
every = "1W"

[costs]
fee_bps = 10
slippage_bps = 5
min_trade_value = 10

[backtest]
benchmark = "equal_weight"
{extra}"""

CSV = """name = "{name}"

[data]
source = "csv"
path = "{path}"
timeframe = "1d"

[strategy]
name = "hrp"
lookback_days = 30

[rebalance]
every = "1W"

[costs]
fee_bps = 10
slippage_bps = 5
"""


def write_config(folder: Path, name: str = "small", extra: str = "") -> Path:
    """A small synthetic HRP experiment in ``folder/<name>.toml``."""
    path = folder / f"{name}.toml"
    path.write_text(SMALL.format(name=name, extra=extra))
    return path


def write_csv_experiment(folder: Path, name: str = "small-csv") -> tuple[Path, Path]:
    """A CSV market (long format, from the synthetic generator) and a config reading it."""
    from datasets import synthetic_market

    market = synthetic_market(n_assets=4, n_bars=300, seed=3, stagger=False)
    frames = []
    for j, symbol in enumerate(market.symbols):
        cols = {f: market.arrays[f][:, j] for f in ("open", "high", "low", "close", "volume")}
        frames.append(
            pd.DataFrame(
                {"symbol": symbol, "timestamp_ms": market.index.as_unit("ms").asi8, **cols}
            )
        )
    csv = folder / "market.csv"
    pd.concat(frames).to_csv(csv, index=False, float_format="%.17g")
    config = folder / f"{name}.toml"
    config.write_text(CSV.format(name=name, path=csv.as_posix()))
    return config, csv


def change_one_candle(csv: Path, symbol: str, row: int) -> None:
    """Move one close half-way to its high (the candle stays valid)."""
    frame = pd.read_csv(csv)
    idx = np.flatnonzero(frame["symbol"].to_numpy() == symbol)[row]
    frame.loc[idx, "close"] = (frame.loc[idx, "close"] + frame.loc[idx, "high"]) / 2
    frame.to_csv(csv, index=False, float_format="%.17g")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def record_folder(folder: Path, *, with_csv: bool) -> Path:
    """Write the small config (and the CSV experiment) into ``folder`` and record ``folder/base``."""
    from backtest.cli import main

    configs = [write_config(folder)] + ([write_csv_experiment(folder)[0]] if with_csv else [])
    assert main(["regress", "record", *map(str, configs), "--baseline", str(folder / "base")]) == 0
    return folder


def fresh_copy(src: Path, tmp_path: Path) -> Path:
    """A private copy of a recorded folder (configs, data and baselines keep their relative layout)."""
    import shutil

    return Path(shutil.copytree(src, tmp_path / "w"))
