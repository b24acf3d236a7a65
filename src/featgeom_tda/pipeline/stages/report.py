"""Stage ``report``: render every earlier stage's typed result as HTML, results.json and CSV tables."""

from __future__ import annotations

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.results import ReportResult


def run(ctx: RunContext) -> ReportResult:
    from featgeom_tda.pipeline.stages.explorer import write_run_explorer
    from featgeom_tda.report.comparison import write_comparison_report

    out = ctx.stage_dir("report")
    explorer = write_run_explorer(ctx, out / "explorer.html")
    return write_comparison_report(
        out, recipe=ctx.recipe.to_dict(), results=ctx.stage_results, stage_seconds=ctx.stage_seconds,
        explorer=explorer.name,
    )
