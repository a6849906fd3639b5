"""Shared plumbing of the report figures: colours, the plotly template, escaping, compact arrays.

Time axes carry epoch milliseconds and numeric arrays are float32/float64 NumPy (compact base64 typed
arrays in the page); long series are thinned to ``max_points`` evenly spaced positions; user text goes
through :func:`plot_text`.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
from plotly.colors import qualitative

LINE_COLORS = list(qualitative.D3)  # 10 colours for lines
AREA_COLORS = [
    *qualitative.T10,
    *qualitative.D3,
    *qualitative.Set3,
]  # 32 colours for stacked weights
BENCHMARK_LINE = {
    "color": "#555555",
    "dash": "dot",
    "width": 1.5,
}  # plotly line style of a benchmark
_TEMPLATE = {
    "layout": {
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "colorway": LINE_COLORS,
        "xaxis": {"gridcolor": "#eeeeee", "zeroline": False, "linecolor": "#cccccc"},
        "yaxis": {"gridcolor": "#eeeeee", "zeroline": False, "linecolor": "#cccccc"},
        "hoverlabel": {"namelength": -1},
        "legend": {"orientation": "h", "y": -0.15},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
    }
}
MAX_LINE_POINTS = 4000
MAX_AREA_POINTS = 500
MAX_BARS = 400


def plot_text(value: object) -> str:
    """Escape user text for plotly: ``<``, ``>`` and ``&`` become entities that plotly shows literally.

    >>> plot_text("<script>x</script>")
    '&lt;script&gt;x&lt;/script&gt;'
    """
    return html.escape(str(value), quote=False)


def epoch_ms(index: pd.Index) -> np.ndarray:
    """Epoch milliseconds (float64) of a DatetimeIndex, for a plotly ``date`` axis (read as UTC)."""
    return pd.DatetimeIndex(index).as_unit("ns").asi8 / 1e6


def as_float32(values: Any) -> np.ndarray:
    """``values`` as a float32 array (half the page bytes of float64; plenty for a plot)."""
    return np.asarray(values, dtype=np.float32)


def thin_positions(n: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spaced positions in ``range(n)``, first and last included."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def figure_layout(title: str, height: int = 380, **extra: Any) -> dict[str, Any]:
    """A plotly layout on the report template: escaped ``title``, ``height`` in px, a date x axis;
    ``extra`` keys override or add layout entries."""
    layout: dict[str, Any] = {
        "title": {"text": plot_text(title), "x": 0.01},
        "height": height,
        "template": _TEMPLATE,
        "xaxis": {"type": "date"},
    }
    layout.update(extra)
    return layout


def line_trace(series: pd.Series, name: str, max_points: int, **style: Any) -> dict[str, Any]:
    """A plotly line trace of ``series`` (DatetimeIndex) thinned to at most ``max_points`` points;
    ``style`` adds trace keys (``line``, ``legendgroup``, ...)."""
    pos = thin_positions(len(series), max_points)
    return {
        "type": "scatter",
        "mode": "lines",
        "name": plot_text(name),
        "x": epoch_ms(series.index[pos]),
        "y": as_float32(series.to_numpy(dtype=np.float64)[pos]),
        **style,
    }
