"""Exceptions of the `backtest` package (one flat module)."""

from __future__ import annotations


class ConfigError(ValueError):
    """An experiment config is invalid. ``errors`` holds ``(location, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in errors))


class EngineError(ValueError):
    """Inputs to the walk-forward engine or the kernel are inconsistent."""


class RegressionError(ValueError):
    """A regression baseline is missing, corrupt or does not match its config."""


class LiveError(ValueError):
    """Bad input to the live analyzer (weights, total value, universe, missing market data)."""
