"""Stage ``matching``: pair the features of every layer pair by activation correlation."""

from __future__ import annotations

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import layer_pairs, main_pair, pair_key
from featgeom_tda.results import AssignmentTotals, MatchingResult, PairMatching


def match_options(ctx: RunContext) -> dict:
    """The recipe's matching options as keyword arguments of ``match_features`` (every matching of a run uses them)."""
    spec = ctx.recipe.matching
    return dict(mode=spec.mode, threshold=spec.threshold, top_k=spec.top_k,
                exclude_tokens="punctuation" if spec.exclude_punctuation else None, token_strings=ctx.token_strings(),
                require_same_token=spec.require_same_token)


def assignment_totals(ctx: RunContext, acts_a: object, acts_b: object) -> AssignmentTotals:
    """The one-to-one matching against the optimal assignment of the same candidate graph (recipe threshold and
    top_k, no token filters, so that both are pairings of one graph and optimal >= one-to-one)."""
    spec = ctx.recipe.matching
    totals = {}
    for mode in ("one-to-one", "optimal"):
        m = ctx.engine.match_features(acts_a, acts_b, mode=mode, threshold=spec.threshold, top_k=spec.top_k)
        totals[mode] = (len(m), float(m.correlation.astype(np.float64).sum()))
    return AssignmentTotals(one_to_one_pairs=totals["one-to-one"][0], one_to_one_total=totals["one-to-one"][1],
                            optimal_pairs=totals["optimal"][0], optimal_total=totals["optimal"][1])


def run(ctx: RunContext) -> MatchingResult:
    from featgeom_tda.viz.matching import plot_correlation_histogram

    acts = ctx.activations()
    out = ctx.stage_dir("matching")
    pairs, matchings = {}, {}
    for a, b in layer_pairs(ctx.recipe):
        m = ctx.engine.match_features(acts[a.key], acts[b.key], **match_options(ctx))
        key = pair_key(a, b)
        m.save(out / key)
        matchings[key] = m
        corr = m.correlation.astype(np.float64)
        pairs[key] = PairMatching(
            a=a.key, b=b.key, n_pairs=len(m), n_features_a=acts[a.key].n_features, n_features_b=acts[b.key].n_features,
            mean_correlation=float(corr.mean()) if len(m) else None,
            median_correlation=float(np.median(corr)) if len(m) else None, filtered=dict(m.filtered),
            assignment=assignment_totals(ctx, acts[a.key], acts[b.key]) if ctx.recipe.matching.compare_assignment else None,
        )
    ctx.set_matchings(matchings)
    a, b = main_pair(ctx.recipe)
    fig = out / "correlation_histogram.png"
    plot_correlation_histogram(matchings[pair_key(a, b)].correlation, fig,
                               title=f"matched-pair correlation, {a.label} vs {b.label}")
    return MatchingResult(pairs=pairs, main_pair=pair_key(a, b), histogram=str(fig))
