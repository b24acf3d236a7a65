"""The HTML report: sections of tables, figures (PNG inlined as data URIs) and local links.

Every string is escaped by the template engine (autoescape), so text that came from a dataset (tokens, feature
labels) is shown as text and never runs. The file loads nothing from the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Table", "Figure", "Section", "ScoreCell", "render_report", "write_report"]


@dataclass
class ScoreCell:
    """A score beside its null in one table cell: ``score (null mean ± std, p)``; four columns in the CSV."""

    score: float | None
    null_mean: float | None = None
    null_std: float | None = None
    p_value: float | None = None

    def csv_values(self) -> list[float | None]:
        return [self.score, self.null_mean, self.null_std, self.p_value]

@dataclass
class Table:
    """A table: ``columns`` names, ``rows`` of values; ``csv_name`` also writes it as CSV beside the report."""

    caption: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    csv_name: str | None = None


@dataclass
class Figure:
    """A PNG figure, inlined into the HTML."""

    caption: str
    png: str | Path


@dataclass
class Section:
    """One report section; ``id`` is its anchor."""

    id: str
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, relative path)
    notes: list[str] = field(default_factory=list)
    how_to_read: str = ""  # one line under the title: what to look at first
    embeds: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative path) shown in an iframe
    code: list[tuple[str, str]] = field(default_factory=list)  # (caption, YAML text), collapsed


def check_local_link(href: Any, *, where: str) -> None:
    """Refuse anything but a relative path: no scheme (``https:``, ``javascript:``, ``data:``), no host, not absolute."""
    from urllib.parse import urlsplit

    if not isinstance(href, str) or not href.strip():
        raise ValueError(f"{where}: link {href!r} must be a non-empty relative path")
    text = "".join(href.split()).lower()  # browsers ignore whitespace and control characters inside a scheme
    parts = urlsplit(text)
    if parts.scheme or parts.netloc or text.startswith(("/", "\\")) or ":" in text.split("/")[0]:
        raise ValueError(f"{where}: link {href!r} is not a local relative path")


def _csv_table(t: Table) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows for the CSV: a column of :class:`ScoreCell` becomes score, null mean, null std, p-value."""
    score_cols = {j for row in t.rows for j, v in enumerate(row) if isinstance(v, ScoreCell)}
    columns: list[str] = []
    for j, c in enumerate(t.columns):
        columns += [c, f"{c} null mean", f"{c} null std", f"{c} p-value"] if j in score_cols else [c]
    rows = []
    for row in t.rows:
        out: list[Any] = []
        for j, v in enumerate(row):
            if j in score_cols:
                out += v.csv_values() if isinstance(v, ScoreCell) else [v, None, None, None]
            else:
                out.append(v)
        rows.append(out)
    return columns, rows


def render_report(title: str, sections: Sequence[Section], *, subtitle: str = "", summary: Sequence[tuple[str, Any]] = ()) -> str:
    """The report as one HTML string."""
    from featgeom_tda.viz.templating import render_template

    for s in sections:
        for _, href in [*s.links, *s.embeds]:
            check_local_link(href, where=f"section {s.id!r}")
    return render_template("report.html.j2", title=title, subtitle=subtitle, sections=sections, summary=list(summary))


def write_report(
    out_dir: str | Path,
    title: str,
    sections: Sequence[Section],
    *,
    subtitle: str = "",
    summary: Sequence[tuple[str, Any]] = (),
    filename: str = "report.html",
) -> Path:
    """Write ``report.html`` and each table that has a ``csv_name`` into ``out_dir``; return the HTML path."""
    from featgeom_tda.report.tables import write_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for s in sections:
        for t in s.tables:
            if t.csv_name:
                write_csv(out / t.csv_name, *_csv_table(t))
    path = out / filename
    path.write_text(render_report(title, sections, subtitle=subtitle, summary=summary), encoding="utf-8")
    return path
