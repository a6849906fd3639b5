"""reports.figures: content of each figure, thinning, escaping of user text, errors."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest

from reports import figures as fg
from reports.metrics import drawdown
from tests.reports.inputs import make_backtest


@pytest.fixture(scope="module")
def bt():
    return make_backtest(300, 5, symbols=["BTC/USDT", "ETH/USDT", "<b>X</b>", "A&B", "SOL/USDT"])


def _values(arr) -> np.ndarray:
    """Decode a trace array whether plotly kept it as a list or a base64 typed array."""
    if isinstance(arr, dict) and "bdata" in arr:
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"]))
    return np.asarray(arr)


def _json(fig) -> dict:
    return fig.to_plotly_json()


def test_equity_figure_log_axis_epoch_ms_and_benchmark(bt):
    fig = fg.equity_figure(bt["equity"], bt["benchmark"], name="hrp")
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.type == "date"
    assert [t.name for t in fig.data] == ["hrp", "benchmark"]
    x = _values(fig.to_dict()["data"][0]["x"])
    assert x[0] == bt["equity"].index[0].timestamp() * 1000
    y = _values(fig.to_dict()["data"][0]["y"])
    assert y.dtype == np.float32 and y[-1] == pytest.approx(bt["equity"].iloc[-1], rel=1e-6)


def test_long_lines_are_thinned_and_drawdown_keeps_its_minimum():
    idx = pd.date_range("2020-01-01", periods=20_000, freq="h", tz="UTC")
    eq = pd.Series(
        100 * np.cumprod(1 + np.random.default_rng(0).normal(0, 0.01, len(idx))), index=idx
    )
    fig = fg.drawdown_figure(eq, max_points=1000)
    y = _values(fig.to_dict()["data"][0]["y"])
    assert len(y) <= 1000
    assert y.min() == pytest.approx(drawdown(eq).min(), rel=1e-6)
    assert len(_values(fg.equity_figure(eq, max_points=1000).to_dict()["data"][0]["y"])) <= 1000


def test_weights_figure_stacks_assets_and_cash(bt):
    fig = fg.weights_figure(bt["weights"], max_points=50)
    names = [t.name for t in fig.data]
    assert names[-1] == "cash" and len(names) == 6
    total = sum(_values(t["y"]).astype(float) for t in fig.to_dict()["data"])
    assert total == pytest.approx(np.ones_like(total), abs=1e-5)
    assert len(_values(fig.to_dict()["data"][0]["x"])) == 50


def test_weights_figure_groups_small_assets_as_other(bt):
    fig = fg.weights_figure(bt["weights"], max_assets=2)
    assert [t.name for t in fig.data][-2:] == ["other (3)", "cash"]


def test_user_text_is_escaped_for_plotly(bt):
    fig = fg.weights_figure(bt["weights"])
    names = {t.name for t in fig.data}
    assert "&lt;b&gt;X&lt;/b&gt;" in names and "A&amp;B" in names
    assert not any("<b>" in n for n in names)
    frontier = fg.frontier_figure(bt["frontier"].rename(columns={"<b>X</b>": "<b>X</b>"}))
    assert "<b>X</b>" not in str(frontier.data[0].text)


def test_rebalance_figure_sums_into_buckets(bt):
    reb = bt["rebalances"]
    fig = fg.rebalance_figure(reb, max_bars=10)
    turnover = _values(fig.to_dict()["data"][0]["y"])
    assert len(turnover) <= 10
    assert turnover.sum() == pytest.approx(reb["turnover"].sum(), rel=1e-5)
    assert [t.name for t in fig.data] == ["turnover", "fees", "slippage", "impact"]


def test_monthly_heatmap_has_year_column(bt):
    fig = fg.monthly_returns_figure(bt["equity"])
    months, year = fig.data
    assert len(months.x) == 12 and list(year.x) == ["Year"] and list(months.y) == list(year.y)
    assert year.xaxis == "x2" and fig.layout.xaxis2.domain[0] > fig.layout.xaxis.domain[1]
    z = _values(fig.to_dict()["data"][1]["z"]).reshape(len(year.y), 1)
    total = bt["equity"].iloc[-1] / bt["equity"].iloc[0] - 1
    assert np.prod(1 + z[:, -1].astype(float)) - 1 == pytest.approx(total, rel=1e-5)


def _colour_positions(trace) -> np.ndarray:
    """Where each cell sits on its trace's colour scale, 0 (zmin) to 1 (zmax), clipped."""
    z = _values(trace.to_plotly_json()["z"]).astype(float)
    return np.clip((z - trace.zmin) / (trace.zmax - trace.zmin), 0, 1)


def test_one_huge_year_leaves_the_months_distinct_colours():
    """Four years of months between -8% and +8%, except two months of +500% and +400% in 2021
    (a +3,000% year, as some crypto pairs had): the months keep a scale of their own."""
    rng = np.random.default_rng(0)
    monthly = pd.Series(
        rng.uniform(-0.08, 0.08, size=48),
        index=pd.date_range("2020-01-31", periods=48, freq="ME", tz="UTC"),
    )
    monthly.iloc[14], monthly.iloc[15] = 5.0, 4.0
    equity = 100 * (1 + monthly).cumprod()
    fig = fg.monthly_returns_figure(equity, initial_value=100.0)
    months, year = fig.data
    assert year.zmax == pytest.approx(float(np.prod(1 + monthly.iloc[12:24]) - 1), rel=1e-6)
    assert year.zmax > 20 and months.zmax < 0.1 and months.zmin == -months.zmax
    assert months.showscale and not year.showscale
    z = _values(months.to_plotly_json()["z"]).astype(float)
    ordinary = np.abs(z) < 1
    positions = _colour_positions(months)[ordinary]
    assert np.ptp(positions) > 0.8  # the ordinary months span the colour scale
    assert len(np.unique(np.round(positions, 1))) >= 8  # ... in many distinct colours
    # on one scale shared with the year (the old figure) they sat within 0.5% of the middle colour
    shared = 0.5 + z[ordinary] / (2 * max(np.abs(z).max(), year.zmax))
    assert np.ptp(shared) < 0.005


def test_colour_limit_clips_at_the_quantile():
    assert fg.colour_limit(np.array([0.01, -0.02, 0.03, 30.0]), 0.5) == pytest.approx(0.025)
    assert fg.colour_limit(np.array([0.0, 0.0, 2.0]), 0.5) == 2.0  # a zero quantile: the maximum
    assert fg.colour_limit(np.array([np.nan, 0.0]), 0.95) == 1.0


def test_frontier_marks_chosen_portfolio(bt):
    fig = fg.frontier_figure(bt["frontier"], bt["chosen"])
    assert fig.data[1].name == "chosen portfolio" and fig.data[1].marker.symbol == "star"
    assert fig.data[1].x[0] == pytest.approx(bt["chosen"]["volatility"])
    with pytest.raises(
        ValueError,
        match=r"`chosen` must have keys 'return' and 'volatility'; missing \['volatility'\]",
    ):
        fg.frontier_figure(bt["frontier"], {"return": 0.1})
    with pytest.raises(ValueError, match=r"`frontier` must have columns .*missing \['sharpe'\]"):
        fg.frontier_figure(bt["frontier"].drop(columns="sharpe"))


def test_dendrogram_leaves_and_shape_error(bt):
    fig = fg.dendrogram_figure(bt["linkage"], bt["linkage_labels"])
    leaves = list(fig.layout.xaxis.ticktext)
    assert sorted(leaves) == sorted(fg.plot_text(s) for s in bt["linkage_labels"])
    n_links = len(bt["linkage_labels"]) - 1
    assert len(fig.data[0].x) == 5 * n_links  # 4 corners + a gap per link
    with pytest.raises(
        ValueError, match=r"`linkage` must have shape \(n_labels - 1, 4\) = \(4, 4\); got \(3, 4\)"
    ):
        fg.dendrogram_figure(bt["linkage"][:3], bt["linkage_labels"])


def test_regime_figure_groups_by_strategy():
    table = pd.DataFrame(
        {
            "strategy": ["a", "a", "a", "benchmark", "benchmark", "benchmark"],
            "regime_type": ["all", "trend", "trend"] * 2,
            "regime": ["all bars", "up", "down"] * 2,
            "ann_return": [0.1, 0.2, 0.0, 0.1, 0.3, -0.1],
        }
    )
    fig = fg.regime_figure(table)
    assert [t.name for t in fig.data] == ["a", "benchmark"] and list(fig.data[0].x) == [
        "up",
        "down",
    ]


def test_sweep_heatmap_facets_and_duplicates():
    table = pd.DataFrame(
        {
            "lookback": [30, 90] * 4,
            "freq": ["1W", "1W", "1M", "1M"] * 2,
            "strategy": ["hrp"] * 4 + ["mpt"] * 4,
            "sharpe": np.arange(8.0),
        }
    )
    fig = fg.sweep_heatmap(table, "lookback", "freq", "sharpe", facet="strategy")
    assert len(fig.data) == 2 and fig.data[1].xaxis == "x2"
    assert np.asarray(fig.data[1].z).tolist() == [[6.0, 7.0], [4.0, 5.0]]  # rows sorted: 1M, 1W
    assert fig.layout.coloraxis.cmin == 0.0 and fig.layout.coloraxis.cmax == 7.0
    with pytest.raises(
        ValueError, match=r"cells of \(lookback, freq\) with several rows; .*agg='mean'"
    ):
        fg.sweep_heatmap(table, "lookback", "freq", "sharpe")
    mean = fg.sweep_heatmap(table, "lookback", "freq", "sharpe", agg="mean")
    assert np.asarray(mean.data[0].z).tolist() == [[4.0, 5.0], [2.0, 3.0]]
    with pytest.raises(ValueError, match=r"missing \['nope'\]"):
        fg.sweep_heatmap(table, "lookback", "freq", "nope")


def test_weights_figure_requires_datetime_frame():
    with pytest.raises(
        TypeError, match=r"`weights` must be a DataFrame \(bars x symbols\) with a DatetimeIndex"
    ):
        fg.weights_figure(pd.DataFrame({"a": [1.0]}))
