"""docs/faults.md stays true: every row names a test that exists, and the message it quotes is
the one that test asserts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "faults.md"
COLUMNS = ["#", "Fault", "What the user sees", "Exit", "What is kept", "Test"]
MUST_COVER = {
    "TOML errors": r"^TOML:",
    "CSV errors": r"^CSV:",
    "corrupt Parquet": r"Corrupt Parquet",
    "truncated Parquet": r"Truncated Parquet",
    "a kill during import": r"kill .* import",
    "two concurrent imports": r"Two imports .* same time",
    "an interrupted sweep": r"Ctrl-C .* sweep",
    "a missing baseline": r"without a baseline",
    "a missing network": r"No network",
    "missing keys": r"Missing API keys",
    "symbols with markup": r"Symbol with terminal markup",
    "symbols with path characters": r"Symbol with path characters",
}


def _rows() -> list[dict[str, str]]:
    lines = [line for line in TABLE.read_text().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS
    assert set(lines[1].replace("|", "").strip()) <= {"-", " "}
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        assert len(cells) == len(COLUMNS), line
        rows.append(dict(zip(COLUMNS, cells, strict=True)))
    return rows


ROWS = _rows()


def test_the_table_has_at_least_thirty_numbered_cases_and_covers_the_required_faults():
    assert len(ROWS) >= 30
    assert [row["#"] for row in ROWS] == [str(k) for k in range(1, len(ROWS) + 1)]
    for topic, pattern in MUST_COVER.items():
        assert any(re.search(pattern, row["Fault"]) for row in ROWS), topic
    assert all(re.fullmatch(r"-?\d+", row["Exit"]) for row in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row["#"] for row in ROWS])
def test_every_row_is_backed_by_a_test_that_asserts_its_message(row):
    ref = re.fullmatch(r"`(tests/[\w/]+\.py)::(test_\w+)`", row["Test"])
    assert ref, f"row {row['#']}: the Test cell must read `tests/...py::test_name`"
    path, name = ROOT / ref[1], ref[2]
    assert path.exists(), f"row {row['#']}: {ref[1]} does not exist"
    source = path.read_text()
    assert re.search(rf"^def {name}\(", source, re.M), f"row {row['#']}: no {name} in {ref[1]}"
    quoted = re.findall(r'"([^"]+)"', row["What the user sees"])
    for text in quoted:
        assert text.replace("\\|", "|") in source, (
            f"row {row['#']}: {ref[1]} does not assert {text!r}"
        )
