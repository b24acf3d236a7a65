"""Stage ``sources``: build or load the models, tokenizer, texts and SAEs; record their sizes and quality."""

from __future__ import annotations

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.sources import model_summary
from featgeom_tda.results import SourcesResult


def run(ctx: RunContext) -> SourcesResult:
    src = ctx.sources
    models = {name: model_summary(name, model, src.model_info.get(name, {})) for name, model in src.models.items()}
    return SourcesResult(models=models, saes=dict(src.sae_info), n_texts=len(src.texts))
