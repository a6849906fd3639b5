"""Golden baselines for CI regression on returns: record a backtest, rerun it later, compare.

Modules: :mod:`~backtest.regress.suite` (record and check a set of experiments),
:mod:`~backtest.regress.baseline` (the baseline format), :mod:`~backtest.regress.comparison` (the
comparison with tolerances), :mod:`~backtest.regress.display` (reading a check) and
:mod:`~backtest.regress.plugin` (the pytest fixture ``backtest_regression``). Names are imported on
first use, so loading the pytest plugin costs nothing until a test asks for the fixture.
See docs/regression.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_MODULES = {
    "suite": "CheckReport Target check collect_targets compute_records record warm_kernels",
    "baseline": "FORMAT N_SAMPLES SIG_DIGITS WEIGHT_DECIMALS baseline_filename build_record "
    "data_fingerprint dumps equity_fingerprint library_versions load_baseline rebalance_weights "
    "write_baseline",
    "comparison": "Change Comparison Status compare config_changes data_changes",
    "display": "change_table headline render render_text",
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names.split()}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"backtest.regress.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'backtest.regress' has no attribute {name!r}")
