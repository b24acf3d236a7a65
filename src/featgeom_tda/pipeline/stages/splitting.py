"""Stage ``splitting``: feature splitting across SAE widths at one layer, and each similarity score against width.

The layer is model A's layer of the main pair. Its SAE spec is trained at every ``splitting.width_multiples``
(the layer's own SAE is reused where the spec is the same; the others are trained on that model's SAE-training
rows and kept in ``cache_dir/saes`` like any recipe SAE) and encoded on the compared rows. For each consecutive
(narrow, wide) pair, :func:`~featgeom_tda.analyses.matching.split_families` assigns every live wide feature to
the narrow feature it correlates with best (one-to-many) and keeps it as a child when the correlation and the
decoder cosine pass the recipe's thresholds. Every width is also matched against model B's main-pair SAE with
the run's matching options and scored like the grid (same metrics, permutation nulls, subset baselines), so the
report reads each score against width.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import Layer, main_pair, pair_key
from featgeom_tda.results import SplitStep, SplittingResult, SplittingWidth

__all__ = ["run"]

MIN_PAIRS = 10
N_EXAMPLE_FAMILIES = 8  # largest families listed per step
N_EXAMPLE_CHILDREN = 8


def run(ctx: RunContext) -> SplittingResult:
    spec = ctx.recipe.splitting
    if not spec.enabled:
        return SplittingResult(skipped="feature splitting is switched off in the recipe (splitting: {enabled: true})")
    a, b = main_pair(ctx.recipe)
    base = dict(layer=a.key, against=b.key, min_correlation=spec.min_correlation, min_cosine=spec.min_cosine)
    if ctx.rows_are_units():
        return SplittingResult(skipped="the widths are encoded from one hook activation per token row; these rows are "
                                       "units aligned across two tokenizers, so it did not run", **base)
    own = _layer_sae_spec(ctx, a)
    if own.kind != "train":
        return SplittingResult(skipped=f"{a.label}'s SAE is {own.kind}, not trained by the recipe: the other widths "
                                       "need a training spec (architecture, k, training_tokens)", **base)
    specs = [dataclasses.replace(own, width_multiple=w, training_tokens=spec.training_tokens or own.training_tokens)
             for w in spec.width_multiples]
    saes = _saes(ctx, a, own, specs)
    x = ctx.hook_activations([a])[a.key]
    per_width = [_encode(ctx, a, sae, x, reuse=(s == own)) for s, (sae, _) in zip(specs, saes)]
    widths = [_width_row(ctx, a, b, s, sae, acts, x, reused=(s == own))
              for s, (sae, _), acts in zip(specs, saes, per_width)]
    steps = [_step(ctx, specs[i], specs[i + 1], saes[i][0], saes[i + 1][0], per_width[i], per_width[i + 1])
             for i in range(len(specs) - 1)]
    figures = _figures(ctx, a, b, widths, steps)
    return SplittingResult(widths=widths, steps=steps, figures=figures, **base)


def _layer_sae_spec(ctx: RunContext, layer: Layer) -> Any:
    model = next(m for m in ctx.recipe.models if m.name == layer.model)
    return next(x.sae for x in model.layers if x.hook == layer.hook)


def _saes(ctx: RunContext, a: Layer, own: Any, specs: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """The SAE of each spec: the layer's own where the spec is the same, else trained or from the cache."""
    from featgeom_tda.pipeline.sources import sae_at_widths

    others = [s for s in specs if s != own]
    trained = iter(sae_at_widths(ctx.recipe, ctx.sources, a, others) if others else [])
    return [(ctx.sources.saes[a.key], {}) if s == own else next(trained) for s in specs]


def _encode(ctx: RunContext, a: Layer, sae: Any, x: np.ndarray, *, reuse: bool) -> Any:
    """FeatureActivations of ``sae`` on the compared rows (the extraction store for the layer's own SAE)."""
    import torch

    from featgeom_tda.core.types import FeatureActivations, Provenance
    from featgeom_tda.extraction.encoding import encode_batch

    real = ctx.activations()[a.key]
    if reuse:
        return real
    matrix = encode_batch(sae, torch.from_numpy(x)[None])
    return FeatureActivations(
        matrix, token_ids=real.token_ids, doc_index=real.doc_index, position=real.position,
        provenance=dataclasses.replace(real.provenance or Provenance(), sae_id=f"{int(sae.cfg.d_sae)} features (splitting)"),
    )


def _width_row(ctx: RunContext, a: Layer, b: Layer, sspec: Any, sae: Any, acts: Any, x: np.ndarray, *,
               reused: bool) -> SplittingWidth:
    from featgeom_tda.pipeline.stages.geometry import decoder_scores
    from featgeom_tda.pipeline.stages.matching import match_options
    from featgeom_tda.sources.saes import sae_metrics
    from featgeom_tda.sources.weights import decoder_weights

    fit = sae_metrics(sae, x)
    row = dict(width_multiple=int(sspec.width_multiple), n_features=int(sae.cfg.d_sae), fvu=_finite(fit["fvu"]),
               l0=_finite(fit["l0"]), dead_fraction=_finite(fit["dead_fraction"]), reused=reused)
    key = pair_key(a, b)
    m = ctx.matchings()[key] if reused else ctx.engine.match_features(acts, ctx.activations()[b.key],
                                                                       **match_options(ctx))
    if len(m) < MIN_PAIRS:
        return SplittingWidth(n_pairs=len(m), mean_correlation=None, skipped=f"fewer than {MIN_PAIRS} matched pairs",
                              **row)
    scores = decoder_scores(ctx, decoder_weights(sae).weights, ctx.decoder_rows(b), m)
    return SplittingWidth(n_pairs=len(m), mean_correlation=float(np.mean(m.correlation)), metrics=scores, **row)


def _step(ctx: RunContext, narrow_spec: Any, wide_spec: Any, narrow: Any, wide: Any, acts_n: Any,
          acts_w: Any) -> SplitStep:
    from featgeom_tda.analyses.matching import split_families
    from featgeom_tda.sources.weights import decoder_weights

    spec = ctx.recipe.splitting
    fam = split_families(acts_n, acts_w, decoder_weights(narrow).weights, decoder_weights(wide).weights,
                         min_correlation=spec.min_correlation, min_cosine=spec.min_cosine)
    families = fam.families()
    largest = sorted(families, key=lambda p: (-families[p].size, p))[:N_EXAMPLE_FAMILIES]
    examples = [{"parent": int(p), "n_children": int(families[p].size),
                 "children": families[p][:N_EXAMPLE_CHILDREN].tolist(),
                 "child_correlation": [round(float(c), 4) for c in fam.correlation[families[p][:N_EXAMPLE_CHILDREN]]],
                 "child_cosine": [round(float(c), 4) for c in fam.cosine[families[p][:N_EXAMPLE_CHILDREN]]],
                 "reconstruction_cosine": _finite(fam.reconstruction_cosine[p]),
                 "best_child_cosine": _finite(fam.best_child_cosine[p])} for p in largest]
    summary = {k: (_finite(v) if isinstance(v, float) else v) for k, v in fam.summary().items()}
    return SplitStep(narrow=int(narrow_spec.width_multiple), wide=int(wide_spec.width_multiple), summary=summary,
                     size_distribution={str(k): int(v) for k, v in fam.size_distribution().items()}, examples=examples)


def _figures(ctx: RunContext, a: Layer, b: Layer, widths: list[SplittingWidth], steps: list[SplitStep]) -> dict[str, str]:
    from featgeom_tda.analyses.geometry.baselines import METRIC_LABELS
    from featgeom_tda.viz.splitting import plot_family_sizes, plot_scores_by_width

    out = ctx.stage_dir("splitting")
    figures = {}
    metrics = ctx.recipe.geometry.metrics
    scores = {METRIC_LABELS[m]: [w.metrics[m].score if m in w.metrics else None for w in widths] for m in metrics}
    nulls = {METRIC_LABELS[m]: [w.metrics[m].null_mean if m in w.metrics else None for w in widths] for m in metrics}
    path = out / "scores_by_width.png"
    plot_scores_by_width([w.n_features for w in widths], scores, nulls, path,
                         title=f"{a.label} at each width, matched against {b.label}")
    figures["Each score against the width of A's SAE (dashed: its random-pairing null)"] = str(path)
    dists = {f"{s.narrow}x -> {s.wide}x d_model": s.size_distribution for s in steps if s.size_distribution}
    if dists:
        path = out / "family_sizes.png"
        plot_family_sizes(dists, path, title=f"split families at {a.label}")
        figures["Children per narrow feature, each narrow -> wide step"] = str(path)
    return figures


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
