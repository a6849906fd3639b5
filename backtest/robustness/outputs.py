"""What ``backtest robustness`` writes: the per-sample table, the intervals, the fan and the page."""

from __future__ import annotations

from pathlib import Path

from backtest.robustness.run import HEADLINE, Bootstrap


def write_bootstrap(
    boot: Bootstrap, out: Path, *, level: float = 0.9, title: str | None = None
) -> dict[str, Path]:
    """Write to ``out``: ``bootstrap.parquet`` (one row per sample and strategy; the same seed
    writes the same bytes), ``intervals.csv`` (point, low, median, high per strategy and metric),
    ``fan.parquet`` (the first strategy's equity quantiles per bar), ``beats.csv`` (with several
    strategies) and ``robustness.html``."""
    from reports.robustness import write_robustness_report

    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "table": out / "bootstrap.parquet",
        "intervals": out / "intervals.csv",
        "fan": out / "fan.parquet",
    }
    boot.table.to_parquet(paths["table"], index=False)
    intervals = boot.intervals(level)
    intervals.to_csv(paths["intervals"])
    fan = boot.fan.copy()
    fan.columns = [f"q{100 * q:g}" for q in boot.fan.columns]
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
    return paths
