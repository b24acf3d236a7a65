"""Stage ``extraction``: tokenize once, then write every layer's SAE activations on the same token rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import layers_of
from featgeom_tda.results import ExtractionResult, LayerActivations


def run(ctx: RunContext) -> ExtractionResult:
    from featgeom_tda.extraction.activations import ActivationSource, extract_activations, tokenize_documents

    src, recipe = ctx.sources, ctx.recipe
    ctx.stage_dir("extraction")
    dataset = tokenize_documents(
        src.tokenizer, src.texts, max_length=recipe.dataset.max_length,
        dataset_name=recipe.dataset.name or recipe.dataset.source,
    )
    dataset = limit_tokens(dataset, recipe.token_budget)
    dataset.save(ctx.tokens_dir)
    sources = [
        ActivationSource(layer.key, src.models[layer.model], layer.hook, src.saes[layer.key], model_id=layer.model)
        for side in (0, 1) for layer in layers_of(recipe, side)
    ]
    # every store holds the same token rows in the same order; each model runs once per batch. The stores are
    # this run's cache of the stage: when the stage's inputs changed, its old stores are rebuilt (overwrite)
    stores = extract_activations(sources, dataset, ctx.stores_dir, batch_size=recipe.batch_size, device=recipe.device,
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


def limit_tokens(dataset: Any, budget: int) -> Any:
    """Keep the first documents whose real tokens fit in ``budget`` (at least one document)."""
    from featgeom_tda.extraction.activations import TokenizedDataset

    n = int(max(1, np.searchsorted(np.cumsum(dataset.lengths), budget, side="right")))
    if n >= dataset.n_docs:
        return dataset
    return TokenizedDataset(
        dataset.tokens[:n], dataset.attention_mask[:n], bos=dataset.bos, tokenizer_name=dataset.tokenizer_name,
        tokenizer_hash=dataset.tokenizer_hash, dataset_name=dataset.dataset_name, pad_token_id=dataset.pad_token_id,
        max_length=dataset.max_length,
    )
