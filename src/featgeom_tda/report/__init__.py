"""Comparison reports: one self-contained HTML file + results.json + CSV tables."""

from featgeom_tda.report.html import Figure, Section, Table, render_report, write_report
from featgeom_tda.report.tables import write_csv, write_results_json

__all__ = ["Figure", "Section", "Table", "render_report", "write_report", "write_csv", "write_results_json"]
