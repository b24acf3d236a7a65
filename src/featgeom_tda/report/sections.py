"""One builder a report section, each reading one stage's typed result by attribute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from featgeom_tda.analyses.geometry.baselines import METRIC_LABELS
from featgeom_tda.report.html import Figure, ScoreCell, Section, Table
from featgeom_tda.results import (
    ExtractionResult,
    GeometryResult,
    InterpretationResult,
    MatchingResult,
    SourcesResult,
    SteeringResult,
    TopologyResult,
)

__all__ = [
    "models_section", "matching_section", "similarity_section", "controls_section", "pairs_section", "subspaces_section",
    "spectra_section", "mapper_section", "persistence_section", "projection_section", "steering_section",
]


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _svcca_label(details: dict) -> str:
    """``SVCCA (k_a=.., k_b=.. of n=..)``: the components behind the score, beside it."""
    if not details:
        return _label("svcca")
    return f"{_label('svcca')} (k_a={details['n_components_x']}, k_b={details['n_components_y']} of n={details['n_rows']})"


def _fig(path: Any, caption: str) -> list[Figure]:
    return [Figure(caption, path)] if path and Path(path).exists() else []


def _topology_file(name: str) -> str:
    """A file of the topology stage, relative to the report directory."""
    return f"../topology/{name}"


def models_section(src: SourcesResult, ext: ExtractionResult) -> Section:
    model_rows = [[name, m.n_layers, m.d_model, m.n_params, m.final_loss, m.unigram_entropy] for name, m in src.models.items()]
    sae_rows = []
    for key, s in src.saes.items():
        on_data = ext.layers.get(key)
        sae_rows.append([s.model, s.hook, s.kind, s.spec, s.width, s.fvu, s.l0, s.dead_fraction,
                         on_data.mean_l0 if on_data else None, on_data.dead_on_data if on_data else None,
                         s.ce_clean, s.ce_spliced, s.ce_zero_ablation, s.ce_loss_increase, s.ce_recovered])
    intro = (f"Both models read the same {ext.n_tokens} token rows from {ext.n_docs} documents "
             "(tokenized once; padding and position 0 of every sequence, the BOS or a window's first token, never counted).")
    tables = []
    if ext.alignment:
        al = ext.alignment
        intro = (f"The tokenizers differ, so the models are compared on {ext.n_tokens} aligned units of {ext.n_docs} "
                 "held-out text chunks: the finest character spans that begin and end on a token boundary of both "
                 f"tokenizers, each unit's activation the {al.get('reduce', 'max')} over its tokens. Each model ran on "
                 "its own tokens; a unit holding a model's position 0 is never a row. Token ids in every later section "
                 "name units, so the same-token score is a same-unit score.")
        tables.append(Table(
            "Token alignment (one-to-one: units that are one token in both models; coverage: the fraction of a "
            "model's tokens inside a kept unit)",
            ["tokenizer A", "tokenizer B", "units", "kept", "one-to-one", "tokens per unit A", "tokens per unit B",
             "coverage A", "coverage B", "dropped spans", "dropped: position 0"],
            [[al.get("tokenizer_a"), al.get("tokenizer_b"), al.get("n_units"), al.get("n_kept"),
              al.get("one_to_one_fraction"), al.get("mean_tokens_per_unit_a"), al.get("mean_tokens_per_unit_b"),
              al.get("coverage_a"), al.get("coverage_b"), al.get("n_dropped"), al.get("n_dropped_position0")]],
            csv_name="alignment.csv"))
    return Section(
        "models",
        "Models and SAEs compared",
        how_to_read="low FVU and a small CE increase (recovered near 1) mean the SAE is faithful: check this before trusting any match.",
        intro=intro,
        tables=[*tables,
            Table("Models (loss in nats per token; the unigram entropy is the loss of a model that ignores context)",
                  ["model", "layers", "d_model", "parameters", "final loss", "unigram entropy"], model_rows, csv_name="models.csv"),
            Table("SAEs: FVU = fraction of variance unexplained; L0 = active features per token; dead = never firing; "
                  "CE = next-token cross-entropy (nats) on compared tokens with the model clean, with the SAE's "
                  "reconstruction spliced in at the hook, and with the hook zero-ablated; recovered = (zero - spliced) "
                  "/ (zero - clean)",
                  ["model", "hook", "kind", "recipe spec", "width", "FVU", "L0", "dead fraction", "L0 on compared tokens",
                   "dead on compared tokens", "CE clean", "CE spliced", "CE zero-ablated", "CE increase",
                   "CE recovered"],
                  sae_rows, csv_name="saes.csv"),
        ],
    )


def matching_section(match: MatchingResult) -> Section:
    rows = []
    for p in match.pairs.values():
        filtered = ", ".join(f"{k}: {v}" for k, v in p.filtered.items())
        rows.append([p.a, p.b, p.n_features_a, p.n_features_b, p.n_pairs, p.mean_correlation, p.median_correlation, filtered])
    columns = ["layer A", "layer B", "features A", "features B", "pairs", "mean corr", "median corr", "removed (reason: count)"]
    totals = [[p.a, p.b, t.one_to_one_pairs, t.one_to_one_total, t.optimal_pairs, t.optimal_total, t.ratio]
              for p in match.pairs.values() if (t := p.assignment) is not None]
    tables = [Table("Matchings per layer pair", columns, rows, csv_name="matching.csv")]
    if totals:
        tables.append(Table(
            "One-to-one matching against the optimal assignment (same candidate graph and threshold, before token "
            "filters): total correlation of the pairs",
            ["layer A", "layer B", "one-to-one pairs", "one-to-one total", "optimal pairs", "optimal total",
             "one-to-one / optimal"], totals, csv_name="matching_assignment.csv"))
    return Section(
        "matching",
        "Feature matching",
        how_to_read="many pairs with high correlation say the two dictionaries share features; dead and unassigned counts say what was left out.",
        intro="Features paired by the Pearson correlation of their activations over the shared token rows; "
        "dead features are never matched, and every filter records how many pairs it removed.",
        tables=tables,
        figures=_fig(match.histogram, "Correlations of matched pairs (main layer pair)"),
    )


def similarity_section(geo: GeometryResult) -> Section:
    rows = []
    for entry in geo.grid.values():
        if entry.skipped:
            rows.append([entry.a, entry.b, entry.n_pairs, entry.skipped, None, None])
            continue
        for metric, s in entry.metrics.items():
            label = _svcca_label(entry.svcca_details) if metric == "svcca" else _label(metric)
            rows.append([entry.a, entry.b, entry.n_pairs, label, ScoreCell(s.score, s.null_mean, s.null_std, s.p_value),
                         s.subset_mean])
        rows.append([entry.a, entry.b, entry.n_pairs, "SVCCA, 1 component (as the original code computed it)",
                     ScoreCell(entry.svcca_single_component), None])
    figures = [Figure(f"{_label(m)} per layer pair: matched pairs vs random pairing", p)
               for m, p in geo.heatmaps.items() if Path(p).exists()]
    columns = ["layer A", "layer B", "pairs", "metric", "score", "random-subset mean"]
    return Section(
        "similarity",
        "Similarity of the paired decoder spaces",
        how_to_read="a score means something only well above its null (small p); the heatmaps show every layer pair at once.",
        intro="Decoder rows of matched features compared with each metric. Null: the same metric with B's rows "
        "randomly re-paired (seeded permutations); p = (1 + #null >= score) / (1 + permutations). Subset baseline: "
        "randomly drawn, unmatched feature subsets of the same size.",
        tables=[Table("Scores with baselines", columns, rows, csv_name="similarity.csv")],
        figures=figures,
        notes=["SVCCA keeps, in each space, the fewest components whose cumulative explained-variance fraction reaches the recipe's "
               "svcca_variance, and at most max(1, n // 4) of them for n pairs, so that k_a + k_b <= n / 2: with k_a + k_b > n - 1 "
               "some canonical correlations are 1 for any pairing (a saturated SVCCA), which is never reported as a score. "
               "The single-component value is shown only for comparison with published numbers that kept one component by mistake.",
               "RSA is one definition in the whole run: Spearman correlation of cosine-distance RDMs (invariant to rotations "
               "of decoder space), here and in the semantic subspaces."],
    )


def controls_section(geo: GeometryResult) -> Section:
    metrics = list(dict.fromkeys(m for c in geo.controls for m in c.metrics))
    rows = []
    for entry in geo.grid.values():  # the SAE decoder scores of the grid, beside their controls
        if not entry.skipped:
            rows.append([entry.a, entry.b, "SAE features, decoder rows", entry.n_pairs, None]
                        + [_cell(entry.metrics.get(m)) for m in metrics])
        for c in geo.controls:
            if (c.a, c.b) == (entry.a, entry.b):
                rows.append([c.a, c.b, c.kind if not c.skipped else f"{c.kind}: skipped ({c.skipped})", c.n_pairs,
                             c.mean_correlation] + [_cell(c.metrics.get(m)) for m in metrics])
    return Section(
        "controls",
        "Controls: SAE features against raw neurons, decoder space against activation space",
        how_to_read="SAE features add something over neurons where their scores beat the neurons' by more than the nulls' spread.",
        intro="Per layer pair: the grid's decoder-space scores of matched SAE features; the matched features compared "
              "through their token activations (rows = compared tokens; null: B's token rows shuffled); and the "
              "models' raw MLP neurons matched one-to-one by activation correlation and compared through their W_out "
              "rows with the same metrics and nulls. The randomised control of B (main pair): model B with its weights "
              "re-initialised, its own SAE at the same hook, matched against A's SAE and scored like the real pair; "
              "similarity that is real falls to the null there.",
        tables=[Table("Scores beside their nulls", ["layer A", "layer B", "units", "pairs", "mean correlation",
                                                     *[_label(m) for m in metrics]], rows, csv_name="controls.csv")],
    )


def _cell(s: Any) -> ScoreCell | None:
    return None if s is None else ScoreCell(s.score, s.null_mean, s.null_std, s.p_value)


def pairs_section(interp: InterpretationResult) -> Section:
    entry = interp.pairs.get(interp.main_pair)
    rows = []
    for p in entry.top_pairs if entry else []:
        ctx_a = " | ".join(e.context for e in p.examples_a)
        ctx_b = " | ".join(e.context for e in p.examples_b)
        rows.append([p.feature_a, p.feature_b, p.correlation, p.concept_a or "", p.concept_b or "", ctx_a, ctx_b])
    score_rows = [[key, e.same_token["n_pairs"], ScoreCell(e.same_token["score"], e.same_token["baseline_mean"],
                                                           e.same_token["baseline_std"], e.same_token["p_value"])]
                  for key, e in interp.pairs.items() if e.same_token]
    notes = []
    if entry is not None and entry.concept_agreement is not None:
        agree = entry.concept_agreement
        notes.append(f"Of {agree.pairs_with_a_concept} matched pairs where either feature carries a concept label, "
                     f"{agree.same_concept} carry the same concept on both sides.")
    return Section(
        "pairs",
        "Top matched pairs and their examples",
        how_to_read="read the two example columns side by side: a real match fires on the same kind of token in both models.",
        intro="The best-correlated pairs of the main layer pair with their top-activating examples (the firing token in [[ ]]).",
        tables=[
            Table("Top pairs", ["feature A", "feature B", "correlation", "concept A", "concept B", "examples A", "examples B"],
                  rows, csv_name="top_pairs.csv"),
            Table("Same-token score: fraction of pairs whose top-activating token sets overlap, vs randomly re-paired features",
                  ["layer pair", "pairs", "score"], score_rows, csv_name="same_token.csv"),
        ],
        notes=notes,
    )


def subspaces_section(geo: GeometryResult) -> Section:
    if geo.keyword_subspaces:
        return _subspaces_side_by_side(geo)
    rows = []
    for s in geo.subspaces:
        sizes = [s["concept"], s["n_features_a"], s["n_features_b"], s["n_pairs"]]
        if s["skipped"]:
            rows.append(sizes + ["skipped: " + str(s["skipped"]), None])
            continue
        details = s.get("details", {})
        for metric, score in s["scores"].items():
            label = _svcca_label(details.get(metric, {})) if metric == "svcca" else _label(metric)
            rows.append(sizes + [label, ScoreCell(score, s["null_means"].get(metric), None, s["p_values"].get(metric))])
        for metric, reason in s.get("metric_errors", {}).items():
            rows.append(sizes + [f"{_label(metric)}: not computed ({reason})", None])
    columns = ["concept", "features A", "features B", "pairs", "metric", "score"]
    return Section(
        "subspaces",
        "Semantic subspaces",
        how_to_read="a concept whose score beats its within-concept null is organised alike in both models.",
        intro="Features labelled with a concept group (their top-activating token is in the group) in each model, compared per concept.",
        tables=[Table("Concept subspaces", columns, rows, csv_name="subspaces.csv")],
    )


def _variant_cell(s: dict | None, metric: str) -> Any:
    """One variant's result for one metric: its score beside its null, or why there is none."""
    if s is None:
        return "not computed"
    if s["skipped"]:
        return "skipped: " + str(s["skipped"])
    if metric in s["scores"]:
        return ScoreCell(s["scores"][metric], s["null_means"].get(metric), s["null_stds"].get(metric),
                         s["p_values"].get(metric))
    return f"not computed ({s.get('metric_errors', {}).get(metric, 'no score')})"


def _components(s: dict | None) -> str:
    d = (s or {}).get("details", {}).get("svcca")
    return f"k_a={d['n_components_x']}, k_b={d['n_components_y']} of n={d['n_rows']}" if d else "-"


def _subspaces_side_by_side(geo: GeometryResult) -> Section:
    restricted = {s["concept"]: s for s in geo.subspaces}
    rematched = {s["concept"]: s for s in geo.keyword_subspaces}
    rows = []
    for concept in list(restricted) + [c for c in rematched if c not in restricted]:
        r, k = restricted.get(concept), rematched.get(concept)
        metrics = list(dict.fromkeys(m for s in (r, k) if s for m in (*s["scores"], *s.get("metric_errors", {}))))
        sizes = [concept,
                 f"{r['n_features_a']} / {r['n_features_b']} / {r['n_pairs']}" if r else "-",
                 f"{k['n_features_a']} / {k['n_features_b']} / {k['n_pairs']}" if k else "-",
                 None if k is None else k.get("mean_correlation")]
        for metric in metrics or ["-"]:
            label = _label(metric) if metric != "svcca" else f"{_label(metric)} ({_components(r)} | {_components(k)})"
            rows.append(sizes + [label if metrics else "-", _variant_cell(r, metric), _variant_cell(k, metric)])
    columns = ["concept", "restricted: features A / B / pairs", "re-matched: features A / B / pairs",
               "re-matched mean correlation", "metric", "global matching, pairs labelled on both sides",
               "keyword selection, re-matched in the concept"]
    return Section(
        "subspaces",
        "Semantic subspaces",
        how_to_read="a concept whose score beats its within-concept null (small p) is organised alike in both models; "
                    "compare the two variants column by column.",
        intro="Two ways to build a concept's subspace in each model of the main pair, side by side. Restricted: the "
              "pairs of the global matching whose features both carry the concept label (their top-activating token "
              "is in the concept's word group). Re-matched, as the original experiments built it: each model's "
              "features whose top activations mostly fall on the concept's keywords, matched again among themselves "
              "with the run's matching options. Both are scored on the pairs' decoder rows against the within-concept "
              "null (random pairings among the concept's own pairs); p = (1 + #null >= score) / (1 + permutations).",
        tables=[Table("Concept subspaces: global matching restricted vs keyword selection re-matched", columns, rows,
                      csv_name="subspaces.csv")],
        notes=["SVCCA needs well more pairs than components: with k_a + k_b > n - 1 canonical correlations are 1 for any "
               "pairing, so a concept with too few pairs shows 'not computed' instead of a saturated score."],
    )


def spectra_section(geo: GeometryResult) -> Section:
    spec = geo.spectra
    rows = [[r.matrix, "x".join(map(str, r.shape)), r.effective_rank, r.random_effective_rank, r.tail_slope,
             r.random_tail_slope, r.distance_to_random] for r in spec.rows]
    notes = []
    if spec.decoder_distance_main_pair is not None:
        notes.append(f"Distance between the two main SAE decoder spectra: {spec.decoder_distance_main_pair:.4f}.")
    columns = ["matrix", "shape", "effective rank", "random eff. rank", "tail slope", "random tail slope", "distance to random"]
    return Section(
        "spectra",
        "SVD spectra of SAE and LLM weights",
        how_to_read="a spectrum far from its Gaussian baseline (dashed) has structure; compare effective ranks across rows.",
        intro="Singular values of SAE decoders and MLP output matrices, against Gaussian random matrices of the same shape.",
        tables=[Table("Spectra", columns, rows, csv_name="spectra.csv")],
        figures=_fig(spec.plot, "Normalised singular-value spectra (dashed: Gaussian baselines)"),
        notes=notes,
    )


def mapper_section(topo: TopologyResult) -> Section:
    mapper = topo.mapper
    if mapper is None:
        return Section("mapper", "Mapper graphs", notes=["Mapper was switched off in the recipe."])
    keys = ["n_nodes", "n_edges", "n_components", "betti_1", "nerve_betti_1", "coverage"]
    rows = [[side.layer] + [side.statistics[k] for k in keys]
            + [side.statistics["node_size"]["mean"], side.statistics["degree"]["mean"]] for side in (mapper.a, mapper.b)]
    comp_rows = []
    for rel in ("same", "adjacent"):
        r = mapper.comparison[rel]
        comp_rows.append([rel, r["n_a_pairs"], ScoreCell(r["observed"], r["null_mean"], r["null_std"], r["p_value"]), r["lift"]])
    embeds = [(f"Mapper graph of {side.layer} (self-contained HTML; hover a node for its features)", _topology_file(side.html))
              for side in (mapper.a, mapper.b)]
    return Section(
        "mapper",
        "Mapper graphs of decoder rows",
        intro="Mapper (kmapper) over SAE decoder rows; nodes are clusters of features, annotated with top tokens, concepts and matched partners.",
        how_to_read="loops and branches that both graphs share are structure; a lift above 1 with a small p says matched features sit together in both.",
        tables=[Table("Graph statistics (first Betti number of the graph = edges - nodes + components; of the nerve, with triangles filled)",
                      ["layer", "nodes", "edges", "components", "Betti 1 (graph)", "Betti 1 (nerve)", "coverage", "mean node size", "mean degree"],
                      rows, csv_name="mapper.csv"),
                Table("Do matched features sit together in both graphs? For pairs of A features in the same (or adjacent) node, the fraction whose partners are too, vs random pairing",
                      ["relation", "A feature pairs", "observed", "lift"], comp_rows, csv_name="mapper_comparison.csv")],
        embeds=embeds,
    )


def persistence_section(topo: TopologyResult) -> Section:
    ph = topo.persistence
    if ph is None:
        return Section("persistence", "Persistent homology", notes=["Persistent homology was switched off in the recipe."])
    rows = [[name, dim, s["n_bars"], s["total_persistence"], s["max_persistence"], s["persistence_entropy"]]
            for name, summ in ph.summaries.items() for dim, s in summ.items()]
    drows = [[k, v["a_vs_b"], v["a_vs_gaussian"], v["b_vs_gaussian"], v["gaussian_a_vs_gaussian_b"]] for k, v in ph.distances.items()]
    engines = ", ".join(sorted({r.engine for r in ph.runs.values()})) or "not recorded"
    return Section(
        "persistence",
        "Persistent homology of decoder rows",
        how_to_read="points far above the diagonal are long-lived features of the shape; compare each cloud with its Gaussian baseline.",
        intro=("Vietoris-Rips persistence of unit-normalised decoder rows under cosine distance, on max-min landmarks; "
               f"baselines are Gaussian clouds of equal size and spectrum. Engine: {engines}."),
        tables=[Table("Diagram summaries", ["cloud", "dimension", "bars", "total persistence", "max persistence", "entropy"], rows, csv_name="persistence.csv"),
                Table("Diagram distances", ["distance", "A vs B", "A vs Gaussian", "B vs Gaussian", "Gaussian A vs Gaussian B"], drows, csv_name="diagram_distances.csv")],
        figures=_fig(ph.plot, "Persistence diagrams"),
    )


def projection_section(topo: TopologyResult) -> Section:
    proj = topo.projection
    return Section(
        "projection",
        f"{proj.method.upper()} views of the two models",
        how_to_read="linked points are matched pairs; after alignment, short links across panels mean the two layouts agree.",
        intro="Decoder rows of both models side by side, matched pairs highlighted and linked.",
        figures=_fig(proj.png, "Side-by-side projection with matched pairs"),
        links=[("Interactive projection (HTML)", _topology_file(proj.html))],
    )


def steering_section(st: SteeringResult) -> Section:
    if st.skipped:
        return Section("steering", "Steering", notes=[st.skipped])
    columns = ["alpha (x mean activation norm)", "success rate A", "success rate B (partner)", "success rate B (random feature)",
               "KL side effects A", "KL side effects B"]
    tables = [
        Table(f"Task {task.name}: desired '{task.desired}'; feature {task.feature_a} in A, its partner {task.feature_b} in B",
              columns, [[r.alpha, r.success_rate_a, r.success_rate_b, r.success_rate_b_random_feature, r.kl_a, r.kl_b] for r in task.rows],
              csv_name=f"steering_{task.name}.csv")
        for task in st.tasks
    ]
    return Section(
        "steering",
        "Steering with SAE features, and transfer across models",
        how_to_read="a transferred feature steers B (partner column) nearly as well as A, and better than a random B feature.",
        intro="Success rate = fraction of prompts whose top next-token prediction becomes the desired token; side effects = mean KL divergence on unrelated prompts.",
        tables=tables,
        figures=[Figure(f, p) for f, p in st.figures.items() if Path(p).exists()],
        notes=list(st.notes),
    )
