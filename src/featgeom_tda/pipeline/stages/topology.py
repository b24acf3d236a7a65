"""Stage ``topology``: Mapper graphs and persistent homology of the main pair's decoder rows, and projections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import Layer, main_pair, pair_key
from featgeom_tda.results import MapperResult, MapperSide, PersistenceResult, PersistenceRun, ProjectionResult, TopologyResult


def run(ctx: RunContext) -> TopologyResult:
    spec = ctx.recipe.topology
    out = ctx.stage_dir("topology")
    a, b = main_pair(ctx.recipe)
    return TopologyResult(
        main_pair=pair_key(a, b),
        mapper=_mapper(ctx, a, b, out) if spec.mapper else None,
        persistence=_persistence(ctx, a, b, out) if spec.persistence else None,
        projection=_projection(ctx, a, b, out),
    )


def _mapper_annotations(ctx: RunContext, layer: Layer, side: str, n_features: int) -> dict:
    from featgeom_tda.analyses.interpret import feature_concepts, top_token_ids
    from featgeom_tda.sources.concepts import load_concept_groups

    acts, strings = ctx.activations()[layer.key], ctx.token_strings()
    m = ctx.matchings()[pair_key(*main_pair(ctx.recipe))]
    top = top_token_ids(acts, k=ctx.recipe.topology.n_top_tokens)
    partner = np.full(n_features, -1, dtype=np.int64)
    own, other = (m.index_a, m.index_b) if side == "a" else (m.index_b, m.index_a)
    partner[own] = other
    return {
        "top_tokens": [[strings[t] for t in row if t >= 0] for row in top],  # top-activating token strings
        "concept": [c or None for c in feature_concepts(acts, strings, load_concept_groups())],
        "partner": partner,
    }


def _mapper(ctx: RunContext, a: Layer, b: Layer, out: Path) -> MapperResult:
    from featgeom_tda.analyses.topology import compare_mapper_graphs, mapper_graph
    from featgeom_tda.viz.mapper_html import save_mapper_html

    spec, seed = ctx.recipe.topology, ctx.recipe.seed
    graphs, sides = {}, {}
    for layer, side in ((a, "a"), (b, "b")):
        w = ctx.decoder_rows(layer)
        g = mapper_graph(w, lens=spec.mapper_lens, n_cubes=spec.n_cubes, overlap=spec.overlap, metric="cosine",
                         seed=seed, annotations=_mapper_annotations(ctx, layer, side, w.shape[0]))
        graphs[side] = g
        html = out / f"mapper_{side}.html"
        save_mapper_html(g, html, self_contained=True, title=f"Mapper of SAE decoder rows: {layer.label}")
        membership = out / f"mapper_{side}_nodes.json"
        membership.write_text(json.dumps({node: members.tolist() for node, members in g.nodes.items()},
                                         separators=(",", ":")))
        sides[side] = MapperSide(layer=layer.key, html=html.name, statistics=g.statistics(), membership=membership.name)
    comparison = compare_mapper_graphs(graphs["a"], graphs["b"], ctx.matchings()[pair_key(a, b)])
    return MapperResult(a=sides["a"], b=sides["b"], comparison=comparison)


def _persistence(ctx: RunContext, a: Layer, b: Layer, out: Path) -> PersistenceResult:
    from featgeom_tda.analyses.topology import diagram_distance, gaussian_baseline, persistence
    from featgeom_tda.viz.topology import plot_diagrams

    spec, seed = ctx.recipe.topology, ctx.recipe.seed
    clouds = {}
    for layer, side in ((a, "a"), (b, "b")):
        w = ctx.decoder_rows(layer)
        w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        options = dict(maxdim=spec.maxdim, metric="cosine", n_landmarks=spec.n_landmarks, seed=seed)  # a cap
        clouds[side] = persistence(w, **options)
        clouds[f"gaussian_{side}"] = persistence(gaussian_baseline(w, seed=seed), **options)
    comparisons = {"a_vs_b": ("a", "b"), "a_vs_gaussian": ("a", "gaussian_a"), "b_vs_gaussian": ("b", "gaussian_b"),
                   "gaussian_a_vs_gaussian_b": ("gaussian_a", "gaussian_b")}
    distances = {
        f"{kind}_H{dim}": {name: diagram_distance(clouds[x], clouds[y], kind=kind, dim=dim)
                           for name, (x, y) in comparisons.items()}
        for dim in range(spec.maxdim + 1) for kind in ("bottleneck", "wasserstein")
    }
    plot = out / "persistence.png"
    plot_diagrams({f"A: {a.label}": clouds["a"], f"B: {b.label}": clouds["b"],
                   "Gaussian baseline A": clouds["gaussian_a"], "Gaussian baseline B": clouds["gaussian_b"]}, plot)
    order = ("a", "b", "gaussian_a", "gaussian_b")
    return PersistenceResult(
        summaries={k: clouds[k].summary() for k in order},
        distances=distances,
        runs={k: PersistenceRun(engine=clouds[k].engine, n_points=clouds[k].n_points, threshold=clouds[k].threshold,
                                exact=clouds[k].exact, seconds=clouds[k].seconds) for k in order},
        plot=str(plot),
    )


def _projection(ctx: RunContext, a: Layer, b: Layer, out: Path) -> ProjectionResult:
    from featgeom_tda.viz.projection import side_by_side

    method = ctx.recipe.topology.projection
    png, html = out / f"projection_{method}.png", out / f"projection_{method}.html"
    side_by_side(ctx.decoder_rows(a), ctx.decoder_rows(b), ctx.matchings()[pair_key(a, b)], method=method,
                 path_png=png, path_html=html, labels=(a.label, b.label), seed=ctx.recipe.seed)
    return ProjectionResult(png=str(png), html=html.name, method=method)
