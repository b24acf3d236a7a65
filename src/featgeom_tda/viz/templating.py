"""The one HTML template system: jinja2 with autoescape on and strict undefined names.

The report and the Mapper page are both rendered here, so every string that came from data is escaped the
same way. Templates live in ``featgeom_tda/viz/templates/``.
"""

from __future__ import annotations

import base64
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["render_template", "format_value", "png_data_uri", "yaml_tokens", "TEMPLATES"]

TEMPLATES = Path(__file__).with_name("templates")


def format_value(value: Any) -> str:
    """A table cell: '–' for None and non-finite floats, 4 significant digits, scientific when tiny or huge."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def yaml_tokens(text: str) -> list[list[tuple[str, str]]]:
    """YAML text as lines of (kind, text) pieces for highlighting: "key", "comment", "punct" or "value".

    Only a display aid: the template escapes every piece, so no text is ever markup.
    """
    import re

    lines = []
    for line in str(text).splitlines():
        pieces: list[tuple[str, str]] = []
        body, hash_, comment = line.partition(" #") if not line.lstrip().startswith("#") else ("", "", line)
        match = re.match(r"^(\s*(?:- )?)([^:#\s][^:]*?)(:)(\s|$)(.*)$", body)
        if match:
            indent, key, colon, space, rest = match.groups()
            pieces += [("punct", indent), ("key", key), ("punct", colon + space), ("value", rest)]
        elif body:
            pieces.append(("value", body))
        if comment:
            pieces.append(("comment", (" #" if hash_ else "") + comment))
        lines.append(pieces)
    return lines


def png_data_uri(png: str | Path) -> str:
    """A PNG file as a data URI, so the page needs no file beside it."""
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode("ascii")


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["fmt"] = format_value
    env.filters["data_uri"] = png_data_uri
    env.filters["yaml_tokens"] = yaml_tokens
    return env


def render_template(name: str, **context: Any) -> str:
    """Render ``templates/<name>`` with ``context`` (every string autoescaped)."""
    return _environment().get_template(name).render(**context)
