"""Stage ``interpretation``: same-token scores of every layer pair; top pairs with examples for the main pair."""

from __future__ import annotations

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import Layer, layer_pairs, main_pair, pair_key
from featgeom_tda.results import ConceptAgreement, ExampleContext, InterpretationResult, PairInterpretation, TopPair


def run(ctx: RunContext) -> InterpretationResult:
    from featgeom_tda.analyses.interpret import same_token_score

    spec, acts = ctx.recipe.interpretation, ctx.activations()
    results = {}
    for a, b in layer_pairs(ctx.recipe):
        m = ctx.matchings()[pair_key(a, b)]
        if len(m) == 0:
            results[pair_key(a, b)] = PairInterpretation(n_pairs=0)
            continue
        score = same_token_score(m, acts[a.key], acts[b.key], n_baseline=spec.n_same_token_baseline, seed=ctx.recipe.seed)
        entry = PairInterpretation(n_pairs=len(m), same_token=score.to_dict())
        if (a, b) == main_pair(ctx.recipe):
            _add_top_pairs(ctx, a, b, entry)
        results[pair_key(a, b)] = entry
    return InterpretationResult(pairs=results, main_pair=pair_key(*main_pair(ctx.recipe)))


def _add_top_pairs(ctx: RunContext, a: Layer, b: Layer, entry: PairInterpretation) -> None:
    """The best-correlated pairs with their top-activating examples, and how often concepts agree."""
    from featgeom_tda.analyses.interpret import feature_concepts, top_examples
    from featgeom_tda.sources.concepts import load_concept_groups

    spec, acts, strings = ctx.recipe.interpretation, ctx.activations(), ctx.token_strings()
    tokens = ctx.dataset().tokens
    m = ctx.matchings()[pair_key(a, b)]
    best = m.sorted().subset(np.arange(min(spec.n_pairs, len(m))))
    options = dict(k=spec.n_examples, window=spec.window, tokens=tokens, token_strings=strings)
    ex_a = top_examples(acts[a.key], best.index_a, **options)
    ex_b = top_examples(acts[b.key], best.index_b, **options)
    groups = load_concept_groups()
    ca, cb = feature_concepts(acts[a.key], strings, groups), feature_concepts(acts[b.key], strings, groups)
    entry.top_pairs = [
        TopPair(
            feature_a=int(fa), feature_b=int(fb), correlation=float(c), concept_a=ca[fa] or None, concept_b=cb[fb] or None,
            examples_a=[ExampleContext(**e.to_dict()) for e in xa], examples_b=[ExampleContext(**e.to_dict()) for e in xb],
        )
        for fa, fb, c, xa, xb in zip(best.index_a, best.index_b, best.correlation, ex_a, ex_b)
    ]
    labelled = [(ca[i], cb[j]) for i, j in zip(m.index_a, m.index_b) if ca[i] or cb[j]]
    entry.concept_agreement = ConceptAgreement(
        pairs_with_a_concept=len(labelled), same_concept=int(sum(x == y for x, y in labelled))
    )
