"""Risk budgets by symbol (``[strategy.risk_budget]`` in TOML, a mapping in the API): resolved
against the market's symbols, restricted to each decision's universe (late listings join with their
budget), the risk contributions proportional to the budgets at every rebalance of a real-data
backtest; unknown symbols are clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from backtest import run_backtest
from backtest.cli import main
from backtest.pipeline import prepare
from strategies import MPTStrategy, RiskParity
from strategies.estimators import covariance
from strategies.risk_parity import risk_contributions

SYMBOLS = ["BTC/USDT", "ETH/USDT", "BNB/USDT", "LINK/USDT", "AAVE/USDT", "UNI/USDT"]
BUDGET = {"BTC/USDT": 3.0, "AAVE/USDT": 0.5}  # the others 1; AAVE is listed in October 2020


@pytest.fixture(scope="module")
def market(daily_csv):
    from datasets import load_csv

    return load_csv(daily_csv, symbols=SYMBOLS, start="2020-06-01", end="2021-12-31")


def test_contributions_follow_the_budgets_in_every_universe(market):
    strategy = RiskParity(lookback_days=60, risk_budget=BUDGET)
    result = run_backtest(market, strategy, "1M", benchmark=None)
    prepared = prepare(market, strategy)
    targets = result.target_weights
    sizes = set()
    for t, row in zip(result.rebalances["time"], targets.to_numpy(), strict=True):
        bar = int(market.index.get_loc(t))
        members = np.flatnonzero(row > 0)
        sizes.add(members.size)
        window = prepared.panel.window(bar, members)
        cov = covariance(window, "sample", market.periods_per_year)
        want = np.array([BUDGET.get(SYMBOLS[j], 1.0) for j in members])
        got = risk_contributions(row[members], cov)
        np.testing.assert_allclose(got, want / want.sum(), atol=1e-8)
    assert len(sizes) >= 2  # the universe grew: the budgets followed it


def test_a_per_asset_budget_of_the_market_is_restricted_too(market):
    by_symbol = RiskParity(lookback_days=60, risk_budget=BUDGET)
    vector = RiskParity(
        lookback_days=60, risk_budget=[BUDGET.get(s, 1.0) for s in SYMBOLS]
    )  # one entry per asset of the market
    a = run_backtest(market, by_symbol, "1M", benchmark=None).equity.to_numpy()
    b = run_backtest(market, vector, "1M", benchmark=None).equity.to_numpy()
    np.testing.assert_array_equal(a, b)


def test_a_per_asset_transaction_cost_follows_the_universe(market):
    cost = [0.001, 0.002, 0.003, 0.004, 0.005, 0.006]
    strategy = MPTStrategy(objective="max_utility", lookback_days=60, transaction_cost=cost)
    result = run_backtest(market, strategy, "1M", benchmark=None)  # universes of 4 to 6 assets
    assert result.metrics()["n_rebalances"] > 10


def test_bad_budgets_are_named(market):
    with pytest.raises(ValueError, match=r"`risk_budget` names \['DOGE/USDT'\] that the data"):
        run_backtest(market, RiskParity(risk_budget={"DOGE/USDT": 2.0}), "1M")
    with pytest.raises(ValueError, match="finite and > 0"):
        RiskParity(risk_budget={"BTC/USDT": 0.0})
    with pytest.raises(ValueError, match="needs the market's symbols"):
        RiskParity(risk_budget={"BTC/USDT": 2.0}).allocate(
            np.random.default_rng(0).normal(0, 0.01, (50, 3))
        )


def test_risk_budget_by_symbol_from_toml(daily_csv, tmp_path, capsys):
    symbols = ", ".join(f"'{s}'" for s in SYMBOLS)
    text = (
        f"name = 'rb'\n[data]\nsource = 'csv'\npath = '{daily_csv}'\nsymbols = [{symbols}]\n"
        "start = 2020-06-01\nend = 2021-06-30\n"
        "[strategy]\nname = 'risk_parity'\nlookback_days = 60\n"
        "[strategy.risk_budget]\n'BTC/USDT' = 3\n'AAVE/USDT' = 0.5\n"
        "[rebalance]\nevery = '1M'\n[backtest]\nbenchmark = 'none'\n"
    )
    config = tmp_path / "rb.toml"
    config.write_text(text)
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--no-html"]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("'AAVE/USDT' = 0.5", "'XYZ/USDT' = 0.5"))
    assert main(["run", str(bad), "--out", str(tmp_path / "bad")]) == 2
    assert "`risk_budget` names ['XYZ/USDT']" in capsys.readouterr().err
