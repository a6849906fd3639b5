"""Golden baselines for CI regression on returns: record a backtest, rerun it later, compare.

A baseline is one JSON file per experiment (``<experiment name>.json``), written with sorted keys,
two-space indentation, one line per equity sample and per rebalance, and floats rounded to 12
significant digits (weights to 1e-10), so that a rerun on the same machine writes the same bytes and
a change reads well in ``git diff``. It holds:

- ``metrics``: every metric of :func:`reports.metrics.compute_metrics`;
- ``equity``: ~50 sampled values of the equity curve and the sha256 of its full float64 bytes;
- ``weights``: the target weights at each rebalance (one row per decision bar) and their sha256;
- ``data``: :meth:`datasets.MarketData.fingerprint` plus one short hash per symbol and field, so a
  changed candle is named (``ETH/USDT: close``);
- ``config``: the resolved experiment config, and ``config_path`` relative to the baseline folder;
- ``versions``: the project and numeric libraries (informational, never compared).

:func:`check` reruns each experiment and compares with the tolerances of the config's ``[regress]``
table (:class:`backtest.config.RegressConfig`). Exit codes of :attr:`CheckReport.exit_code`: 0 every
value holds, 1 a regression, 2 the input data changed (not comparable). Bad input (a missing or corrupt
baseline, a baseline whose config is gone or defines another experiment, a negative tolerance) raises
:class:`backtest.errors.RegressionError` or :class:`backtest.errors.ConfigError` (both ``ValueError``).

See docs/regression.md for the CLI (``backtest regress record|check``) and the pytest fixture.

The baseline format lives in :mod:`backtest.regress.baseline`, the comparison in
:mod:`backtest.regress.comparison` and its rendering in :mod:`backtest.regress.display`; the package
:mod:`backtest.regress` exports the public names of all four.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backtest.errors import RegressionError
from backtest.regress.baseline import (
    baseline_filename,
    build_record,
    dumps,
    load_baseline,
    write_baseline,
)
from backtest.regress.comparison import (
    Comparison,
    compare,
)

if TYPE_CHECKING:
    from backtest.config import ExperimentConfig

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ runs
@dataclass(frozen=True)
class Target:
    """One experiment to check: its config, where it came from, and its baseline (None: none yet)."""

    cfg: ExperimentConfig
    config_path: Path
    baseline_path: Path
    baseline: dict[str, Any] | None


def compute_records(
    items: Sequence[tuple[ExperimentConfig, Path]], baseline_dir: Path, jobs: int = 1
) -> list[dict[str, Any]]:
    """Run each ``(config, config_path)`` and return the records in input order.

    ``jobs > 1`` uses a process pool; the numba kernels are compiled in this process first (several
    processes writing numba's cache at once can crash, numba issue 4807). The records do not depend on
    ``jobs``.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"`jobs` must be an integer >= 1; got {jobs!r}")
    if jobs == 1 or len(items) < 2:
        return [build_record(cfg, path, baseline_dir) for cfg, path in items]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    warm_kernels([cfg for cfg, _ in items])
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(items)), mp_context=multiprocessing.get_context(method)
    ) as pool:
        return list(pool.map(_record_job, [(cfg, path, baseline_dir) for cfg, path in items]))


def _record_job(args: tuple[ExperimentConfig, Path, Path]) -> dict[str, Any]:
    return build_record(*args)


def warm_kernels(cfgs: Sequence[ExperimentConfig]) -> None:
    """Compile the kernels each distinct strategy/cost setup needs, on a short slice of its data.

    Best effort: a failure is logged and left for the real run to report.
    """
    from backtest.experiment import load_market, run_experiment, strategy_from_config
    from backtest.pipeline import prepare

    seen: set[str] = set()
    for cfg in cfgs:
        setup = {
            k: v
            for k, v in cfg.resolved().items()
            if k not in ("data", "name", "report", "regress")
        }
        key = json.dumps(setup, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            market = load_market(cfg)
            strategy = strategy_from_config(cfg.strategy, market.periods_per_year)
            n = 2 * prepare(market, strategy).lookback + 64
            run_experiment(cfg, market.between(None, market.index[min(n, market.n_bars) - 1]))
        except Exception as exc:  # the real run reports it properly
            log.warning("warming the kernels for %r failed: %s", cfg.name, exc)


def record(configs: Sequence[str | Path], baseline_dir: str | Path, *, jobs: int = 1) -> list[Path]:
    """Run each config and write ``<baseline_dir>/<experiment>.json``; returns the paths written.

    Examples
    --------
    >>> record(["examples/demo.toml"], "tests/baselines")  # doctest: +SKIP
    [PosixPath('tests/baselines/demo.json')]
    """
    from backtest.config import load_config

    if not configs:
        raise RegressionError("`configs` must name at least one experiment config (TOML)")
    out = Path(baseline_dir)
    if out.exists() and not out.is_dir():
        raise RegressionError(f"`--baseline` must be a directory; got the file {out}")
    items = [(load_config(c), Path(c)) for c in configs]
    _check_unique([cfg for cfg, _ in items])
    records = compute_records(items, out, jobs)
    return [write_baseline(out / baseline_filename(r["experiment"]), r) for r in records]


def _check_unique(cfgs: Sequence[ExperimentConfig]) -> None:
    names = [baseline_filename(c.name) for c in cfgs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RegressionError(
            f"two configs share the baseline file name(s) {dup}; give each experiment its own `name`"
        )


def collect_targets(
    baseline_dir: str | Path, configs: Sequence[str | Path] | None = None, *, update: bool = False
) -> list[Target]:
    """The experiments to check: the given ``configs``, or every baseline in ``baseline_dir``.

    Raises :class:`RegressionError` for a missing folder or file, a corrupt baseline, or a baseline
    whose config file is gone or now defines another experiment (with ``update`` and explicit
    ``configs``, a missing or corrupt baseline is simply (re)recorded).
    """
    from backtest.config import load_config

    folder = Path(baseline_dir)
    if not folder.is_dir() and not (update and configs):
        what = "is not a directory" if folder.exists() else "not found"
        raise RegressionError(
            f"baseline directory {what}: {folder} (record baselines first: "
            f"`backtest regress record CONFIG --baseline {folder}`)"
        )
    targets = []
    if configs:
        for c in configs:
            cfg = load_config(c)
            path = folder / baseline_filename(cfg.name)
            try:
                baseline = load_baseline(path)
            except RegressionError:
                if not update:
                    raise
                baseline = None
            targets.append(Target(cfg, Path(c), path, baseline))
        _check_unique([t.cfg for t in targets])
    else:
        files = sorted(folder.glob("*.json"))
        if not files:
            raise RegressionError(
                f"no baselines (*.json) in {folder}; record them with "
                f"`backtest regress record CONFIG --baseline {folder}`"
            )
        for path in files:
            baseline = load_baseline(path)
            config_path = Path(os.path.normpath(path.parent / baseline["config_path"]))
            if not config_path.is_file():
                raise RegressionError(
                    f"baseline {path} comes from an unknown config: {config_path} does not exist "
                    f"(restore it, or re-record with `backtest regress record CONFIG --baseline {folder}`)"
                )
            targets.append(Target(load_config(config_path), config_path, path, baseline))
    for t in targets:
        if t.baseline is not None and t.baseline["experiment"] != t.cfg.name:
            raise RegressionError(
                f"baseline {t.baseline_path} comes from an unknown config: it was recorded for experiment "
                f"'{t.baseline['experiment']}' but {t.config_path} defines '{t.cfg.name}' (re-record it)"
            )
        _check_tolerance_names(t)
    return targets


def _check_tolerance_names(target: Target) -> None:
    from reports.metrics import METRICS

    known = set(METRICS) | set((target.baseline or {}).get("metrics", {}))
    for name in target.cfg.regress.metrics:
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {sorted(known)}"
            raise RegressionError(
                f"{target.config_path}: regress.metrics.{name}: unknown metric ({hint})"
            )


# ------------------------------------------------------------------------------------------ check
@dataclass
class CheckReport:
    """All comparisons of one ``check`` and the baselines it rewrote (``update=True``)."""

    comparisons: list[Comparison]
    updated: list[Path]
    update: bool

    @property
    def exit_code(self) -> int:
        """0 all hold (or updated), 1 a regression, 2 the input data of an experiment changed."""
        if self.update:
            return 0
        return max((c.exit_code for c in self.comparisons), default=0)


def check(
    baseline_dir: str | Path,
    configs: Sequence[str | Path] | None = None,
    *,
    update: bool = False,
    jobs: int = 1,
) -> CheckReport:
    """Rerun the experiments of ``baseline_dir`` (or ``configs``) and compare with their baselines.

    With ``update`` the baselines whose content changed (or that are missing, for explicit
    ``configs``) are rewritten and the exit code is 0.

    Examples
    --------
    >>> report = check("tests/baselines", ["examples/demo.toml"])  # doctest: +SKIP
    >>> report.exit_code  # doctest: +SKIP
    0
    """
    targets = collect_targets(baseline_dir, configs, update=update)
    records = compute_records([(t.cfg, t.config_path) for t in targets], Path(baseline_dir), jobs)
    comparisons = [
        compare(t.baseline, rec, t.cfg.regress, t.baseline_path)
        if t.baseline is not None
        else Comparison(t.cfg.name, t.baseline_path, "ok", [], ["no baseline yet: recorded"], rec)
        for t, rec in zip(targets, records, strict=True)
    ]
    updated = []
    if update:
        for t, comp in zip(targets, comparisons, strict=True):
            if t.baseline is None or _comparable(t.baseline) != _comparable(comp.record):
                updated.append(write_baseline(comp.baseline_path, comp.record))
    return CheckReport(comparisons, updated, update)


def _comparable(record: dict[str, Any]) -> str:
    return dumps({k: v for k, v in record.items() if k != "versions"})
