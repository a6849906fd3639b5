"""Black-Litterman views by symbol (``[strategy.views]`` in TOML, a mapping in the API) in a
real-data backtest: resolved against the market's symbols, a view on a pair not listed yet dropped
at that decision with a note, every target equal to the allocation with the remaining views on
that universe; bad views are clear errors, exit 2 from the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from backtest import run_backtest
from backtest.cli import main
from backtest.pipeline import prepare
from strategies import BlackLittermanStrategy
from strategies.views import parse_view

pytestmark = pytest.mark.shared

SYMBOLS = ["BTC/USDT", "ETH/USDT", "BNB/USDT", "LINK/USDT", "SOL/USDT", "AAVE/USDT"]
VIEWS = {"BTC/USDT": 0.3, "ETH/USDT - SOL/USDT": 0.05, "0.5*AAVE/USDT + 0.5*LINK/USDT": 0.8}
CONFIDENCES = {"BTC/USDT": 0.6, "ETH/USDT - SOL/USDT": 0.4, "0.5*AAVE/USDT + 0.5*LINK/USDT": 0.5}


@pytest.fixture(scope="module")
def market(daily_csv):
    from datasets import load_csv

    # SOL lists in August 2020, AAVE in October 2020
    return load_csv(daily_csv, symbols=SYMBOLS, start="2020-05-01", end="2021-06-30")


def direct(names, window):
    """The allocation of the views whose legs are all in ``names``, given on that universe."""
    kept = [e for e in VIEWS if all(s in names for _, s in parse_view(e))]
    strategy = BlackLittermanStrategy(
        lookback_days=60,
        views={e: VIEWS[e] for e in kept},
        view_confidences={e: CONFIDENCES[e] for e in kept},
        risk_aversion=2.5,
    ).for_symbols(names)
    return strategy.allocate(window, {"max_weight": 0.4}), kept


def test_views_follow_the_universe_at_every_rebalance(market):
    strategy = BlackLittermanStrategy(
        lookback_days=60, views=VIEWS, view_confidences=CONFIDENCES, risk_aversion=2.5
    )
    result = run_backtest(market, strategy, "1M", constraints={"max_weight": 0.4}, benchmark=None)
    prepared = prepare(market, strategy, constraints={"max_weight": 0.4})
    bars = market.index.get_indexer(result.target_weights.index)
    universes = prepared.panel.universe(bars)
    seen = set()
    for k, (bar, members) in enumerate(zip(bars, universes, strict=True)):
        idx = np.flatnonzero(members)
        names = [SYMBOLS[j] for j in idx]
        want, kept = direct(names, prepared.panel.window(int(bar), idx))
        got = result.target_weights.to_numpy()[k, idx]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        notes = result.rebalances["notes"].iloc[k]
        for expression in set(VIEWS) - set(kept):
            assert f"view {expression!r} dropped" in notes
        seen.add(len(kept))
    assert seen == {1, 2, 3}  # SOL's view joined, then AAVE's
    assert result.meta["strategy_params"]["views"] == VIEWS


def test_bad_views_are_named(market):
    with pytest.raises(ValueError, match=r"names 'SOL/USD', .* \(did you mean 'SOL/USDT'\?\)"):
        run_backtest(market, BlackLittermanStrategy(views={"SOL/USD": 0.5}), "1M")


def test_black_litterman_from_toml(daily_csv, tmp_path, capsys):
    symbols = ", ".join(f"'{s}'" for s in SYMBOLS)
    text = (
        f"name = 'bl'\n[data]\nsource = 'csv'\npath = '{daily_csv}'\nsymbols = [{symbols}]\n"
        "start = 2020-06-01\nend = 2021-06-30\n"
        "[strategy]\nname = 'black_litterman'\nlookback_days = 60\nmax_weight = 0.4\n"
        "tau = 0.05\nrisk_aversion = 2.5\nview_confidences = [0.6, 0.4]\n"
        "[strategy.views]\n'BTC/USDT' = 0.3\n'ETH/USDT - SOL/USDT' = 0.05\n"
        "[rebalance]\nevery = '1M'\n[backtest]\nbenchmark = 'none'\n"
    )
    config = tmp_path / "bl.toml"
    config.write_text(text)
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--no-html"]) == 0
    written = (tmp_path / "out" / "config.toml").read_text()
    assert "[strategy.views]" in written and '"ETH/USDT - SOL/USDT" = 0.05' in written
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("'ETH/USDT - SOL/USDT'", "'ETH/USDT - SOL/USD'"))
    assert main(["run", str(bad), "--out", str(tmp_path / "bad")]) == 2
    assert "names 'SOL/USD', which is not a symbol of the data" in capsys.readouterr().err
    malformed = tmp_path / "malformed.toml"
    malformed.write_text(text.replace("'ETH/USDT - SOL/USDT'", "'ETH/USDT SOL/USDT'"))
    assert main(["run", str(malformed), "--out", str(tmp_path / "malformed")]) == 2
    assert "no operator between 'ETH/USDT' and 'SOL/USDT'" in capsys.readouterr().err
