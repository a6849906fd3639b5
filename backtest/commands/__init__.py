"""CLI command groups. Each module exposes ``register(app)``; heavy imports stay inside the commands."""

from __future__ import annotations

import importlib

import typer

# module name -> registered in this order; a module missing here is simply not registered
_MODULES = ("run", "data", "sweep", "regress", "rebalance")


def register_all(app: typer.Typer) -> None:
    for name in _MODULES:
        try:
            module = importlib.import_module(f"backtest.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"backtest.commands.{name}":
                continue
            raise
        module.register(app)
