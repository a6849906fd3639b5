"""The self-contained HTML page: Jinja templates, plotly.js inlined once, escaped figure JSON, and
atomic writes of the page and its JSON beside it.

Shared by :mod:`reports.html` (tearsheet, comparison) and :mod:`reports.sweep`: :func:`render_page`,
:func:`figure_blocks`, :func:`json_safe`, :func:`write_text_atomic` and :func:`ensure_out_dir`.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

_TEMPLATES = Path(__file__).with_name("templates")


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, anything else unknown -> str (for JSON files)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


@functools.lru_cache(maxsize=1)
def _file_mode() -> int:
    """0o666 minus the process umask: what ``open()`` would give (mkstemp alone gives 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomic(path: Path, text: str) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.lru_cache(maxsize=4)
def _environment(inline: tuple[tuple[str, str], ...] = ()) -> Any:
    """The Jinja environment of the template files, and of ``inline`` ``(name, source)`` templates."""
    import jinja2

    loader: jinja2.BaseLoader = jinja2.FileSystemLoader(str(_TEMPLATES))
    if inline:
        loader = jinja2.ChoiceLoader([jinja2.DictLoader(dict(inline)), loader])
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "n/a" if v is None or not math.isfinite(float(v)) else f"{v:.2%}"
    return env


@functools.lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


def _figure_json(fig: Any) -> str:
    """Figure JSON that is safe inside ``<script type="application/json">`` (no ``<``, ``>``, ``&``)."""
    raw = fig.to_json(validate=False, pretty=False)
    return (
        raw.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def figure_blocks(figures: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Template entries ``id, key, json`` of ``(key, plotly figure)`` pairs, the JSON escaped for a
    ``<script type="application/json">`` block."""
    from markupsafe import Markup

    return [
        {"id": f"fig-{i}", "key": key, "json": Markup(_figure_json(fig))}
        for i, (key, fig) in enumerate(figures)
    ]


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("alphapulse-backtest", "plotly", "pandas", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def render_page(
    template: str, context: Mapping[str, Any], *, inline: Mapping[str, str] | None = None
) -> str:
    """The HTML of ``template`` rendered with ``context`` plus ``plotly_js`` (inlined),
    ``versions`` and ``generated`` (UTC time).

    ``template`` names a file of ``reports/templates`` or a key of ``inline`` (template sources by
    name, which may extend the files, e.g. ``{% extends "_base.html.j2" %}``).
    """
    from markupsafe import Markup

    page = _environment(tuple(sorted((inline or {}).items()))).get_template(template)
    return page.render(
        plotly_js=Markup(_plotly_js()),
        versions=_versions(),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **context,
    )


def ensure_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a Path, created if missing; a ValueError when it is a file."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"`out_dir` must be a directory; got the file {out} (choose another --out)"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out
