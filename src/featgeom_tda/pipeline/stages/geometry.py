"""Stage ``geometry``: similarity of paired decoder rows per layer pair (with nulls), concept subspaces, spectra."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import Layer, all_layers, layer_pairs, layers_of, main_pair, pair_key
from featgeom_tda.pipeline.recipe import GeometrySpec
from featgeom_tda.pipeline.timing import PartTimes
from featgeom_tda.results import GeometryResult, MetricScore, PairGeometry, SpectraResult, SpectrumRow

MIN_PAIRS = 10  # fewer matched pairs than this: the metrics are not computed

log = logging.getLogger(__name__)


def run(ctx: RunContext) -> GeometryResult:
    from featgeom_tda.pipeline.stages.controls import controls

    out = ctx.stage_dir("geometry")
    timed = PartTimes("geometry")
    grid = timed("grid", lambda: {pair_key(a, b): _pair_geometry(ctx, a, b) for a, b in layer_pairs(ctx.recipe)})
    result = GeometryResult(
        grid=grid, heatmaps=_heatmaps(ctx, grid, out), subspaces=timed("subspaces", lambda: _concept_subspaces(ctx)),
        spectra=timed("spectra", lambda: _spectra(ctx, out)),
        controls=timed("controls", lambda: controls(ctx, metric_options, decoder_scores)),
        keyword_subspaces=timed("keyword subspaces", lambda: _keyword_subspaces(ctx)),
    )
    timed.log()
    return result


def metric_options(metric: str, spec: GeometrySpec) -> dict[str, Any]:
    """The recipe's options for one metric."""
    if metric in ("svcca", "pwcca"):
        return {"variance": spec.svcca_variance}
    if metric in ("knn_jaccard", "mutual_knn"):
        return {"k": spec.knn_k}
    if metric == "rsa":
        # cosine dissimilarities are invariant to rotations of decoder space; correlation ones are not
        return {"rdm": "cosine"}
    return {}


def decoder_scores(ctx: RunContext, wa: np.ndarray, wb: np.ndarray, m: Any) -> dict[str, MetricScore]:
    """Each recipe metric of the matched decoder rows ``wa[m.index_a]``, ``wb[m.index_b]`` with its random-pairing
    permutation null and the random-subset baseline (the grid's scores; the random-model control reuses them)."""
    from featgeom_tda.analyses.geometry import random_subset_baselines

    spec, seed = ctx.recipe.geometry, ctx.recipe.seed
    X, Y = wa[m.index_a], wb[m.index_b]
    options = {metric: metric_options(metric, spec) for metric in spec.metrics}
    start = time.perf_counter()
    nulls = ctx.engine.nulls(options, X, Y, n_permutations=spec.n_permutations, seed=seed)
    middle = time.perf_counter()
    subsets = random_subset_baselines(options, wa, wb, len(m), n_draws=spec.n_subset_draws, seed=seed)
    seconds = (middle - start, time.perf_counter() - middle)
    scores = {
        metric: MetricScore(
            score=res.score, null_mean=res.null_mean, null_std=res.null_std, p_value=res.p_value,
            subset_mean=float(np.mean(subsets[metric].scores)), subset_std=float(np.std(subsets[metric].scores)),
        )
        for metric, res in nulls.items()
    }
    log.info("%d pairs: nulls %.1f s, subsets %.1f s", len(m), *seconds)
    return scores


def _pair_geometry(ctx: RunContext, a: Layer, b: Layer) -> PairGeometry:
    from featgeom_tda.analyses.geometry import svcca_result

    spec = ctx.recipe.geometry
    m = ctx.matchings()[pair_key(a, b)]
    if len(m) < MIN_PAIRS:
        return PairGeometry(a=a.key, b=b.key, n_pairs=len(m), skipped=f"fewer than {MIN_PAIRS} matched pairs")
    wa, wb = ctx.decoder_rows(a), ctx.decoder_rows(b)
    X, Y = wa[m.index_a], wb[m.index_b]
    scores = decoder_scores(ctx, wa, wb, m)
    full = svcca_result(X, Y, variance=spec.svcca_variance)
    return PairGeometry(
        a=a.key, b=b.key, n_pairs=len(m), metrics=scores,
        svcca_single_component=svcca_result(X, Y, n_components=1).score,
        svcca_components=[full.n_components_x, full.n_components_y], svcca_details=full.summary(),
    )


def _heatmaps(ctx: RunContext, grid: dict[str, PairGeometry], out: Path) -> dict[str, str]:
    from featgeom_tda.analyses.geometry.baselines import METRIC_LABELS
    from featgeom_tda.viz.geometry import plot_metric_heatmap

    la, lb = layers_of(ctx.recipe, 0), layers_of(ctx.recipe, 1)
    paths = {}
    for metric in ctx.recipe.geometry.metrics:
        score = np.full((len(la), len(lb)), np.nan)
        null = np.full_like(score, np.nan)
        for i, a in enumerate(la):
            for j, b in enumerate(lb):
                key = pair_key(a, b) if pair_key(a, b) in grid else pair_key(b, a)  # one model: each pair once
                entry = grid[key].metrics.get(metric) if key in grid else None  # one model: no layer vs itself
                if entry is not None:
                    score[i, j], null[i, j] = entry.score, entry.null_mean
        path = out / f"heatmap_{metric}.png"
        plot_metric_heatmap(
            score, null, path, metric_label=METRIC_LABELS[metric],
            row_labels=[a.hook.replace(".hook_", "\n") for a in la], col_labels=[b.hook.replace(".hook_", "\n") for b in lb],
            row_title=ctx.recipe.models[0].name, col_title=ctx.recipe.models[-1].name,
        )
        paths[metric] = str(path)
    return paths


def _concept_subspaces(ctx: RunContext) -> list[dict[str, Any]]:
    from featgeom_tda.analyses.geometry import compare_concept_subspaces
    from featgeom_tda.analyses.interpret import concept_labels
    from featgeom_tda.sources.concepts import load_concept_groups

    acts, spec = ctx.activations(), ctx.recipe.geometry
    a, b = main_pair(ctx.recipe)
    groups = load_concept_groups()
    metrics = tuple(m for m in spec.subspace_metrics if m in spec.metrics) or (spec.subspace_metrics[0],)
    results = compare_concept_subspaces(
        ctx.decoder_rows(a), ctx.decoder_rows(b),
        concept_labels(acts[a.key], ctx.token_strings(), groups), concept_labels(acts[b.key], ctx.token_strings(), groups),
        metrics=metrics, min_features=spec.min_concept_features, n_permutations=spec.n_permutations,
        seed=ctx.recipe.seed, matching=ctx.matchings()[pair_key(a, b)],
        # the same metric definitions as the grid (one RSA per run: the cosine RDM)
        metric_options={m: metric_options(m, spec) for m in metrics},
    )
    return [r.to_dict() for r in results]


KEYWORD_TOP_K = 5  # a feature's top activations read for its keyword concept
KEYWORD_MIN_FRACTION = 0.5  # at least this fraction of them in the concept's word group


def _keyword_subspaces(ctx: RunContext) -> list[dict[str, Any]]:
    """The subspaces as the original experiments built them: each side's concept features selected by keyword
    (the concept with most of a feature's top activations, :func:`feature_concepts`), re-matched inside the
    concept with the recipe's matching options, scored against the within-concept permutation null."""
    from functools import partial

    from featgeom_tda.analyses.geometry import compare_rematched_subspaces
    from featgeom_tda.analyses.interpret import feature_concepts
    from featgeom_tda.pipeline.stages.matching import match_options
    from featgeom_tda.sources.concepts import load_concept_groups

    acts, spec = ctx.activations(), ctx.recipe.geometry
    a, b = main_pair(ctx.recipe)
    groups = load_concept_groups()

    def selected(layer: Layer) -> dict[str, np.ndarray]:
        labels = feature_concepts(acts[layer.key], ctx.token_strings(), groups, k=KEYWORD_TOP_K,
                                  min_fraction=KEYWORD_MIN_FRACTION)
        return {concept: np.flatnonzero(labels == concept) for concept in groups}

    metrics = tuple(m for m in spec.subspace_metrics if m in spec.metrics) or (spec.subspace_metrics[0],)
    results = compare_rematched_subspaces(
        acts[a.key], acts[b.key], ctx.decoder_rows(a), ctx.decoder_rows(b), selected(a), selected(b),
        match=partial(ctx.engine.match_features, **match_options(ctx)), metrics=metrics,
        min_features=spec.min_concept_features, n_permutations=spec.n_permutations, seed=ctx.recipe.seed,
        metric_options={m: metric_options(m, spec) for m in metrics},
    )
    return [r.to_dict() for r in results]


def _spectra(ctx: RunContext, out: Path) -> SpectraResult:
    from featgeom_tda.analyses.geometry import random_spectrum, spectrum, spectrum_distance
    from featgeom_tda.sources.weights import mlp_out_weights
    from featgeom_tda.viz.spectra import plot_spectra

    seed = ctx.recipe.seed
    spectra = {f"SAE decoder {layer.label}": spectrum(ctx.decoder_rows(layer))
               for layer in all_layers(ctx.recipe)}
    for name, model in ctx.sources.models.items():
        if not getattr(model.cfg, "attn_only", False):
            for layer in range(int(model.cfg.n_layers)):
                spectra[f"MLP out {name} L{layer}"] = spectrum(mlp_out_weights(model, layer).weights)
    rows = []
    for label, s in spectra.items():
        rand = random_spectrum(s.shape, seed=seed)
        rows.append(SpectrumRow(
            matrix=label, shape=list(s.shape), effective_rank=s.effective_rank, random_effective_rank=rand.effective_rank,
            tail_slope=s.slope, random_tail_slope=rand.slope, distance_to_random=spectrum_distance(s, rand),
        ))
    a, b = main_pair(ctx.recipe)
    between = spectrum_distance(spectra[f"SAE decoder {a.label}"], spectra[f"SAE decoder {b.label}"])
    path = out / "spectra.png"
    shapes = sorted({tuple(s.shape) for s in spectra.values()})
    baselines = {f"Gaussian random {r}x{c}": random_spectrum((r, c), seed=seed) for r, c in shapes}
    plot_spectra({**spectra, **baselines}, path)
    return SpectraResult(rows=rows, decoder_distance_main_pair=between, plot=str(path))
