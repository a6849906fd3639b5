"""Baseline records: what a regression baseline holds, its stable JSON text, and reading/writing it.

A record has the experiment's metrics, a sampled equity curve with the sha256 of the whole curve, the
target weights per rebalance, a fingerprint of the input data, the resolved config and the library
versions; floats are rounded so that a rerun on the same machine writes the same bytes. Re-exported
by :mod:`backtest.regress`. Format: docs/regression.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backtest.errors import RegressionError

if TYPE_CHECKING:
    import pandas as pd

    from backtest.config import ExperimentConfig
    from datasets import MarketData

FORMAT = "alphapulse-regress/1"
N_SAMPLES = 50
SIG_DIGITS = 12
WEIGHT_DECIMALS = 10
_REQUIRED = ("experiment", "config_path", "config", "data", "metrics", "equity", "weights")
_LIBRARIES = ("numpy", "pandas", "scipy", "numba", "llvmlite", "pyarrow", "pydantic")


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
        "metrics": {name: stable_number(value) for name, value in result.metrics().items()},
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
        "samples": [[_iso(equity.index[i]), stable_number(values[i])] for i in pos],
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
            _iso(t): [stable_number(w, decimals=WEIGHT_DECIMALS) for w in row]
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


def stable_number(value: Any, decimals: int | None = None) -> float | str | None:
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


def short_time(iso: str) -> str:
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
