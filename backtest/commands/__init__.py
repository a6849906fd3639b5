"""CLI command groups. Each module exposes ``register(app)``; heavy imports stay inside the commands."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

# module name -> registered in this order; a module missing here is simply not registered
_MODULES = (
    "run",
    "cost_frontier",
    "robustness",
    "data",
    "sweep",
    "regress",
    "rebalance",
    "paper",
    "track",
)


def register_all(app: typer.Typer) -> None:
    for name in _MODULES:
        try:
            module = importlib.import_module(f"backtest.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"backtest.commands.{name}":
                continue
            raise
        module.register(app)


def check_out_dir(folder: Path, option: str = "--out") -> Path:
    """Return ``folder`` if it can be an output folder: a folder, or a path whose first existing
    part is one (it is created later). Commands call this before any work, so a bad path costs
    nothing.

    Raises
    ------
    NotADirectoryError
        ``folder`` (or a part of it) is a file; the message names ``option``, the path and the fix.
    """
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == folder else f"lies under the file {existing}"
        raise NotADirectoryError(
            f"`{option}` {folder} {where}, not a folder; pass {option} with a folder path "
            "(created if missing) or move the file away"
        )
    return folder
