"""The shared reference data: found through $ALPHAPULSE_SHARED_DATA (or ../shared/data), tests that
need it skip with a reason naming the folder, and the summary counts them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

from tests.conftest import ROOT, SHARED_FILES

SELECTION = "tests/datasets/test_exchange.py"  # 5 tests need the data, 9 do not


def _pytest(data_dir) -> str:
    env = {**os.environ, "ALPHAPULSE_SHARED_DATA": str(data_dir)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", SELECTION],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_missing_data_skips_with_a_reason_and_is_counted(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _pytest(empty)
    skipped = int(re.search(r"(\d+) skipped", out).group(1))
    assert skipped == 5 and re.search(r"\b9 passed", out)
    assert (
        f"{skipped} tests skipped for missing shared data (looked in {empty}; "
        "set ALPHAPULSE_SHARED_DATA to the data folder)" in out
    )
    assert "needs the shared reference data (binance_spot_usdt_1d.csv.gz" in out
    assert f") in {empty}: set ALPHAPULSE_SHARED_DATA" in out


def test_the_environment_variable_finds_the_data(tmp_path, shared_data):
    elsewhere = tmp_path / "moved"
    elsewhere.mkdir()
    for name in SHARED_FILES:
        (elsewhere / name).symlink_to(shared_data / name)
    out = _pytest(elsewhere)
    assert re.search(r"\b14 passed", out) and "skipped" not in out


def test_the_test_extras_include_hypothesis():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(req.startswith("hypothesis") for req in extras["dev"])
