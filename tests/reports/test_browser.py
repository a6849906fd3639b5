"""The tearsheet in a real browser: headless Chromium opens it from file:// with networking disabled,
logs no JavaScript error and draws every figure (checked in the page). Screenshots are saved in
test-artifacts/. Skips with a reason when Chromium is not installed (.ci/run installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reports import write_comparison, write_report
from tests.reports.inputs import comparison_entry, make_backtest, report_kwargs

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="headless Chromium not found: `apt-get install chromium` "
        "(the Debian package; .ci/run installs it when missing)",
    ),
]

PAYLOAD = "<script>document.body.dataset.pwned='1'</script>"
PAYLOAD_IMG = "<img src=x onerror=\"document.body.dataset.pwned='1'\">"


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium offline: no proxy reachable, no background traffic, a fresh profile."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=30000",
        *extra,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def _open(html: Path, tmp_path: Path) -> tuple[str, str]:
    """Return (dumped DOM after rendering, console messages logged by the page)."""
    done = _chromium(html.resolve().as_uri(), tmp_path / "profile-dom", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    console = "\n".join(line for line in done.stderr.splitlines() if ":CONSOLE" in line)
    return done.stdout, console


def _body(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag))


def _assert_rendered(dom: str, console: str) -> int:
    body = _body(dom)
    assert body.get("data-render-done") == "1", body
    assert body.get("data-js-errors") == "0", re.search(
        r'<pre id="report-errors"[^>]*>(.*?)</pre>', dom, re.S
    )
    assert console == "", console
    n = int(body["data-figures"])
    assert n > 0 and body["data-figures-rendered"] == str(n)
    segments = dom.split('<div class="figure')[1:]
    assert len(segments) == n
    for segment in segments:  # every figure div is marked rendered and holds plotly's SVG
        assert re.match(r'[^>]*data-rendered="1"', segment) and 'class="main-svg"' in segment
    return n


def _screenshot(html: Path, tmp_path: Path, name: str, size: str = "1280,5600") -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / name
    done = _chromium(
        html.resolve().as_uri(),
        tmp_path / "profile-shot",
        "--hide-scrollbars",
        f"--window-size={size}",
        f"--screenshot={target}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def test_tearsheet_renders_offline_without_errors(tmp_path):
    bt = make_backtest(3 * 365, 20, strategy="hrp")
    html = write_report(
        tmp_path / "report",
        **report_kwargs(bt),
    )
    dom, console = _open(html, tmp_path)
    assert _assert_rendered(dom, console) == 8
    shot = _screenshot(html, tmp_path, "report.png")
    assert shot.stat().st_size > 50_000  # a blank page is a few kB


# appended to a copy of the page: records where the metrics table and the headline column are
_MEASURE = """<script>
window.addEventListener("load", function () {
  ["metrics", "summary"].forEach(function (id) {
    var r = document.getElementById(id).getBoundingClientRect();
    document.body.setAttribute("data-box-" + id, [r.left, r.top, r.right, r.bottom].map(Math.round).join(","));
  });
});
</script>
</body>"""


def test_tearsheet_metrics_table_shares_its_row_with_the_headline(tmp_path):
    """At 1280 px the narrow metrics table and the headline numbers and lead charts sit side by
    side (the table no longer leaves half the page empty); below 900 px they stack."""
    bt = make_backtest(3 * 365, 20, strategy="hrp")
    html = write_report(tmp_path / "report", **report_kwargs(bt))
    probe = html.with_name("probe.html")
    probe.write_text(html.read_text(encoding="utf-8").replace("</body>", _MEASURE), "utf-8")
    boxes = {}
    for width in (1280, 800):
        done = _chromium(
            probe.resolve().as_uri(),
            tmp_path / f"profile-{width}",
            f"--window-size={width},2000",
            "--dump-dom",
        )
        assert done.returncode == 0, done.stderr[-2000:]
        body = _body(done.stdout)
        boxes[width] = {
            k: [int(v) for v in body[f"data-box-{k}"].split(",")] for k in ("metrics", "summary")
        }
    (m_left, m_top, m_right, _), (s_left, s_top, s_right, _) = boxes[1280].values()
    assert m_top == s_top and s_left >= m_right  # one row: table left, headline right
    assert m_right - m_left < 0.55 * (s_right - m_left) and s_right - s_left > 400
    (_, _, _, m_bottom), (_, s_top, _, _) = boxes[800].values()
    assert s_top >= m_bottom  # a narrow window stacks them
    shot = _screenshot(html, tmp_path, "report_overview.png", size="1280,1500")
    assert shot.stat().st_size > 50_000


def test_comparison_renders_and_payload_names_stay_text(tmp_path):
    results = {}
    for i, name in enumerate(["hrp", PAYLOAD]):
        b = make_backtest(
            400, 4, symbols=["BTC/USDT", PAYLOAD, PAYLOAD_IMG, "ETH/USDT"], strategy=name
        )
        b["equity"] = b["equity"] * (1 + 0.0003 * i) ** np.arange(len(b["equity"]))
        results[name] = comparison_entry(b)
    comparison = write_comparison(tmp_path / "cmp", results)
    dom, console = _open(comparison, tmp_path)
    _assert_rendered(dom, console)
    assert "data-pwned" not in dom
    assert "&lt;script&gt;document.body.dataset.pwned='1'&lt;/script&gt;" in dom  # shown as text
    _screenshot(comparison, tmp_path, "comparison.png")

    tearsheet = write_report(
        tmp_path / "one",
        **report_kwargs(b),
    )
    dom, console = _open(tearsheet, tmp_path)
    _assert_rendered(dom, console)
    assert "data-pwned" not in dom
    # plotly drew the symbol as legend text (SVG text node), not as an element
    assert "&lt;img src=x onerror" in dom and "<img src=x" not in dom


def test_cost_frontier_page_renders_and_names_stay_text(tmp_path):
    from backtest.cost_frontier import Policy, cost_frontier
    from datasets import synthetic_market
    from reports.cost_frontier import write_cost_frontier_report
    from strategies import InverseVolatility

    grid = [Policy.calendar("1W"), Policy.drift(0.02), Policy.cost(1.0), Policy.cost(10.0, "1W")]
    market = synthetic_market(n_assets=4, n_bars=400)
    frontier = cost_frontier(market, InverseVolatility(lookback_days=30), policies=grid)
    table = frontier.table.copy()
    table.loc[2, "policy"] = PAYLOAD  # user text in a label is shown, never run
    html = write_cost_frontier_report(
        tmp_path / "frontier",
        table,
        comparison=frontier.against_calendar(),
        meta={"synthetic": True},
    )
    dom, console = _open(html, tmp_path)
    assert _assert_rendered(dom, console) == 1
    assert "data-pwned" not in dom
    _screenshot(html, tmp_path, "cost_frontier.png")


def test_bootstrap_parts_render(tmp_path):
    """The robustness page and a tearsheet with bootstrap intervals (the metrics table's interval
    column, the intervals under the headline figures, the equity fan chart) render offline."""
    from backtest.config import parse_config
    from backtest.robustness import bootstrap
    from backtest.robustness.outputs import write_bootstrap

    cfg = parse_config(
        {
            "name": "boot",
            "data": {"source": "synthetic", "n_assets": 5, "n_bars": 500, "seed": 4},
            "strategy": {"name": "hrp", "lookback_days": 60},
            "rebalance": {"every": "1M"},
            "compare": [{"name": "equal_weight", "lookback_days": 60}],
        }
    )
    boot = bootstrap(cfg, 20, seed=0, compare=True)
    paths = write_bootstrap(boot, tmp_path / "boot", cfg=cfg)
    dom, console = _open(paths["html"], tmp_path)
    assert _assert_rendered(dom, console) == 5  # the fan and four distributions
    assert 'id="beats-table"' in dom and "P(row beats column)" in dom
    _screenshot(paths["html"], tmp_path, "robustness.png", size="1280,2600")
    dom, console = _open(paths["report"], tmp_path)
    n = _assert_rendered(dom, console)
    assert 'data-key="fan"' in dom
    assert "90% interval" in dom and 'class="ci"' in dom
    shot = _screenshot(paths["report"], tmp_path, "report_bootstrap.png", size="1280,1800")
    assert shot.stat().st_size > 50_000 and n >= 8


def test_track_page_renders_offline_and_asset_names_stay_text(tmp_path):
    """The live track page (backtest track): every figure drawn, an asset name shown as text."""
    from backtest.live.track import track, write_track
    from tests.live.track_case import hand_journal

    journal = hand_journal(tmp_path / "journal", asset_name=PAYLOAD)  # an asset name is user text
    paths = write_track(track(journal), tmp_path / "out")
    dom, console = _open(paths["html"], tmp_path)
    assert _assert_rendered(dom, console) == 4  # value, weights, score and drift, costs
    assert "data-pwned" not in dom
    assert 'id="rebalance-table"' in dom and "executed" in dom and "dry run" in dom
    shot = _screenshot(paths["html"], tmp_path, "track.png", size="1280,2600")
    assert shot.stat().st_size > 50_000  # a blank page is a few kB
