"""Run every benchmarks/bench_*.py and rewrite the results table in benchmarks/README.md.

Usage: ``python benchmarks/run_all.py [NAME ...]`` (names without the ``bench_`` prefix).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import fmt_seconds  # noqa: E402

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in (
        "numpy",
        "pandas",
        "numba",
        "scipy",
        "vectorbt",
        "PyPortfolioOpt",
        "skfolio",
        "pyarrow",
    ):
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{name} {version(name)}")
    return ", ".join(parts)


def main(names: list[str]) -> int:
    files = sorted(HERE.glob("bench_*.py"))
    if names:
        files = [f for f in files if f.stem.removeprefix("bench_") in names]
    rows = []
    for path in files:
        print(f"== {path.name}", flush=True)
        rows += [dict(r, script=path.name) for r in _load(path).main()]
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} (UTC). Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; {_versions()}.",
        "",
        "| script | job | ours | peer | peer time | ratio | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['ratio']:.1f}x" if r.get("ratio") is not None else "-"
        lines.append(
            f"| {r['script']} | {r['job']} | {fmt_seconds(r['ours_s'])} | {r['peer']} | "
            f"{fmt_seconds(r['peer_s'])} | {ratio} | {r.get('target', '')} {r.get('note', '')} |"
        )
    readme = HERE / "README.md"
    text = readme.read_text() if readme.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START in text and END in text and not names:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        readme.write_text(f"{head}{START}\n" + "\n".join(lines) + f"\n{END}{tail}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
