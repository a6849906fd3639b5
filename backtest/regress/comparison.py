"""Comparing a fresh record with its baseline: config, data, metric, equity and weight changes.

Each value is compared with the ``(abs, rel)`` tolerance of the config's ``[regress]`` table
(``|current - baseline| <= abs + rel * |baseline|``); a series (equity samples, weights) reports its
worst cell with counts. Re-exported by :mod:`backtest.regress`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from backtest.regress.baseline import short_time

if TYPE_CHECKING:
    from backtest.config import RegressConfig

Status = Literal["ok", "regression", "data_changed"]


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
            return f"{short_time(e['start'])}..{short_time(e['end'])} ({e['n_bars']} bars)"

        return _structural("equity", "equity period", span(baseline), span(current))
    return _worst(
        "equity",
        [
            (f"equity @ {short_time(t)}", b[1], c[1])
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
            (f"{short_time(a)} vs {short_time(b)}" for a, b in pairs if a != b),
            "one list is longer",
        )

        def span(rows: dict[str, Any]) -> str:
            return (
                f"{len(rows)} ({short_time(min(rows))}..{short_time(max(rows))})" if rows else "0"
            )

        return _structural(
            "weights",
            "weights: rebalance dates",
            span(b_rows),
            span(c_rows),
            f"first difference: {first}",
        )
    cells = [
        (f"weight {short_time(t)} {s}", b, c)
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
