"""Robustness of a backtest: the whole pipeline rerun on resampled markets.

* :func:`bootstrap` — stationary block bootstrap of the market, the whole walk-forward per sample
  (:mod:`backtest.robustness.run`); its :class:`Bootstrap` gives the intervals of every metric and
  the probability that one strategy beats another on the same paths;
* :func:`resample_market`, :func:`optimal_block_length`, :class:`SourcePools` — the resampling
  (:mod:`backtest.robustness.resample`).

Design and formulas: docs/robustness.md.
"""

from backtest.robustness.resample import (
    SourcePools,
    bootstrap_sources,
    market_block_length,
    optimal_block_length,
    resample_market,
)
from backtest.robustness.run import FAN_QUANTILES, HEADLINE, METRICS, Bootstrap, bootstrap

__all__ = [
    "FAN_QUANTILES",
    "HEADLINE",
    "METRICS",
    "Bootstrap",
    "SourcePools",
    "bootstrap",
    "bootstrap_sources",
    "market_block_length",
    "optimal_block_length",
    "resample_market",
]
