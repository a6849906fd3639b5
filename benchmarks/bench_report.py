"""Report benchmarks (issue 6): tearsheet write time and size, and the metrics themselves.

Jobs (each checks ours and the peer agree on the same input before timing):

* ``tearsheet 5y daily x 20``: ``reports.write_report`` (8 interactive figures, plotly.js inlined) vs
  ``quantstats.reports.html`` (static matplotlib SVGs) on the same daily returns. Warm, in process.
* ``tearsheet cold process``: the same, each in a fresh Python process (imports included), which is
  what ``backtest report`` costs a user. Target: < 2 s and < 10 MB.
* ``metrics 5y hourly``: ``compute_metrics`` on the equity alone (18 return/risk metrics) vs the
  empyrical calls for the 8 both define, on 43,800 hourly bars; the note gives the time with trades,
  weights, benchmark and rebalances too (all 33 metrics).

Inputs: a seeded correlated random walk of 20 assets rebalanced weekly (tests/reports/inputs.py),
1,826 daily bars (5 years). The real Binance file has only ~3 years with 20 listed pairs.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from common import median_time, row  # noqa: E402

from reports import compute_metrics, write_report  # noqa: E402
from tests.reports.inputs import make_backtest, report_kwargs  # noqa: E402

PPY = 365
RF = 0.02


def _qs_html(returns, bench, path: Path) -> None:
    import quantstats as qs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs.reports.html(
            returns,
            benchmark=bench,
            output=str(path),
            periods_per_year=PPY,
            rf=RF,
            title="5y daily x 20",
        )


def _silence_matplotlib() -> None:
    import logging

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def tearsheet_jobs() -> list[dict]:
    import quantstats as qs

    _silence_matplotlib()
    bt = make_backtest(5 * 365 + 1, 20, strategy="hrp")
    returns = bt["equity"].pct_change().dropna().tz_localize(None).rename("hrp")
    bench = bt["benchmark"].pct_change().dropna().tz_localize(None).rename("benchmark")
    m = compute_metrics(bt["equity"], periods_per_year=PPY, risk_free_rate=RF)
    parity = {
        "sharpe": qs.stats.sharpe(returns, rf=RF, periods=PPY),
        "cagr": qs.stats.cagr(returns, periods=PPY),
        "volatility": qs.stats.volatility(returns, periods=PPY),
        "max_drawdown": qs.stats.max_drawdown(returns),
        "sortino": qs.stats.sortino(returns, rf=RF, periods=PPY),
    }
    for k, v in parity.items():
        assert math.isclose(m[k], v, rel_tol=1e-9), (k, m[k], v)

    tmp = Path(tempfile.mkdtemp(prefix="bench_report_"))
    kwargs = report_kwargs(bt)
    ours_s = median_time(lambda: write_report(tmp / "ours", **kwargs), repeats=5)
    peer_s = median_time(lambda: _qs_html(returns, bench, tmp / "qs.html"), repeats=3)
    ours_mb = (tmp / "ours" / "report.html").stat().st_size / 1e6
    peer_mb = (tmp / "qs.html").stat().st_size / 1e6
    rows = [
        row(
            "tearsheet 5y daily x 20 (warm)",
            ours_s,
            "quantstats.reports.html",
            peer_s,
            target="< 2 s, < 10 MB",
            note=f"ours {ours_mb:.1f} MB (8 interactive figures), "
            f"quantstats {peer_mb:.1f} MB (static SVG)",
        )
    ]
    rows.append(_cold_job(tmp))
    return rows


_COLD_OURS = """
import sys, time; t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from tests.reports.inputs import make_backtest, report_kwargs
bt = make_backtest(5 * 365 + 1, 20, strategy="hrp")
t1 = time.perf_counter()
from reports import write_report
write_report({out!r}, **report_kwargs(bt))
print(time.perf_counter() - t1)
"""
_COLD_PEER = """
import sys, time, warnings, logging
sys.path.insert(0, {root!r})
from tests.reports.inputs import make_backtest
bt = make_backtest(5 * 365 + 1, 20, strategy="hrp")
r = bt["equity"].pct_change().dropna().tz_localize(None).rename("hrp")
b = bt["benchmark"].pct_change().dropna().tz_localize(None).rename("benchmark")
t1 = time.perf_counter()
import quantstats as qs
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
warnings.simplefilter("ignore")
qs.reports.html(r, benchmark=b, output={out!r}, periods_per_year=365, rf=0.02, title="x")
print(time.perf_counter() - t1)
"""


def _cold(code: str) -> float:
    """Median over 3 fresh processes of the time the script reports (imports + write, not input building)."""
    times = []
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return float(np.median(times))


def _cold_job(tmp: Path) -> dict:
    ours_s = _cold(_COLD_OURS.format(root=str(ROOT), out=str(tmp / "cold")))
    peer_s = _cold(_COLD_PEER.format(root=str(ROOT), out=str(tmp / "cold_qs.html")))
    size = (tmp / "cold" / "report.html").stat().st_size / 1e6
    assert size < 10, f"tearsheet is {size:.1f} MB"
    return row(
        "tearsheet 5y daily x 20 (fresh process, imports included)",
        ours_s,
        "quantstats.reports.html",
        peer_s,
        target="< 2 s, < 10 MB",
        note=f"{size:.1f} MB",
    )


def metrics_job() -> dict:
    import empyrical as ep

    bt = make_backtest(5 * 8760 + 1, 5, freq="h")
    equity = bt["equity"]
    r = equity.pct_change().dropna()
    rf_p = (1 + RF) ** (1 / 8760) - 1

    def peer() -> dict[str, float]:
        return {
            "sharpe": ep.sharpe_ratio(r, risk_free=rf_p, annualization=8760),
            "sortino": ep.sortino_ratio(r, required_return=rf_p, annualization=8760),
            "cagr": ep.annual_return(r, annualization=8760),
            "volatility": ep.annual_volatility(r, annualization=8760),
            "max_drawdown": ep.max_drawdown(r),
            "calmar": ep.calmar_ratio(r, annualization=8760),
            "var_95": ep.value_at_risk(r),
            "cvar_95": ep.conditional_value_at_risk(r),
        }

    def ours() -> dict[str, float]:
        return compute_metrics(equity, periods_per_year=8760, risk_free_rate=RF)

    def ours_all() -> dict[str, float]:
        return compute_metrics(
            equity,
            periods_per_year=8760,
            risk_free_rate=RF,
            trades=bt["trades"],
            weights=bt["weights"],
            benchmark=bt["benchmark"],
            rebalances=bt["rebalances"],
        )

    got, want = ours_all(), peer()
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=1e-9), (k, got[k], v)
    all_s = median_time(ours_all, repeats=15)
    return row(
        "metrics 5y hourly (43,800 bars)",
        median_time(ours, repeats=15),
        "empyrical (8 shared metrics)",
        median_time(peer, repeats=15),
        note=f"ours: 18 return/risk metrics; all 33 incl. {len(bt['trades']):,} trades: "
        f"{all_s * 1e3:.1f} ms",
    )


def main() -> list[dict]:
    t0 = time.perf_counter()
    rows = tearsheet_jobs()
    rows.append(metrics_job())
    print(f"(bench_report took {time.perf_counter() - t0:.0f} s)")
    return rows


if __name__ == "__main__":
    main()
