"""The comparison report of a recipe run: every stage's results as one HTML page, results.json and CSVs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from featgeom_tda.report.html import Figure, Section, Table, write_report
from featgeom_tda.report.tables import write_results_json

if TYPE_CHECKING:  # pragma: no cover
    from featgeom_tda.pipeline import Pipeline

METRIC_NAMES = {
    "svcca": "SVCCA",
    "cka": "linear CKA",
    "rsa": "RSA (Spearman)",
    "procrustes": "Procrustes",
    "knn_jaccard": "kNN Jaccard",
    "mutual_knn": "mutual kNN",
}

SECTION_IDS = (
    "models", "matching", "similarity", "pairs", "subspaces", "spectra", "mapper", "persistence", "projection",
    "steering", "reproducibility",
)


def write_comparison_report(pipe: "Pipeline") -> dict[str, Any]:
    out = pipe.stage_dir("report")
    results = {name: rec.results for name, rec in pipe.records.items() if name != "report"}
    stage_seconds = {name: rec.seconds for name, rec in pipe.records.items()}
    recipe = pipe.recipe
    sections = build_sections(results, recipe.to_dict(), report_dir=out, stage_seconds=stage_seconds)
    a, b = recipe.models[0].name, recipe.models[1].name
    summary = _summary_cards(results)
    html = write_report(
        out,
        f"featgeom report: {a} vs {b}",
        sections,
        subtitle=f"recipe {recipe.name} · seed {recipe.seed} · {results.get('extraction', {}).get('n_tokens', '?')} tokens",
        summary=summary,
    )
    json_path = write_results_json(out / "results.json", {"recipe": recipe.to_dict(), "stages": results})
    return {"html": str(html), "results_json": str(json_path), "sections": [s.id for s in sections]}


def _summary_cards(results: dict[str, Any]) -> list[tuple[str, Any]]:
    cards: list[tuple[str, Any]] = []
    match = results.get("matching", {})
    main = match.get("main_pair")
    if main:
        p = match["pairs"][main]
        cards.append(("matched pairs (main layers)", p["n_pairs"]))
        cards.append(("mean pair correlation", p["mean_correlation"]))
    geo = results.get("geometry", {}).get("grid", {}).get(main or "", {}).get("metrics", {})
    for key in ("svcca", "cka", "rsa"):
        if key in geo:
            cards.append((f"{METRIC_NAMES[key]} (null {geo[key]['null_mean']:.2f})", geo[key]["score"]))
    interp = results.get("interpretation", {}).get("pairs", {}).get(main or "", {}).get("same_token")
    if interp:
        cards.append((f"same-token score (baseline {interp['baseline_mean']:.2f})", interp["score"]))
    return cards


def _fig(path: Any, caption: str) -> list[Figure]:
    return [Figure(caption, path)] if path and Path(path).exists() else []


def _rel(report_dir: Path, stage_dir_name: str, name: str) -> str:
    return f"../{stage_dir_name}/{name}"


def build_sections(
    results: dict[str, Any], recipe: dict[str, Any], *, report_dir: Path, stage_seconds: dict[str, float] | None = None
) -> list[Section]:
    """Report sections, in reading order, from the stages' results."""
    sections = [
        _models_section(results),
        _matching_section(results),
        _similarity_section(results),
        _pairs_section(results),
        _subspaces_section(results),
        _spectra_section(results),
        _mapper_section(results, report_dir),
        _persistence_section(results),
        _projection_section(results, report_dir),
        _steering_section(results),
        _reproducibility_section(recipe, stage_seconds or {}),
    ]
    return sections


def _models_section(results: dict[str, Any]) -> Section:
    src = results.get("sources", {})
    ext = results.get("extraction", {})
    model_rows = [
        [name, m.get("n_layers"), m.get("d_model"), m.get("n_params"), m.get("final_loss"), m.get("unigram_entropy")]
        for name, m in src.get("models", {}).items()
    ]
    sae_rows = []
    for key, s in src.get("saes", {}).items():
        on_data = ext.get("layers", {}).get(key, {})
        sae_rows.append([
            s.get("model"), s.get("hook"), s.get("kind"), s.get("width"), s.get("fvu"), s.get("l0"),
            s.get("dead_fraction"), on_data.get("mean_l0"), on_data.get("dead_on_data"),
        ])
    return Section(
        "models",
        "Models and SAEs compared",
        intro=(
            f"Both models read the same {ext.get('n_tokens', '?')} token rows from {ext.get('n_docs', '?')} documents "
            "(tokenized once; padding never counted; BOS dropped)."
        ),
        tables=[
            Table("Models (loss in nats per token; the unigram entropy is the loss of a model that ignores context)",
                  ["model", "layers", "d_model", "parameters", "final loss", "unigram entropy"], model_rows, csv_name="models.csv"),
            Table("SAEs: FVU = fraction of variance unexplained; L0 = active features per token; dead = never firing",
                  ["model", "hook", "kind", "width", "FVU", "L0", "dead fraction", "L0 on compared tokens", "dead on compared tokens"],
                  sae_rows, csv_name="saes.csv"),
        ],
    )


def _matching_section(results: dict[str, Any]) -> Section:
    match = results.get("matching", {})
    rows = []
    for key, p in match.get("pairs", {}).items():
        filtered = ", ".join(f"{k}: {v}" for k, v in p.get("filtered", {}).items())
        rows.append([p["a"], p["b"], p["n_features_a"], p["n_features_b"], p["n_pairs"], p["mean_correlation"], p["median_correlation"], filtered])
    return Section(
        "matching",
        "Feature matching",
        intro="Features paired by the Pearson correlation of their activations over the shared token rows; "
        "dead features are never matched, and every filter records how many pairs it removed.",
        tables=[Table("Matchings per layer pair", ["layer A", "layer B", "features A", "features B", "pairs", "mean corr", "median corr", "removed (reason: count)"], rows, csv_name="matching.csv")],
        figures=_fig(match.get("histogram"), "Correlations of matched pairs (main layer pair)"),
    )


def _similarity_section(results: dict[str, Any]) -> Section:
    geo = results.get("geometry", {})
    rows = []
    for key, entry in geo.get("grid", {}).items():
        if "metrics" not in entry:
            rows.append([entry["a"], entry["b"], entry.get("n_pairs"), entry.get("skipped", ""), None, None, None, None, None])
            continue
        for metric, s in entry["metrics"].items():
            if metric == "svcca_single_component":
                continue
            rows.append([entry["a"], entry["b"], entry["n_pairs"], METRIC_NAMES.get(metric, metric), s["score"], s["null_mean"], s["null_std"], s["p_value"], s["subset_mean"]])
        rows.append([entry["a"], entry["b"], entry["n_pairs"], "SVCCA, 1 component (as the original code computed it)", entry["metrics"]["svcca_single_component"]["score"], None, None, None, None])
    figures = [Figure(f"{METRIC_NAMES.get(m, m)} per layer pair: matched pairs vs random pairing", p) for m, p in geo.get("heatmaps", {}).items() if Path(p).exists()]
    return Section(
        "similarity",
        "Similarity of the paired decoder spaces",
        intro="Decoder rows of matched features compared with each metric. Null: the same metric with B's rows "
        "randomly re-paired (seeded permutations); p = (1 + #null >= score) / (1 + permutations). Subset baseline: "
        "randomly drawn, unmatched feature subsets of the same size.",
        tables=[Table("Scores with baselines", ["layer A", "layer B", "pairs", "metric", "score", "null mean", "null std", "p-value", "random-subset mean"], rows, csv_name="similarity.csv")],
        figures=figures,
        notes=["SVCCA keeps, in each space, the fewest components whose cumulative explained-variance fraction reaches the recipe's "
               "svcca_variance. The single-component value is shown only for comparison with published numbers that kept one component by mistake."],
    )


def _pairs_section(results: dict[str, Any]) -> Section:
    interp = results.get("interpretation", {})
    main = interp.get("main_pair")
    entry = interp.get("pairs", {}).get(main or "", {})
    rows = []
    for p in entry.get("top_pairs", []):
        ctx_a = " | ".join(e["context"] for e in p["examples_a"])
        ctx_b = " | ".join(e["context"] for e in p["examples_b"])
        rows.append([p["feature_a"], p["feature_b"], p["correlation"], p["concept_a"] or "", p["concept_b"] or "", ctx_a, ctx_b])
    score_rows = []
    for key, e in interp.get("pairs", {}).items():
        st = e.get("same_token")
        if st:
            score_rows.append([key, st["n_pairs"], st["score"], st["baseline_mean"], st["baseline_std"], st["p_value"]])
    notes = []
    agree = entry.get("concept_agreement")
    if agree:
        notes.append(f"Of {agree['pairs_with_a_concept']} matched pairs where either feature carries a concept label, {agree['same_concept']} carry the same concept on both sides.")
    return Section(
        "pairs",
        "Top matched pairs and their examples",
        intro="The best-correlated pairs of the main layer pair with their top-activating examples (the firing token in [[ ]]).",
        tables=[
            Table("Top pairs", ["feature A", "feature B", "correlation", "concept A", "concept B", "examples A", "examples B"], rows, csv_name="top_pairs.csv"),
            Table("Same-token score: fraction of pairs whose top-activating token sets overlap, vs randomly re-paired features",
                  ["layer pair", "pairs", "score", "baseline mean", "baseline std", "p-value"], score_rows, csv_name="same_token.csv"),
        ],
        notes=notes,
    )


def _subspaces_section(results: dict[str, Any]) -> Section:
    subs = results.get("geometry", {}).get("subspaces", [])
    rows = []
    for s in subs:
        sizes = [s["concept"], s.get("n_features_a"), s.get("n_features_b"), s.get("n_pairs")]
        if s.get("skipped"):
            rows.append(sizes + ["skipped: " + str(s["skipped"]), None, None, None])
            continue
        for metric, score in s.get("scores", {}).items():
            rows.append(sizes + [METRIC_NAMES.get(metric, metric), score, s.get("null_means", {}).get(metric), s.get("p_values", {}).get(metric)])
    return Section(
        "subspaces",
        "Semantic subspaces",
        intro="Features labelled with a concept group (their top-activating token is in the group) in each model, compared per concept.",
        tables=[Table("Concept subspaces", ["concept", "features A", "features B", "pairs", "metric", "score", "null mean", "p-value"], rows, csv_name="subspaces.csv")],
    )


def _spectra_section(results: dict[str, Any]) -> Section:
    spec = results.get("geometry", {}).get("spectra", {})
    rows = [[r["matrix"], "x".join(map(str, r["shape"])), r["effective_rank"], r["random_effective_rank"], r["tail_slope"], r["random_tail_slope"], r["distance_to_random"]] for r in spec.get("rows", [])]
    notes = []
    if spec.get("decoder_distance_main_pair") is not None:
        notes.append(f"Distance between the two main SAE decoder spectra: {spec['decoder_distance_main_pair']:.4f}.")
    return Section(
        "spectra",
        "SVD spectra of SAE and LLM weights",
        intro="Singular values of SAE decoders and MLP output matrices, against Gaussian random matrices of the same shape.",
        tables=[Table("Spectra", ["matrix", "shape", "effective rank", "random eff. rank", "tail slope", "random tail slope", "distance to random"], rows, csv_name="spectra.csv")],
        figures=_fig(spec.get("plot"), "Normalised singular-value spectra (dashed: Gaussian baselines)"),
        notes=notes,
    )


def _mapper_section(results: dict[str, Any], report_dir: Path) -> Section:
    topo = results.get("topology", {})
    mapper = topo.get("mapper")
    if not mapper:
        return Section("mapper", "Mapper graphs", notes=["Mapper was switched off in the recipe."])
    keys = ["n_nodes", "n_edges", "n_components", "betti_1", "nerve_betti_1", "coverage"]
    rows = []
    for side in ("a", "b"):
        st = mapper[side]["statistics"]
        rows.append([mapper[side]["layer"]] + [st.get(k) for k in keys]
                    + [st.get("node_size", {}).get("mean"), st.get("degree", {}).get("mean")])
    comp = mapper.get("comparison", {})
    comp_rows = []
    for rel in ("same", "adjacent"):
        r = comp.get(rel)
        if isinstance(r, dict):
            comp_rows.append([rel, r.get("n_a_pairs"), r.get("observed"), r.get("null_mean"), r.get("null_std"), r.get("lift"), r.get("p_value")])
    links = [(f"Mapper graph of {mapper[s]['layer']} (self-contained HTML)", _rel(report_dir, "topology", mapper[s]["html"])) for s in ("a", "b")]
    return Section(
        "mapper",
        "Mapper graphs of decoder rows",
        intro="Mapper (kmapper) over SAE decoder rows; nodes are clusters of features, annotated with top tokens, concepts and matched partners.",
        tables=[Table("Graph statistics (first Betti number of the graph = edges - nodes + components; of the nerve, with triangles filled)",
                      ["layer", "nodes", "edges", "components", "Betti 1 (graph)", "Betti 1 (nerve)", "coverage", "mean node size", "mean degree"], rows, csv_name="mapper.csv"),
                Table("Do matched features sit together in both graphs? For pairs of A features in the same (or adjacent) node, the fraction whose partners are too, vs random pairing",
                      ["relation", "A feature pairs", "observed", "null mean", "null std", "lift", "p-value"], comp_rows, csv_name="mapper_comparison.csv")],
        links=links,
    )


def _persistence_section(results: dict[str, Any]) -> Section:
    ph = results.get("topology", {}).get("persistence")
    if not ph:
        return Section("persistence", "Persistent homology", notes=["Persistent homology was switched off in the recipe."])
    rows = []
    for name, summ in ph["summaries"].items():
        for dim, s in summ.items():
            rows.append([name, dim, s.get("n_bars"), s.get("total_persistence"), s.get("max_persistence"), s.get("persistence_entropy")])
    drows = [[k, v["a_vs_b"], v["a_vs_gaussian"], v["b_vs_gaussian"], v["gaussian_a_vs_gaussian_b"]] for k, v in ph["distances"].items()]
    engines = ", ".join(sorted({r["engine"] for r in ph.get("runs", {}).values()})) or "not recorded"
    return Section(
        "persistence",
        "Persistent homology of decoder rows",
        intro=("Vietoris-Rips persistence of unit-normalised decoder rows under cosine distance, on max-min landmarks; "
               f"baselines are Gaussian clouds of equal size and spectrum. Engine: {engines}."),
        tables=[Table("Diagram summaries", ["cloud", "dimension", "bars", "total persistence", "max persistence", "entropy"], rows, csv_name="persistence.csv"),
                Table("Diagram distances", ["distance", "A vs B", "A vs Gaussian", "B vs Gaussian", "Gaussian A vs Gaussian B"], drows, csv_name="diagram_distances.csv")],
        figures=_fig(ph.get("plot"), "Persistence diagrams"),
    )


def _projection_section(results: dict[str, Any], report_dir: Path) -> Section:
    proj = results.get("topology", {}).get("projection", {})
    links = [("Interactive projection (HTML)", _rel(report_dir, "topology", proj["html"]))] if proj.get("html") else []
    return Section(
        "projection",
        f"{str(proj.get('method', 'PCA')).upper()} views of the two models",
        intro="Decoder rows of both models side by side, matched pairs highlighted and linked.",
        figures=_fig(proj.get("png"), "Side-by-side projection with matched pairs"),
        links=links,
    )


def _steering_section(results: dict[str, Any]) -> Section:
    st = results.get("steering", {})
    if st.get("skipped"):
        return Section("steering", "Steering", notes=[st["skipped"]])
    tables = []
    for task in st.get("tasks", []):
        rows = [[r.get("alpha"), r.get("success_rate_a"), r.get("success_rate_b"), r.get("success_rate_b_random_feature"), r.get("kl_a"), r.get("kl_b")]
                for r in task.get("rows", [])]
        tables.append(Table(
            f"Task {task['name']}: desired '{task.get('desired')}'; feature {task.get('feature_a')} in A, its partner {task.get('feature_b')} in B",
            ["alpha (x mean activation norm)", "success rate A", "success rate B (partner)", "success rate B (random feature)",
             "KL side effects A", "KL side effects B"], rows,
            csv_name=f"steering_{task['name']}.csv",
        ))
    figures = [Figure(f, p) for f, p in st.get("figures", {}).items() if Path(p).exists()]
    return Section(
        "steering",
        "Steering with SAE features, and transfer across models",
        intro="Success rate = fraction of prompts whose top next-token prediction becomes the desired token; side effects = mean KL divergence on unrelated prompts.",
        tables=tables,
        figures=figures,
        notes=st.get("notes", []),
    )


def _reproducibility_section(recipe: dict[str, Any], stage_seconds: dict[str, float]) -> Section:
    import json

    rows = [[k, v] for k, v in stage_seconds.items()]
    return Section(
        "reproducibility",
        "Recipe and run",
        tables=[Table("Stage times (seconds; 0 when reused from the cache)", ["stage", "seconds"], rows)],
        notes=["Recipe: " + json.dumps(recipe, sort_keys=True)],
    )
