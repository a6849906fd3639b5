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
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from backtest.errors import RegressionError

if TYPE_CHECKING:
    import pandas as pd

    from backtest.config import ExperimentConfig, RegressConfig
    from datasets import MarketData

log = logging.getLogger(__name__)

FORMAT = "alphapulse-regress/1"
N_SAMPLES = 50
SIG_DIGITS = 12
WEIGHT_DECIMALS = 10
_REQUIRED = ("experiment", "config_path", "config", "data", "metrics", "equity", "weights")
_LIBRARIES = ("numpy", "pandas", "scipy", "numba", "llvmlite", "pyarrow", "pydantic")

Status = Literal["ok", "regression", "data_changed"]


# ------------------------------------------------------------------------------------------ record
def baseline_filename(experiment: str) -> str:
    """``"binance-daily-mpt"`` -> ``"binance-daily-mpt.json"`` (other characters become ``_``)."""
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment).strip(".")
    return f"{slug or 'experiment'}.json"


def build_record(
    cfg: ExperimentConfig, config_path: str | Path, baseline_dir: str | Path
) -> dict[str, Any]:
    """Run the experiment ``cfg`` describes and return its baseline record (a JSON-able dict).

    ``config_path`` is stored relative to ``baseline_dir`` so the check works from any directory.
    """
    from backtest.experiment import load_market, run_experiment

    market = load_market(cfg)
    result = run_experiment(cfg, market)
    return {
        "format": FORMAT,
        "experiment": cfg.name,
        "config_path": Path(
            os.path.relpath(Path(config_path).resolve(), Path(baseline_dir).resolve())
        ).as_posix(),
        "config": cfg.resolved(),
        "data": data_fingerprint(market),
        "metrics": {name: _num(value) for name, value in result.metrics().items()},
        "equity": equity_fingerprint(result.equity),
        "weights": rebalance_weights(result.target_weights),
        "versions": library_versions(),
    }


def data_fingerprint(market: MarketData) -> dict[str, Any]:
    """Content hash of the panel, plus a 16-hex-digit hash per symbol and field (``data.fields`` order)."""
    import numpy as np

    from datasets.panel import FIELDS

    index_ms = np.ascontiguousarray(market.index.as_unit("ms").asi8, dtype="<i8")
    per_symbol = {
        symbol: [
            _sha(np.ascontiguousarray(market.arrays[name][:, j], dtype="<f8"))[:16]
            for name in FIELDS
        ]
        for j, symbol in enumerate(market.symbols)
    }
    return {
        "fingerprint": market.fingerprint(),
        "source": market.source,
        "synthetic": bool(market.synthetic),
        "timeframe": market.timeframe,
        "n_bars": int(market.n_bars),
        "start": _iso(market.index[0]),
        "end": _iso(market.index[-1]),
        "index_sha256": _sha(index_ms),
        "fields": list(FIELDS),
        "symbols": per_symbol,
    }


def equity_fingerprint(equity: pd.Series, n_samples: int = N_SAMPLES) -> dict[str, Any]:
    """``n_samples`` evenly spaced ``[time, value]`` pairs (first and last included) and the sha256
    of the float64 bytes of the whole curve.

    Parameters
    ----------
    equity : Series of shape (n_bars,)
        Portfolio value per bar (UTC DatetimeIndex).
    """
    import numpy as np

    values = np.ascontiguousarray(equity.to_numpy(dtype=np.float64), dtype="<f8")
    n = len(values)
    pos = np.unique(np.linspace(0, n - 1, min(n, n_samples)).round().astype(np.int64))
    return {
        "n_bars": n,
        "start": _iso(equity.index[0]) if n else None,
        "end": _iso(equity.index[-1]) if n else None,
        "sha256": _sha(values),
        "samples": [[_iso(equity.index[i]), _num(values[i])] for i in pos],
    }


def rebalance_weights(target_weights: pd.DataFrame) -> dict[str, Any]:
    """Target weights per decision bar, rounded to ``WEIGHT_DECIMALS``, and the sha256 of the full
    float64 matrix of shape (n_rebalances, n_assets)."""
    import numpy as np

    values = np.ascontiguousarray(target_weights.to_numpy(dtype=np.float64), dtype="<f8")
    return {
        "symbols": [str(s) for s in target_weights.columns],
        "decimals": WEIGHT_DECIMALS,
        "n_rebalances": len(values),
        "sha256": _sha(values),
        "rows": {
            _iso(t): [_num(w, decimals=WEIGHT_DECIMALS) for w in row]
            for t, row in zip(target_weights.index, values, strict=True)
        },
    }


def library_versions() -> dict[str, str]:
    """Versions of the project, Python and the numeric libraries (informational)."""
    import platform
    from importlib import metadata

    from backtest import __version__

    out = {"alphapulse-backtest": __version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def dumps(record: dict[str, Any]) -> str:
    """The baseline's JSON text: sorted keys, indent 2, lists of scalars on one line, newline at the end."""
    return _dump(record, 0) + "\n"


def _dump(obj: Any, level: int) -> str:
    pad, end = "  " * (level + 1), "  " * level
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [
            f"{pad}{json.dumps(str(k))}: {_dump(obj[k], level + 1)}" for k in sorted(obj, key=str)
        ]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in obj):
        return "[\n" + ",\n".join(pad + _dump(v, level + 1) for v in obj) + "\n" + end + "]"
    return json.dumps(list(obj) if isinstance(obj, tuple) else obj, allow_nan=False)


def _num(value: Any, decimals: int | None = None) -> float | str | None:
    """A stable JSON number: 12 significant digits (or ``decimals``); NaN -> null; inf -> "inf"."""
    x = float(value)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    x = round(x, decimals) if decimals is not None else float(f"{x:.{SIG_DIGITS}g}")
    return x + 0.0  # no -0.0


def _sha(array: Any) -> str:
    return hashlib.sha256(array.tobytes()).hexdigest()


def _iso(ts: Any) -> str:
    return ts.isoformat()


def _short(iso: str) -> str:
    """``2021-03-04T00:00:00+00:00`` -> ``2021-03-04``; other times keep their clock (UTC)."""
    return iso[:10] if iso.endswith("T00:00:00+00:00") else iso.replace("+00:00", "")


# ------------------------------------------------------------------------------------------ files
def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check one baseline file; :class:`RegressionError` when missing or corrupt."""
    p = Path(path)
    fix = f"record it with `backtest regress record CONFIG --baseline {p.parent}`"
    if not p.is_file():
        raise RegressionError(f"baseline file not found: {p} ({fix})")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegressionError(f"baseline {p} is corrupt (not JSON: {exc}); re-{fix}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise RegressionError(
            f"baseline {p} is corrupt: `format` must be {FORMAT!r}; got {got!r} (re-{fix})"
        )
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise RegressionError(f"baseline {p} is corrupt: it lacks {missing} (re-{fix})")
    return data


def write_baseline(path: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dumps(record), encoding="utf-8")
    os.replace(tmp, path)
    return path


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
    from backtest.engine import lookback_bars
    from backtest.experiment import build_strategy, load_market, run_experiment

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
            n = (
                2 * lookback_bars(build_strategy(cfg.strategy, market.periods_per_year), market)
                + 64
            )
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
@dataclass(frozen=True)
class Change:
    """One value that differs from its baseline. ``tolerance`` is ``(abs, rel)``; None when the item
    is informational (a config key) or has no tolerance (a structural change)."""

    section: Literal["config", "metric", "equity", "weights", "checksum"]
    item: str
    baseline: Any
    current: Any
    tolerance: tuple[float, float] | None
    failed: bool
    detail: str = ""

    @property
    def abs_diff(self) -> float | None:
        if (
            isinstance(self.baseline, (int, float))
            and isinstance(self.current, (int, float))
            and not isinstance(self.baseline, bool)
            and not isinstance(self.current, bool)
        ):
            return float(self.current) - float(self.baseline)
        return None

    @property
    def rel_diff(self) -> float | None:
        d = self.abs_diff
        return None if d is None or self.baseline == 0 else d / abs(float(self.baseline))


@dataclass
class Comparison:
    """The outcome for one experiment."""

    experiment: str
    baseline_path: Path
    status: Status
    changes: list[Change]
    notes: list[str]
    record: dict[str, Any]
    compared: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "regression": 1, "data_changed": 2}[self.status]

    @property
    def failures(self) -> list[Change]:
        return [c for c in self.changes if c.failed]


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


def compare(
    baseline: dict[str, Any],
    current: dict[str, Any],
    tol: RegressConfig,
    baseline_path: str | Path = "",
) -> Comparison:
    """Compare a fresh record with its baseline under the tolerances ``tol``."""
    name = current["experiment"]
    changes = config_changes(baseline["config"], current["config"])
    notes: list[str] = []
    if baseline["data"].get("fingerprint") != current["data"]["fingerprint"]:
        notes.append(
            f"input data changed: {'; '.join(data_changes(baseline['data'], current['data']))}"
        )
        return Comparison(name, Path(baseline_path), "data_changed", changes, notes, current)
    changes += _metric_changes(baseline["metrics"], current["metrics"], tol, notes)
    changes += _equity_changes(
        baseline["equity"], current["equity"], tol.series_tolerance("equity")
    )
    changes += _weight_changes(
        baseline["weights"], current["weights"], tol.series_tolerance("weights")
    )
    for section in ("equity", "weights"):
        if baseline[section].get("sha256") != current[section]["sha256"]:
            if tol.strict:
                old, new = baseline[section].get("sha256", "")[:12], current[section]["sha256"][:12]
                changes += _structural("checksum", f"{section} sha256", old, new, "strict = true")
            else:
                notes.append(
                    f"{section}: not bit-identical to the baseline (sha256 differs; compared with tolerances)"
                )
    status: Status = "regression" if any(c.failed for c in changes) else "ok"
    compared = {
        "metrics": len(current["metrics"]),
        "equity samples": len(current["equity"]["samples"]),
        "rebalances": len(current["weights"]["rows"]),
    }
    return Comparison(name, Path(baseline_path), status, changes, notes, current, compared)


def config_changes(baseline: dict[str, Any], current: dict[str, Any]) -> list[Change]:
    """Keys of the resolved config that differ (informational: they explain what moved)."""
    old, new = _flatten(baseline), _flatten(current)
    return [
        Change("config", key, old.get(key, "(unset)"), new.get(key, "(unset)"), None, False)
        for key in sorted(set(old) | set(new))
        if old.get(key, "(unset)") != new.get(key, "(unset)")
    ]


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def data_changes(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable list of what differs between two data fingerprints (symbols and fields)."""
    out = []
    for key in ("source", "timeframe", "n_bars", "start", "end"):
        if baseline.get(key) != current.get(key):
            out.append(f"{key} {baseline.get(key)} -> {current.get(key)}")
    if baseline.get("index_sha256") != current.get("index_sha256") and not out:
        out.append("bar timestamps differ")
    old, new = baseline.get("symbols", {}), current.get("symbols", {})
    if set(old) - set(new):
        out.append(f"symbols removed: {sorted(set(old) - set(new))}")
    if set(new) - set(old):
        out.append(f"symbols added: {sorted(set(new) - set(old))}")
    fields = current.get("fields", [])
    for symbol in sorted(set(old) & set(new)):
        moved = [f for f, a, b in zip(fields, old[symbol], new[symbol], strict=False) if a != b]
        if moved:
            out.append(f"{symbol}: {', '.join(moved)} changed")
    return out or ["the panel's content hash differs"]


def _holds(base: Any, cur: Any, tol: tuple[float, float]) -> bool:
    if isinstance(base, (int, float)) and isinstance(cur, (int, float)):
        return abs(float(cur) - float(base)) <= tol[0] + tol[1] * abs(float(base))
    return bool(base == cur)


def _metric_changes(
    baseline: dict[str, Any], current: dict[str, Any], tol: RegressConfig, notes: list[str]
) -> list[Change]:
    out = []
    for name in sorted(set(baseline) | set(current)):
        if name not in current or name not in baseline:
            where = (
                "new metric, not in the baseline"
                if name in current
                else "metric no longer computed"
            )
            notes.append(f"metric {name}: {where} (not compared; `--update` records it)")
            continue
        b, c = baseline[name], current[name]
        if b != c:
            t = tol.tolerance(name)
            out.append(Change("metric", name, b, c, t, not _holds(b, c, t)))
    return out


def _equity_changes(
    baseline: dict[str, Any], current: dict[str, Any], tol: tuple[float, float]
) -> list[Change]:
    b_times = [s[0] for s in baseline["samples"]]
    c_times = [s[0] for s in current["samples"]]
    if (baseline["n_bars"], b_times) != (current["n_bars"], c_times):

        def span(e: dict[str, Any]) -> str:
            return f"{_short(e['start'])}..{_short(e['end'])} ({e['n_bars']} bars)"

        return _structural("equity", "equity period", span(baseline), span(current))
    return _worst(
        "equity",
        [
            (f"equity @ {_short(t)}", b[1], c[1])
            for t, b, c in zip(b_times, baseline["samples"], current["samples"], strict=True)
        ],
        tol,
    )


def _weight_changes(
    baseline: dict[str, Any], current: dict[str, Any], tol: tuple[float, float]
) -> list[Change]:
    if baseline["symbols"] != current["symbols"]:
        return _structural(
            "weights",
            "weights: symbols",
            ", ".join(baseline["symbols"]),
            ", ".join(current["symbols"]),
        )
    b_rows, c_rows = baseline["rows"], current["rows"]
    if sorted(b_rows) != sorted(c_rows):
        pairs = zip(sorted(b_rows), sorted(c_rows), strict=False)
        first = next(
            (f"{_short(a)} vs {_short(b)}" for a, b in pairs if a != b), "one list is longer"
        )

        def span(rows: dict[str, Any]) -> str:
            return f"{len(rows)} ({_short(min(rows))}..{_short(max(rows))})" if rows else "0"

        return _structural(
            "weights",
            "weights: rebalance dates",
            span(b_rows),
            span(c_rows),
            f"first difference: {first}",
        )
    cells = [
        (f"weight {_short(t)} {s}", b, c)
        for t in b_rows
        for s, b, c in zip(baseline["symbols"], b_rows[t], c_rows[t], strict=True)
    ]
    return _worst("weights", cells, tol)


def _structural(
    section: Any, item: str, baseline: Any, current: Any, detail: str = ""
) -> list[Change]:
    """A change that fails whatever the tolerance (a shifted period, other symbols, a checksum)."""
    return [Change(section, item, baseline, current, None, True, detail)]


def _worst(
    section: Literal["equity", "weights"],
    cells: list[tuple[str, Any, Any]],
    tol: tuple[float, float],
) -> list[Change]:
    """One row for a series: the cell furthest beyond (or closest to) its tolerance, with counts."""
    moved = [(item, b, c) for item, b, c in cells if b != c]
    if not moved:
        return []
    failed = [m for m in moved if not _holds(m[1], m[2], tol)]

    def excess(cell: tuple[str, Any, Any]) -> float:
        _, b, c = cell
        if not (isinstance(b, (int, float)) and isinstance(c, (int, float))):
            return math.inf
        return abs(float(c) - float(b)) / max(tol[0] + tol[1] * abs(float(b)), 1e-300)

    item, b, c = max(failed or moved, key=excess)
    detail = f"{len(failed)} of {len(cells)} beyond tolerance, {len(moved)} moved"
    return [Change(section, item, b, c, tol, bool(failed), detail)]
