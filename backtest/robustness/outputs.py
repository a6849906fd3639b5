"""What ``backtest robustness`` writes: the per-sample table, the intervals, the fan, the page, and
the first strategy's own backtest whose tearsheet shows the intervals; and how a tearsheet finds
them again (:func:`read_intervals`)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.robustness.run import HEADLINE, Bootstrap

INTERVALS = "intervals.csv"
FAN = "fan.parquet"
#: What the intervals belong to: the sha256 of the point run's equity curve.
STAMP = "bootstrap.json"

log = logging.getLogger(__name__)


def equity_stamp(equity: pd.Series) -> str:
    """The sha256 of an equity curve's values (which backtest a bootstrap's intervals are of)."""
    return hashlib.sha256(
        np.ascontiguousarray(equity.to_numpy(dtype=np.float64)).tobytes()
    ).hexdigest()


def write_bootstrap(
    boot: Bootstrap, out: Path, *, cfg: Any = None, level: float = 0.9, title: str | None = None
) -> dict[str, Path]:
    """Write to ``out``: ``bootstrap.parquet`` (one row per sample and strategy; the same seed
    writes the same bytes), ``intervals.csv`` (point, low, median, high per strategy and metric),
    ``fan.parquet`` (the first strategy's equity quantiles per bar), ``beats.csv`` (with several
    strategies), ``robustness.html`` and, given the experiment's ``cfg``, the first strategy's
    backtest outputs with its tearsheet (``report.html``: the intervals beside the metrics, the fan
    under the equity)."""
    from reports.robustness import write_robustness_report

    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "bootstrap.parquet", "intervals": out / INTERVALS, "fan": out / FAN}
    boot.table.to_parquet(paths["table"], index=False)
    stamp = {"equity_sha256": equity_stamp(boot.equity), "seed": boot.seed, "level": level}
    (out / STAMP).write_text(json.dumps({**stamp, "block_length": boot.block_length}, indent=2))
    intervals = boot.intervals(level)
    intervals.to_csv(paths["intervals"])
    fan = boot.fan.copy()
    fan.columns = [f"{q:g}" for q in boot.fan.columns]
    fan.to_parquet(paths["fan"])
    beats = boot.beats() if len(boot.strategies) > 1 else None
    if beats is not None:
        paths["beats"] = out / "beats.csv"
        beats.to_csv(paths["beats"])
    meta = boot.meta
    label = "SYNTHETIC data" if meta["synthetic"] else str(meta["data_source"])
    paths["html"] = write_robustness_report(
        out,
        boot.table,
        boot.point,
        intervals,
        fan=boot.fan,
        equity=boot.equity,
        beats=beats,
        metrics=HEADLINE,
        meta={
            "title": title or f"{meta['experiment']}: robustness",
            "subtitle": (
                f"{', '.join(boot.strategies)} on {len(meta['symbols'])} assets, "
                f"{meta['start'][:10]} to {meta['end'][:10]} ({label})"
            ),
            "synthetic": meta["synthetic"],
            "block_length": boot.block_length,
            "seed": boot.seed,
        },
    )
    if cfg is not None:
        from backtest.experiment import write_outputs

        paths["report"] = write_outputs(boot.result, cfg, out)["report"]
    return paths


def read_intervals(
    folder: Path, equity: pd.Series
) -> tuple[dict[str, tuple[float, float]], float, pd.DataFrame] | None:
    """The bootstrap intervals of the first strategy (metric -> ``(low, high)``), their level and
    the equity fan that ``backtest robustness`` wrote to ``folder``, when they are of the backtest
    whose curve is ``equity``; None when the folder holds none (or another backtest's: a note in
    the log)."""
    if not all((folder / name).is_file() for name in (INTERVALS, FAN, STAMP)):
        return None
    stamp = json.loads((folder / STAMP).read_text()).get("equity_sha256")
    if stamp != equity_stamp(equity):
        log.warning(
            "%s: bootstrap intervals of another backtest, left out of the tearsheet", folder
        )
        return None
    table = pd.read_csv(folder / INTERVALS)
    first = table[table["strategy"] == table["strategy"].iloc[0]]
    bounds = {
        str(r["metric"]): (float(r["low"]), float(r["high"])) for r in first.to_dict("records")
    }
    fan = pd.read_parquet(folder / FAN)
    fan.columns = [float(c) for c in fan.columns]
    return bounds, float(first["level"].iloc[0]), fan
