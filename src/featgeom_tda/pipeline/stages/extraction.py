"""Stage ``extraction``: tokenize once, then write every layer's SAE activations on the same token rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import all_layers
from featgeom_tda.results import ExtractionResult, LayerActivations


def run(ctx: RunContext) -> ExtractionResult:
    from featgeom_tda.extraction.activations import ActivationSource

    src, recipe = ctx.sources, ctx.recipe
    ctx.stage_dir("extraction")
    dataset = src.tokens.compare  # the same rows for every layer; held out from SAE training for text files
    dataset.save(ctx.tokens_dir)
    sources = [
        ActivationSource(layer.key, src.models[layer.model], layer.hook, src.saes[layer.key], model_id=layer.model)
        for layer in all_layers(recipe)
    ]
    # every store holds the same token rows in the same order; each model runs once per batch. The stores are
    # this run's cache of the stage: when the stage's inputs changed, its old stores are rebuilt (overwrite)
    stores = ctx.engine.extract_activations(sources, dataset, ctx.stores_dir, batch_size=recipe.batch_size, device=recipe.device,
                                 overwrite=True)
    ctx.forget_activations()
    layers = {}
    for key, a in ctx.activations().items():
        layers[key] = LayerActivations(
            n_tokens=a.n_tokens, n_features=a.n_features, mean_l0=float(a.matrix.nnz / a.n_tokens),
            dead_on_data=float(np.mean(a.firing_counts() == 0)), store=str(stores[key].path),
        )
    n_tokens = int(next(iter(layers.values())).n_tokens)
    return ExtractionResult(n_docs=int(dataset.n_docs), n_tokens=n_tokens, layers=layers)
