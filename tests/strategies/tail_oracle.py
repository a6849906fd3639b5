"""Tail-risk measures written from the Rockafellar-Uryasev definition, independently of
``strategies.tail_lp``: ``CVaR = min_a a + E[(L - a)+] / (1 - beta)`` over the scenarios' losses
``L`` (the minimum sits at one of the losses: the function is convex and piecewise linear with its
breaks there), and CDaR the same on the drawdowns of the uncompounded path (peak starting at 0)."""

from __future__ import annotations

import numpy as np


def ru_tail(losses: np.ndarray, beta: float) -> float:
    losses = np.asarray(losses, dtype=np.float64)
    excess = np.maximum(losses[None, :] - losses[:, None], 0.0).mean(axis=1)
    return float(np.min(losses + excess / (1.0 - beta)))


def ru_cvar(portfolio_returns: np.ndarray, beta: float) -> float:
    return ru_tail(-np.asarray(portfolio_returns, dtype=np.float64), beta)


def ru_cdar(portfolio_returns: np.ndarray, beta: float) -> float:
    path = np.concatenate([[0.0], np.cumsum(portfolio_returns)])
    drawdown = (np.maximum.accumulate(path) - path)[1:]
    return ru_tail(drawdown, beta)


ORACLE = {"cvar": ru_cvar, "cdar": ru_cdar}
