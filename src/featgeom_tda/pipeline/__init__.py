"""A recipe run: the runner, its typed run context, one module per stage, and the synthetic self-check."""

from featgeom_tda.pipeline.runner import RECIPE_COPY, STAGES, Pipeline, StageRecord, run_recipe, run_recipe_file

__all__ = ["RECIPE_COPY", "STAGES", "Pipeline", "StageRecord", "run_recipe", "run_recipe_file"]
