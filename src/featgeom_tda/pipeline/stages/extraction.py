"""Stage ``extraction``: tokenize once, then write every layer's SAE activations on the same token rows.

When the two models' tokenizers differ, the rows are the character-aligned units of the compared texts
instead (:mod:`featgeom_tda.extraction.aligned`, ``row_ids="unit"``): every store holds the same units, their
token ids index one unit vocabulary (``extraction/units_vocabulary.json``), and ``extraction/tokens`` holds
the units laid out per text, so that the later stages read units as they read tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import all_layers, layers_of
from featgeom_tda.results import ExtractionResult, LayerActivations


def run(ctx: RunContext) -> ExtractionResult:
    from featgeom_tda.extraction.activations import ActivationSource

    src, recipe = ctx.sources, ctx.recipe
    ctx.stage_dir("extraction")
    ctx.units_vocabulary_path.unlink(missing_ok=True)
    if src.aligned:
        return _run_aligned(ctx)
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
    return _result(ctx, stores, n_docs=int(dataset.n_docs))


def _run_aligned(ctx: RunContext) -> ExtractionResult:
    """Align the compared texts into units and write every layer's activations on the kept units."""
    import json

    from featgeom_tda.extraction.activations import ActivationSource
    from featgeom_tda.extraction.aligned import extract_aligned_activations, kept_units, unit_vocabulary, units_dataset
    from featgeom_tda.extraction.alignment import align_tokens

    src, recipe = ctx.sources, ctx.recipe
    names = [m.name for m in recipe.models]
    tok_a, tok_b = (src.tokenizers[n] for n in names)
    alignment = align_tokens(tok_a, tok_b, src.compare_texts, max_unit_tokens=recipe.alignment.max_unit_tokens)
    alignment.save(ctx.alignment_dir)
    sides = [[ActivationSource(layer.key, src.models[layer.model], layer.hook, src.saes[layer.key], model_id=layer.model)
              for layer in layers_of(recipe, side)] for side in (0, 1)]
    bos = src.prepend_bos(names)
    stores = extract_aligned_activations(sides[0], sides[1], alignment, ctx.stores_dir, reduce=recipe.alignment.reduce,
                                         row_ids="unit", batch_size=recipe.batch_size, device=recipe.device,
                                         overwrite=True, prepend_bos=bos)
    keep = kept_units(alignment, sides[0][0].model, sides[1][0].model, prepend_bos=bos)
    units_dataset(alignment, keep, name=", ".join(recipe.dataset.files) or recipe.dataset.source).save(ctx.tokens_dir)
    ctx.units_vocabulary_path.write_text(json.dumps(unit_vocabulary(alignment)[0], ensure_ascii=False),
                                         encoding="utf-8")
    stats = {**alignment.stats(), "reduce": recipe.alignment.reduce, "n_kept": int(keep.sum()),
             "n_dropped_position0": int((~keep).sum()), "tokenizer_a": alignment.tokenizer_a,
             "tokenizer_b": alignment.tokenizer_b}
    return _result(ctx, stores, n_docs=alignment.n_documents, alignment=stats)


def _result(ctx: RunContext, stores: dict[str, Any], *, n_docs: int, alignment: dict | None = None) -> ExtractionResult:
    ctx.forget_activations()
    layers = {}
    for key, a in ctx.activations().items():
        layers[key] = LayerActivations(
            n_tokens=a.n_tokens, n_features=a.n_features, mean_l0=float(a.matrix.nnz / a.n_tokens),
            dead_on_data=float(np.mean(a.firing_counts() == 0)), store=str(stores[key].path),
        )
    n_tokens = int(next(iter(layers.values())).n_tokens)
    return ExtractionResult(n_docs=n_docs, n_tokens=n_tokens, layers=layers, alignment=alignment)
