"""reports.html: the tearsheet and comparison files, their JSON, escaping and offline guarantees."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import compute_metrics, write_comparison, write_report
from reports.html import format_metric, metrics_frame
from tests.reports.inputs import comparison_entry, make_backtest, report_kwargs

PAYLOAD_SCRIPT = "<script>document.body.dataset.pwned='1'</script>"
PAYLOAD_IMG = "<img src=x onerror=\"document.body.dataset.pwned='1'\">"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(text: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


@pytest.fixture(scope="module")
def bt():
    return make_backtest(500, 6)


@pytest.fixture(scope="module")
def report(bt, tmp_path_factory) -> Path:
    return write_report(tmp_path_factory.mktemp("tearsheet"), **report_kwargs(bt))


def test_tearsheet_has_every_figure_and_metrics_json(bt, report):
    text = report.read_text(encoding="utf-8")
    keys = [a["data-key"] for t, a in _tags(text) if t == "div" and "data-key" in a]
    assert keys == [
        "equity",
        "drawdown",
        "weights",
        "rebalances",
        "rolling",
        "monthly",
        "frontier",
        "dendrogram",
    ]
    assert f'data-figures="{len(keys)}"' in text
    saved = json.loads((report.parent / "metrics.json").read_text())
    expected = compute_metrics(
        bt["equity"],
        periods_per_year=365,
        risk_free_rate=0.02,
        trades=bt["trades"],
        weights=bt["weights"],
        benchmark=bt["benchmark"],
        rebalances=bt["rebalances"],
    )
    assert list(saved) == list(expected)
    for k, v in expected.items():
        assert (saved[k] is None and math.isnan(v)) or saved[k] == pytest.approx(v, rel=1e-12), k
    assert 'id="regime-table"' in text and "above 200d MA" in text


def test_files_get_the_usual_permissions(report):
    import os

    mask = os.umask(0)
    os.umask(mask)
    assert report.stat().st_mode & 0o777 == 0o666 & ~mask
    assert not list(report.parent.glob(".*.tmp"))


def test_tearsheet_is_offline_and_inlines_plotly_once(report):
    from plotly.offline import get_plotlyjs

    text = report.read_text(encoding="utf-8")
    assert text.count(get_plotlyjs()[:300]) == 1
    tags = _tags(text)
    assert not [a for t, a in tags if t == "script" and a.get("src")]
    assert not [a for t, a in tags if t in ("link", "img", "iframe")]
    csp = [
        a["content"]
        for t, a in tags
        if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp and csp[0].startswith("default-src 'none'")


def test_synthetic_banner_and_data_notes(bt, tmp_path):
    text = write_report(tmp_path / "syn", **report_kwargs(bt)).read_text()
    assert 'id="synthetic-banner"' in text and "SYNTHETIC DATA" in text
    for note in (
        "no gaps found",
        "forward-fill up to 3 bars, flagged",
        "listed",
        "covariance ill-conditioned",
        "max_sharpe",
        "Resolved configuration",
    ):
        assert note in text, note
    real = {**bt["meta"], "synthetic": False, "data_source": "binance 1d store"}
    text = write_report(tmp_path / "real", **{**report_kwargs(bt), "meta": real}).read_text()
    assert (
        "SYNTHETIC DATA" not in text and "real market data" in text and "binance 1d store" in text
    )


def test_minimal_report_and_precomputed_metrics(tmp_path):
    idx = pd.date_range("2023-01-01", periods=40, freq="D", tz="UTC")
    eq = pd.Series(np.linspace(100, 130, 40), index=idx)
    given = {"sharpe": 9.99, "cagr": 0.5}
    path = write_report(tmp_path, equity=eq, meta={"periods_per_year": 365}, metrics=given)
    text = path.read_text()
    assert [a["data-key"] for t, a in _tags(text) if t == "div" and "data-key" in a] == [
        "equity",
        "drawdown",
        "rolling",
        "monthly",
    ]
    assert "9.99" in text and json.loads((tmp_path / "metrics.json").read_text()) == given
    assert "not recorded (meta has no `synthetic` key)" in text


def test_user_text_is_escaped_everywhere(tmp_path):
    bt = make_backtest(
        120, 3, symbols=[PAYLOAD_SCRIPT, PAYLOAD_IMG, "BTC/USDT"], strategy=PAYLOAD_SCRIPT
    )
    bt["meta"].update(
        title=PAYLOAD_IMG,
        data_notes=[PAYLOAD_SCRIPT],
        strategy_params={PAYLOAD_IMG: PAYLOAD_SCRIPT},
    )
    text = write_report(tmp_path, **report_kwargs(bt)).read_text(encoding="utf-8")
    assert "pwned" in text  # the payload is there ...
    assert PAYLOAD_SCRIPT not in text and "<img" not in text  # ... but never as markup
    assert "&lt;script&gt;document.body.dataset.pwned=&#39;1&#39;&lt;/script&gt;" in text
    tags = _tags(text)
    scripts = [a for t, a in tags if t == "script"]
    n_figures = sum(1 for t, a in tags if t == "div" and "data-key" in a)
    assert (
        len(scripts) == n_figures + 3
    )  # error hook, plotly.js, one JSON block per figure, renderer
    for block in re.findall(
        r'<script type="application/json" data-figure="fig-\d+">(.*?)</script>', text, re.S
    ):
        assert "<" not in block and ">" not in block
        json.loads(block)


def test_comparison_report(tmp_path):
    results = {}
    for i, name in enumerate(["hrp", "mpt", PAYLOAD_SCRIPT]):
        b = make_backtest(400, 4, seed=0, strategy=name)
        b["equity"] = b["equity"] * (1 + 0.0002 * i) ** np.arange(len(b["equity"]))
        results[name] = comparison_entry(b)
    path = write_comparison(tmp_path, results, title="three strategies")
    text = path.read_text(encoding="utf-8")
    keys = [a["data-key"] for t, a in _tags(text) if t == "div" and "data-key" in a]
    assert keys[:4] == ["overlay", "drawdown", "rolling", "regimes"]
    assert sum(k.startswith("weights:") for k in keys) == 3
    assert PAYLOAD_SCRIPT not in text and "&lt;script&gt;" in text
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert list(saved) == ["hrp", "mpt", PAYLOAD_SCRIPT]
    assert saved["mpt"]["cagr"] > saved["hrp"]["cagr"]
    row = re.search(r'<tr data-metric="cagr">(.*?)</tr>', text, re.S).group(1)
    cells = re.findall(r"<td( class=\"best\")?>", row)
    assert [bool(c) for c in cells] == [
        False,
        False,
        True,
        False,
    ]  # 3rd strategy best, benchmark not
    assert text.count("SYNTHETIC DATA") == 1


def test_comparison_rejects_mismatched_inputs(tmp_path):
    a = make_backtest(100, 3)
    b = make_backtest(120, 3)
    with pytest.raises(
        ValueError, match=r"`results\['b'\]\['equity'\]` must share the index of 'a'"
    ):
        write_comparison(
            tmp_path,
            {
                "a": {"equity": a["equity"], "meta": a["meta"]},
                "b": {"equity": b["equity"], "meta": b["meta"]},
            },
        )
    hourly = {**a["meta"], "periods_per_year": 8760}
    with pytest.raises(
        ValueError, match=r"results must share `periods_per_year`; got \[365.0, 8760.0\]"
    ):
        write_comparison(
            tmp_path,
            {
                "a": {"equity": a["equity"], "meta": a["meta"]},
                "b": {"equity": a["equity"], "meta": hourly},
            },
        )
    with pytest.raises(
        ValueError, match=r"`results\['a'\]` must be a dict with an 'equity' Series"
    ):
        write_comparison(tmp_path, {"a": {"weights": a["weights"]}})
    with pytest.raises(ValueError, match=r"`results` must be a non-empty dict"):
        write_comparison(tmp_path, {})


def test_write_report_errors(bt, tmp_path):
    with pytest.raises(ValueError, match=r"`meta\['periods_per_year'\]` is required to annualise"):
        write_report(tmp_path, equity=bt["equity"], meta={"title": "x"})
    with pytest.raises(TypeError, match=r"`meta` must be a dict of report metadata; got list"):
        write_report(tmp_path, equity=bt["equity"], meta=[])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"`out_dir` must be a directory; got the file"):
        write_report(tmp_path / "file", equity=bt["equity"], meta=bt["meta"])


def test_dendrogram_labels_default_to_meta_symbols(bt, tmp_path, caplog):
    path = write_report(tmp_path, equity=bt["equity"], meta=bt["meta"], linkage=bt["linkage"])
    assert "dendrogram" in path.read_text() and bt["meta"]["symbols"][0] in path.read_text()
    # without symbols in meta (and no `linkage_labels`) the leaves are numbered 0..n-1
    meta = {k: v for k, v in bt["meta"].items() if k != "symbols"}
    with caplog.at_level("WARNING", logger="reports.html"):
        write_report(tmp_path / "numbered", equity=bt["equity"], meta=meta, linkage=bt["linkage"])
    n = len(bt["meta"]["symbols"])
    assert f"its leaves are numbered 0..{n - 1}" in caplog.text


def test_five_year_twenty_asset_tearsheet_under_10_mb(tmp_path):
    bt = make_backtest(5 * 365 + 1, 20)
    path = write_report(tmp_path, **report_kwargs(bt))
    assert path.stat().st_size < 10_000_000


def test_format_metric_and_frame():
    assert format_metric("cost_drag_bps", 12.34) == "12.3 bps"
    assert format_metric("max_drawdown_duration_days", 3.0) == "3.0 d"
    assert format_metric("n_trades", 1234.0) == "1,234"
    assert format_metric("unknown", 0.123456) == "0.1235"
    frame = metrics_frame({"a": {"sharpe": 1.0, "cagr": 0.1}, "b": {"sharpe": 2.0, "cagr": 0.2}})
    assert list(frame.index) == ["cagr", "sharpe"] and list(frame.columns) == ["a", "b"]
