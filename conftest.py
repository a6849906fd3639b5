"""Docstring examples of the four packages run with the tests (``--doctest-modules``; pyproject.toml).

An example that reads a CSV file by its bare name (``load_csv("binance_spot_usdt_1d.csv.gz")``)
finds it the way the library does, in :func:`datasets.shared_data_dir`; when the file is not
there the example is skipped with the reason, never failed. Fixtures for the test suite live in
``tests/conftest.py``.
"""

from __future__ import annotations

import re

import pytest

# a string literal naming a CSV file in an example's source
CSV_NAME = re.compile(r"""["']([^"'/\\]+\.csv(?:\.gz)?)["']""")
# tests/conftest.py counts the skips whose reason starts with this in its summary
MISSING_DATA = "needs the shared reference data"


def pytest_runtest_setup(item: pytest.Item) -> None:
    dtest = getattr(item, "dtest", None)  # a doctest.DocTest on doctest items only
    if dtest is None:
        return
    names = sorted({n for ex in dtest.examples for n in CSV_NAME.findall(ex.source)})
    if not names:
        return
    from datasets import shared_data_dir
    from datasets.csvimport import resolve_csv_path
    from datasets.errors import DataError

    missing = []
    for name in names:
        try:
            resolve_csv_path(name)
        except DataError:
            missing.append(name)
    if missing:
        pytest.skip(
            f"{MISSING_DATA} ({', '.join(missing)}) in {shared_data_dir() or '../shared/data'}: "
            "set ALPHAPULSE_SHARED_DATA to the folder that holds it"
        )
