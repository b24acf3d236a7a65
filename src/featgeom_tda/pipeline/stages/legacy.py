"""The stages of a recipe run. Each takes the :class:`~featgeom_tda.pipeline.Pipeline` and returns JSON results.

Objects that later stages need (models, SAEs, activations) are rebuilt on demand by the ``ensure_*``
helpers, which read the caches, so any stage can run after its predecessors came from the cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from featgeom_tda.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layer:
    """One (model, hook) with its SAE: a source of feature activations."""

    model: str
    hook: str
    index: int  # position in the recipe's layer list of that model

    @property
    def key(self) -> str:
        return f"{self.model}__{self.hook}"

    @property
    def label(self) -> str:
        return f"{self.model} {self.hook}"


def layers_of(pipe: "Pipeline", side: int) -> list[Layer]:
    spec = pipe.recipe.models[side]
    return [Layer(spec.name, layer.hook, i) for i, layer in enumerate(spec.layers)]


def layer_pairs(pipe: "Pipeline") -> list[tuple[Layer, Layer]]:
    """Every layer of A against every layer of B (the layer-by-layer grid)."""
    return [(a, b) for a in layers_of(pipe, 0) for b in layers_of(pipe, 1)]


def main_pair(pipe: "Pipeline") -> tuple[Layer, Layer]:
    """The pair studied in depth: the last listed layer of each model."""
    return layers_of(pipe, 0)[-1], layers_of(pipe, 1)[-1]


def pair_key(a: Layer, b: Layer) -> str:
    return f"{a.key}--{b.key}"


# ---------------------------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------------------------
def ensure_sources(pipe: "Pipeline") -> dict[str, Any]:
    """Models, tokenizer, texts and SAEs of the recipe, built or loaded (cached) once per run."""
    if "sources" in pipe.context:
        return pipe.context["sources"]
    from featgeom_tda.sources import saes as sae_mod

    recipe = pipe.recipe
    cache = Path(recipe.cache_dir)
    models: dict[str, Any] = {}
    sae_by_layer: dict[str, Any] = {}
    sae_reports: dict[str, dict[str, Any]] = {}
    model_reports: dict[str, dict[str, Any]] = {}
    embedded = None
    if any(m.source == "embedded" for m in recipe.models) or recipe.dataset.source == "embedded":
        from featgeom_tda.sources.embedded import build_embedded_default

        embedded = build_embedded_default(cache, seed=recipe.seed, small=recipe.embedded_size == "small")
    tokenizer = embedded.tokenizer if embedded is not None else None
    for spec in recipe.models:
        if spec.source == "embedded":
            models[spec.name] = embedded.models[spec.name]
            rep = embedded.report.get("models", {}).get(spec.name, {})
            model_reports[spec.name] = {
                "final_loss": rep.get("eval_loss"),  # next-token loss on held-out rows
                "unigram_entropy": rep.get("unigram_entropy"),
                "train_steps": rep.get("steps"),
            }
        else:
            from featgeom_tda.sources.models import load_hub_model

            models[spec.name] = load_hub_model(spec.name, device=recipe.device, dtype=spec.dtype)
            tokenizer = tokenizer or models[spec.name].tokenizer
            model_reports[spec.name] = {"source": "hub"}
    texts = _dataset_texts(pipe, embedded)
    for side in (0, 1):
        spec = recipe.models[side]
        model = models[spec.name]
        for layer, lspec in zip(layers_of(pipe, side), spec.layers):
            sae, report = _layer_sae(pipe, model, layer, lspec.sae, embedded, tokenizer, texts, cache, sae_mod)
            sae_by_layer[layer.key] = sae
            sae_reports[layer.key] = {"model": layer.model, "hook": layer.hook, **report}
    pipe.context["sources"] = {
        "models": models,
        "tokenizer": tokenizer,
        "texts": texts,
        "saes": sae_by_layer,
        "sae_reports": sae_reports,
        "model_reports": model_reports,
        "embedded": embedded,
    }
    return pipe.context["sources"]


def source_options(recipe: Any) -> dict[str, Any]:
    """Options of the sources that the recipe does not spell out (the embedded default's), for fingerprints."""
    import dataclasses

    if any(m.source == "embedded" for m in recipe.models) or recipe.dataset.source == "embedded":
        from featgeom_tda.sources.embedded import embedded_config

        return {"embedded": dataclasses.asdict(embedded_config(seed=recipe.seed, small=recipe.embedded_size == "small"))}
    return {}


def _dataset_texts(pipe: "Pipeline", embedded: Any) -> list[str]:
    ds = pipe.recipe.dataset
    if ds.source == "embedded":
        texts = list(embedded.texts)
        # the comparison reads the stories at the end of the corpus; the same texts for both models
        return texts[-ds.n_documents :]
    from datasets import load_dataset  # network: Hugging Face hub

    data = load_dataset(ds.name, split=ds.split, streaming=True)
    texts = []
    for row in data:
        if ds.text_field not in row:
            raise ValueError(f"dataset {ds.name!r} has no field {ds.text_field!r}; fields are {sorted(row)}")
        texts.append(row[ds.text_field])
        if len(texts) >= ds.n_documents:
            break
    return texts


def _layer_sae(pipe, model, layer: Layer, sspec, embedded, tokenizer, texts, cache: Path, sae_mod) -> tuple[Any, dict]:
    """The SAE for one layer: the embedded one, a cached trained one, a pretrained one or one from disk."""
    if sspec.kind == "pretrained":
        sae = sae_mod.load_pretrained_sae(sspec.release, sspec.sae_id, device=pipe.recipe.device)
        return sae, {"kind": "pretrained", "release": sspec.release, "sae_id": sspec.sae_id, "width": int(sae.cfg.d_sae)}
    if sspec.kind == "disk":
        sae = sae_mod.load_sae(sspec.path)
        return sae, {"kind": "disk", "path": sspec.path, "width": int(sae.cfg.d_sae)}
    if embedded is not None and layer.model in embedded.saes and embedded.hooks.get(layer.model) == layer.hook:
        report = dict(embedded.report.get("saes", {}).get(layer.model, {}))
        sae = embedded.saes[layer.model]
        return sae, {"kind": "train (embedded default)", "width": int(sae.cfg.d_sae), **report}
    return _train_or_load_sae(pipe, model, layer, sspec, tokenizer, texts, cache / "saes", sae_mod)


def _train_or_load_sae(pipe, model, layer: Layer, sspec, tokenizer, texts, cache: Path, sae_mod) -> tuple[Any, dict]:
    """Train an SAE at ``layer.hook`` on the recipe's texts, or load it from the cache if trained before."""
    import hashlib
    import json

    from featgeom_tda.extraction.activations import tokenize_documents

    recipe = pipe.recipe
    key = {"model": layer.model, "hook": layer.hook, "sae": vars(sspec), "seed": recipe.seed,
           "texts": hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16], "max_length": recipe.dataset.max_length}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    directory = cache / f"{layer.model}__{layer.hook}__{digest}"
    report_path = directory / "featgeom_report.json"
    if report_path.exists():
        return sae_mod.load_sae(directory, device=recipe.device), json.loads(report_path.read_text())
    dataset = tokenize_documents(tokenizer, texts, max_length=recipe.dataset.max_length)
    acts = sae_mod.collect_hook_activations(
        model, dataset.tokens, layer.hook, mask=dataset.row_mask(keep_bos=False), batch_size=recipe.batch_size
    )
    d_model = int(acts.shape[1])
    sae = sae_mod.train_sae(
        acts,
        width=d_model * sspec.width_multiple,
        architecture=sspec.architecture,
        k=sspec.k,
        l1_coefficient=sspec.l1_coefficient,
        hook_name=layer.hook,
        model_name=layer.model,
        model=model,
        training_tokens=sspec.training_tokens,
        seed=recipe.seed,
        device=recipe.device,
    )
    metrics = sae_mod.sae_metrics(sae, acts)
    report = {"kind": "train", "architecture": sspec.architecture, "width": int(sae.cfg.d_sae), **metrics}
    sae_mod.save_sae(sae, directory)
    report_path.write_text(json.dumps(report))
    return sae, report


def run_sources(pipe: "Pipeline") -> dict[str, Any]:
    src = ensure_sources(pipe)
    models = {}
    for name, model in src["models"].items():
        cfg = model.cfg
        models[name] = {
            "n_layers": int(cfg.n_layers),
            "d_model": int(cfg.d_model),
            "d_mlp": int(cfg.d_mlp) if cfg.d_mlp else None,
            "n_params": int(sum(p.numel() for p in model.parameters())),
            **src["model_reports"].get(name, {}),
        }
    return {"models": models, "saes": src["sae_reports"], "n_texts": len(src["texts"])}


# ---------------------------------------------------------------------------------------------------------
# extraction
# ---------------------------------------------------------------------------------------------------------
def ensure_activations(pipe: "Pipeline") -> dict[str, Any]:
    """FeatureActivations per layer key, read from the extraction stores."""
    if "activations" in pipe.context:
        return pipe.context["activations"]
    from featgeom_tda.extraction.activations import TokenizedDataset, load_activations

    out = pipe.out_dir / "extraction"
    acts = {}
    for side in (0, 1):
        for layer in layers_of(pipe, side):
            acts[layer.key] = load_activations(out / "stores", layer.key)
    pipe.context["activations"] = acts
    pipe.context["dataset"] = TokenizedDataset.load(out / "tokens")
    return acts


def run_extraction(pipe: "Pipeline") -> dict[str, Any]:
    from featgeom_tda.extraction.activations import ActivationSource, extract_activations, tokenize_documents

    src = ensure_sources(pipe)
    recipe = pipe.recipe
    out = pipe.stage_dir("extraction")
    dataset = tokenize_documents(
        src["tokenizer"], src["texts"], max_length=recipe.dataset.max_length, dataset_name=recipe.dataset.name or recipe.dataset.source
    )
    dataset = _limit_tokens(dataset, recipe.token_budget)
    dataset.save(out / "tokens")
    sources = []
    for side in (0, 1):
        for layer in layers_of(pipe, side):
            sources.append(
                ActivationSource(layer.key, src["models"][layer.model], layer.hook, src["saes"][layer.key], model_id=layer.model)
            )
    stores = {}
    for source in sources:  # one store per layer; every store holds the same token rows in the same order
        stores.update(extract_activations([source], dataset, out / "stores", batch_size=recipe.batch_size, device=recipe.device))
    pipe.context.pop("activations", None)
    acts = ensure_activations(pipe)
    per_layer = {}
    for key, a in acts.items():
        counts = a.firing_counts()
        per_layer[key] = {
            "n_tokens": a.n_tokens,
            "n_features": a.n_features,
            "mean_l0": float(a.matrix.nnz / a.n_tokens),
            "dead_on_data": float(np.mean(counts == 0)),
            "store": str(stores[key].path),
        }
    return {"n_docs": int(dataset.n_docs), "n_tokens": int(next(iter(acts.values())).n_tokens), "layers": per_layer}


def _limit_tokens(dataset: Any, budget: int) -> Any:
    """Keep the first documents whose real tokens fit in ``budget`` (at least one document)."""
    from featgeom_tda.extraction.activations import TokenizedDataset

    lengths = dataset.lengths
    n = int(max(1, np.searchsorted(np.cumsum(lengths), budget, side="right")))
    if n >= dataset.n_docs:
        return dataset
    return TokenizedDataset(
        dataset.tokens[:n],
        dataset.attention_mask[:n],
        bos=dataset.bos,
        tokenizer_name=dataset.tokenizer_name,
        tokenizer_hash=dataset.tokenizer_hash,
        dataset_name=dataset.dataset_name,
        pad_token_id=dataset.pad_token_id,
        max_length=dataset.max_length,
    )


def token_strings(pipe: "Pipeline") -> list[str]:
    tok = ensure_sources(pipe)["tokenizer"]
    vocab = tok.get_vocab()
    strings = [""] * (max(vocab.values()) + 1)
    for s, i in vocab.items():
        strings[i] = s
    return strings


# ---------------------------------------------------------------------------------------------------------
# matching
# ---------------------------------------------------------------------------------------------------------
def ensure_matchings(pipe: "Pipeline") -> dict[str, Any]:
    if "matchings" not in pipe.context:
        from featgeom_tda.core.types import FeatureMatching

        pipe.context["matchings"] = {
            pair_key(a, b): FeatureMatching.load(pipe.out_dir / "matching" / pair_key(a, b)) for a, b in layer_pairs(pipe)
        }
    return pipe.context["matchings"]


def run_matching(pipe: "Pipeline") -> dict[str, Any]:
    from featgeom_tda.analyses.matching import match_features

    acts = ensure_activations(pipe)
    spec = pipe.recipe.matching
    strings = token_strings(pipe)
    out = pipe.stage_dir("matching")
    results = {}
    matchings = {}
    for a, b in layer_pairs(pipe):
        m = match_features(
            acts[a.key],
            acts[b.key],
            mode=spec.mode,
            threshold=spec.threshold,
            top_k=spec.top_k,
            exclude_tokens="punctuation" if spec.exclude_punctuation else None,
            token_strings=strings,
            require_same_token=spec.require_same_token,
        )
        key = pair_key(a, b)
        m.save(out / key)
        matchings[key] = m
        corr = m.correlation.astype(np.float64)
        results[key] = {
            "a": a.key,
            "b": b.key,
            "n_pairs": len(m),
            "n_features_a": acts[a.key].n_features,
            "n_features_b": acts[b.key].n_features,
            "mean_correlation": float(corr.mean()) if len(m) else None,
            "median_correlation": float(np.median(corr)) if len(m) else None,
            "filtered": dict(m.filtered),
        }
    pipe.context["matchings"] = matchings
    a, b = main_pair(pipe)
    fig = out / "correlation_histogram.png"
    _plot_histogram(matchings[pair_key(a, b)].correlation, fig, f"matched-pair correlation, {a.label} vs {b.label}")
    return {"pairs": results, "main_pair": pair_key(a, b), "histogram": str(fig)}


def _plot_histogram(values: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(values, bins=40, color="#1f3a5f")
    ax.set_xlabel("Pearson correlation")
    ax.set_ylabel("pairs")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------------------
def decoder_rows(pipe: "Pipeline", layer: Layer) -> np.ndarray:
    from featgeom_tda.sources.weights import decoder_weights

    return decoder_weights(ensure_sources(pipe)["saes"][layer.key]).weights


def run_geometry(pipe: "Pipeline") -> dict[str, Any]:
    from featgeom_tda.analyses.geometry import permutation_test, random_subset_baseline, svcca_result

    spec = pipe.recipe.geometry
    seed = pipe.recipe.seed
    matchings = ensure_matchings(pipe)
    out = pipe.stage_dir("geometry")
    grid: dict[str, Any] = {}
    for a, b in layer_pairs(pipe):
        m = matchings[pair_key(a, b)]
        wa, wb = decoder_rows(pipe, a), decoder_rows(pipe, b)
        X, Y = wa[m.index_a], wb[m.index_b]
        scores: dict[str, Any] = {}
        if len(m) < 10:
            grid[pair_key(a, b)] = {"a": a.key, "b": b.key, "n_pairs": len(m), "skipped": "fewer than 10 matched pairs"}
            continue
        for metric in spec.metrics:
            kwargs = _metric_kwargs(metric, spec)
            res = permutation_test(metric, X, Y, n_permutations=spec.n_permutations, seed=seed, **kwargs)
            sub = random_subset_baseline(metric, wa, wb, len(m), n_draws=spec.n_subset_draws, seed=seed, **kwargs)
            scores[metric] = {
                "score": res.score,
                "null_mean": res.null_mean,
                "null_std": res.null_std,
                "p_value": res.p_value,
                "subset_mean": float(np.mean(sub.scores)),
                "subset_std": float(np.std(sub.scores)),
            }
        one = svcca_result(X, Y, n_components=1)
        full = svcca_result(X, Y, variance=spec.svcca_variance)
        scores["svcca_single_component"] = {"score": one.score}
        grid[pair_key(a, b)] = {
            "a": a.key,
            "b": b.key,
            "n_pairs": len(m),
            "metrics": scores,
            "svcca_components": [full.n_components_x, full.n_components_y],
        }
    heatmaps = _plot_heatmaps(pipe, grid, out)
    subspaces = _concept_subspaces(pipe)
    spectra = _spectra(pipe, out)
    return {"grid": grid, "heatmaps": heatmaps, "subspaces": subspaces, "spectra": spectra}


def _metric_kwargs(metric: str, spec: Any) -> dict[str, Any]:
    if metric == "svcca":
        return {"variance": spec.svcca_variance}
    if metric in ("knn_jaccard", "mutual_knn"):
        return {"k": spec.knn_k}
    if metric == "rsa":
        # cosine dissimilarities are invariant to rotations of decoder space; correlation ones are not
        return {"rdm": "cosine"}
    return {}


def _plot_heatmaps(pipe: "Pipeline", grid: dict[str, Any], out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from featgeom_tda.report.comparison import METRIC_NAMES

    la, lb = layers_of(pipe, 0), layers_of(pipe, 1)
    paths = {}
    for metric in pipe.recipe.geometry.metrics:
        score = np.full((len(la), len(lb)), np.nan)
        null = np.full_like(score, np.nan)
        for i, a in enumerate(la):
            for j, b in enumerate(lb):
                entry = grid[pair_key(a, b)].get("metrics", {}).get(metric)
                if entry:
                    score[i, j], null[i, j] = entry["score"], entry["null_mean"]
        fig, axes = plt.subplots(1, 2, figsize=(7, 2.2 + 0.4 * len(la)))
        for ax, mat, title in zip(axes, (score, null), ("matched pairs", "random pairing (null mean)")):
            im = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
            ax.set_xticks(range(len(lb)), [b.hook.replace(".hook_", "\n") for b in lb], fontsize=7)
            ax.set_yticks(range(len(la)), [a.hook.replace(".hook_", "\n") for a in la], fontsize=7)
            ax.set_xlabel(pipe.recipe.models[1].name, fontsize=8)
            ax.set_ylabel(pipe.recipe.models[0].name, fontsize=8)
            ax.set_title(f"{METRIC_NAMES[metric]}: {title}", fontsize=8)
            for (i, j), v in np.ndenumerate(mat):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k", fontsize=8)
        fig.colorbar(im, ax=axes, shrink=0.8)
        path = out / f"heatmap_{metric}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths[metric] = str(path)
    return paths


def _concept_subspaces(pipe: "Pipeline") -> list[dict[str, Any]]:
    from featgeom_tda.analyses.geometry import compare_concept_subspaces
    from featgeom_tda.analyses.interpret import concept_labels
    from featgeom_tda.sources.concepts import load_concept_groups

    acts = ensure_activations(pipe)
    a, b = main_pair(pipe)
    strings = token_strings(pipe)
    groups = load_concept_groups()
    labels_a = concept_labels(acts[a.key], strings, groups)
    labels_b = concept_labels(acts[b.key], strings, groups)
    spec = pipe.recipe.geometry
    results = compare_concept_subspaces(
        decoder_rows(pipe, a),
        decoder_rows(pipe, b),
        labels_a,
        labels_b,
        metrics=tuple(m for m in ("svcca", "cka", "rsa") if m in spec.metrics) or ("svcca",),
        min_features=spec.min_concept_features,
        n_permutations=spec.n_permutations,
        seed=pipe.recipe.seed,
        matching=ensure_matchings(pipe)[pair_key(a, b)],
    )
    return [r.to_dict() for r in results]


def _spectra(pipe: "Pipeline", out: Path) -> dict[str, Any]:
    from featgeom_tda.analyses.geometry import plot_spectra, random_spectrum, spectrum, spectrum_distance
    from featgeom_tda.sources.weights import mlp_out_weights

    src = ensure_sources(pipe)
    spectra = {}
    for side in (0, 1):
        for layer in layers_of(pipe, side):
            spectra[f"SAE decoder {layer.label}"] = spectrum(decoder_rows(pipe, layer))
    for name, model in src["models"].items():
        for layer in range(int(model.cfg.n_layers)):
            if getattr(model.cfg, "attn_only", False):
                break
            spectra[f"MLP out {name} L{layer}"] = spectrum(mlp_out_weights(model, layer).weights)
    rows = []
    for label, s in spectra.items():
        rand = random_spectrum(s.shape, seed=pipe.recipe.seed)
        rows.append(
            {
                "matrix": label,
                "shape": list(s.shape),
                "effective_rank": s.effective_rank,
                "random_effective_rank": rand.effective_rank,
                "tail_slope": s.slope,
                "random_tail_slope": rand.slope,
                "distance_to_random": spectrum_distance(s, rand),
            }
        )
    a, b = main_pair(pipe)
    between = spectrum_distance(spectra[f"SAE decoder {a.label}"], spectra[f"SAE decoder {b.label}"])
    path = out / "spectra.png"
    shapes = sorted({tuple(s.shape) for s in spectra.values()})
    baselines = {f"Gaussian random {r}x{c}": random_spectrum((r, c), seed=pipe.recipe.seed) for r, c in shapes}
    plot_spectra({**spectra, **baselines}, path)
    return {"rows": rows, "decoder_distance_main_pair": between, "plot": str(path)}


# ---------------------------------------------------------------------------------------------------------
# topology
# ---------------------------------------------------------------------------------------------------------
def run_topology(pipe: "Pipeline") -> dict[str, Any]:
    from featgeom_tda.analyses.interpret import feature_concepts, top_token_ids
    from featgeom_tda.analyses.projection import side_by_side
    from featgeom_tda.analyses.topology import (
        compare_mapper_graphs,
        diagram_distance,
        gaussian_baseline,
        mapper_graph,
        persistence,
        plot_diagrams,
    )

    spec = pipe.recipe.topology
    seed = pipe.recipe.seed
    out = pipe.stage_dir("topology")
    acts = ensure_activations(pipe)
    a, b = main_pair(pipe)
    m = ensure_matchings(pipe)[pair_key(a, b)]
    strings = token_strings(pipe)
    from featgeom_tda.sources.concepts import load_concept_groups

    groups = load_concept_groups()
    results: dict[str, Any] = {"main_pair": pair_key(a, b)}
    graphs = {}
    if spec.mapper:
        mapper = {}
        for layer, side in ((a, "a"), (b, "b")):
            w = decoder_rows(pipe, layer)
            top = top_token_ids(acts[layer.key], k=3)
            tokens = [[strings[t] for t in row if t >= 0] for row in top]
            partner = np.full(w.shape[0], -1, dtype=np.int64)
            own, other = (m.index_a, m.index_b) if side == "a" else (m.index_b, m.index_a)
            partner[own] = other
            annotations = {
                "top_tokens": tokens,  # list of top-activating token strings per feature
                "concept": [c or None for c in feature_concepts(acts[layer.key], strings, groups)],
                "partner": partner,
            }
            g = mapper_graph(w, lens=spec.mapper_lens, n_cubes=spec.n_cubes, overlap=spec.overlap, metric="cosine", seed=seed, annotations=annotations)
            graphs[side] = g
            html = out / f"mapper_{side}.html"
            g.save_html(html, self_contained=True, title=f"Mapper of SAE decoder rows: {layer.label}")
            mapper[side] = {"layer": layer.key, "html": html.name, "statistics": g.statistics()}
        mapper["comparison"] = compare_mapper_graphs(graphs["a"], graphs["b"], m)
        results["mapper"] = mapper
    if spec.persistence:
        diagrams, baselines = {}, {}
        for layer, side in ((a, "a"), (b, "b")):
            w = decoder_rows(pipe, layer)
            w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
            options = dict(maxdim=spec.maxdim, metric="cosine", n_landmarks=spec.n_landmarks, seed=seed)  # a cap
            diagrams[side] = persistence(w, **options)
            baselines[side] = persistence(gaussian_baseline(w, seed=seed), **options)
        distances = {}
        for dim in range(spec.maxdim + 1):
            for kind in ("bottleneck", "wasserstein"):
                distances[f"{kind}_H{dim}"] = {
                    "a_vs_b": diagram_distance(diagrams["a"], diagrams["b"], kind=kind, dim=dim),
                    "a_vs_gaussian": diagram_distance(diagrams["a"], baselines["a"], kind=kind, dim=dim),
                    "b_vs_gaussian": diagram_distance(diagrams["b"], baselines["b"], kind=kind, dim=dim),
                    "gaussian_a_vs_gaussian_b": diagram_distance(baselines["a"], baselines["b"], kind=kind, dim=dim),
                }
        plot = out / "persistence.png"
        plot_diagrams({f"A: {a.label}": diagrams["a"], f"B: {b.label}": diagrams["b"],
                       "Gaussian baseline A": baselines["a"], "Gaussian baseline B": baselines["b"]}, plot)
        results["persistence"] = {
            "summaries": {
                "a": diagrams["a"].summary(),
                "b": diagrams["b"].summary(),
                "gaussian_a": baselines["a"].summary(),
                "gaussian_b": baselines["b"].summary(),
            },
            "distances": distances,
            "runs": {
                name: {"engine": dg.engine, "n_points": dg.n_points, "threshold": dg.threshold, "exact": dg.exact,
                       "seconds": dg.seconds}
                for name, dg in (("a", diagrams["a"]), ("b", diagrams["b"]),
                                 ("gaussian_a", baselines["a"]), ("gaussian_b", baselines["b"]))
            },
            "plot": str(plot),
        }
    png = out / f"projection_{spec.projection}.png"
    html = out / f"projection_{spec.projection}.html"
    side_by_side(decoder_rows(pipe, a), decoder_rows(pipe, b), m, method=spec.projection, path_png=png, path_html=html,
                 labels=(a.label, b.label), seed=seed)
    results["projection"] = {"png": str(png), "html": html.name, "method": spec.projection}
    return results


# ---------------------------------------------------------------------------------------------------------
# interpretation
# ---------------------------------------------------------------------------------------------------------
def run_interpretation(pipe: "Pipeline") -> dict[str, Any]:
    from featgeom_tda.analyses.interpret import feature_concepts, same_token_score, top_examples
    from featgeom_tda.sources.concepts import load_concept_groups

    spec = pipe.recipe.interpretation
    acts = ensure_activations(pipe)
    dataset = pipe.context["dataset"]
    strings = token_strings(pipe)
    groups = load_concept_groups()
    results = {}
    for a, b in layer_pairs(pipe):
        m = ensure_matchings(pipe)[pair_key(a, b)]
        if len(m) == 0:
            results[pair_key(a, b)] = {"n_pairs": 0}
            continue
        score = same_token_score(m, acts[a.key], acts[b.key], n_baseline=200, seed=pipe.recipe.seed)
        entry: dict[str, Any] = {"same_token": score.to_dict()}
        if (a, b) == main_pair(pipe):
            best = m.sorted().subset(np.arange(min(spec.n_pairs, len(m))))
            ex_a = top_examples(acts[a.key], best.index_a, k=spec.n_examples, window=spec.window, tokens=dataset.tokens, token_strings=strings)
            ex_b = top_examples(acts[b.key], best.index_b, k=spec.n_examples, window=spec.window, tokens=dataset.tokens, token_strings=strings)
            ca = feature_concepts(acts[a.key], strings, groups)
            cb = feature_concepts(acts[b.key], strings, groups)
            entry["top_pairs"] = [
                {
                    "feature_a": int(fa),
                    "feature_b": int(fb),
                    "correlation": float(c),
                    "concept_a": ca[fa] or None,
                    "concept_b": cb[fb] or None,
                    "examples_a": [e.to_dict() for e in xa],
                    "examples_b": [e.to_dict() for e in xb],
                }
                for fa, fb, c, xa, xb in zip(best.index_a, best.index_b, best.correlation, ex_a, ex_b)
            ]
            matched_concepts = [(ca[i], cb[j]) for i, j in zip(m.index_a, m.index_b) if ca[i] or cb[j]]
            entry["concept_agreement"] = {
                "pairs_with_a_concept": len(matched_concepts),
                "same_concept": int(sum(x == y for x, y in matched_concepts)),
            }
        results[pair_key(a, b)] = entry
    return {"pairs": results, "main_pair": pair_key(*main_pair(pipe))}


# ---------------------------------------------------------------------------------------------------------
# steering
# ---------------------------------------------------------------------------------------------------------
def run_steering(pipe: "Pipeline") -> dict[str, Any]:
    """Steer model A with its best feature per task, model B with that feature's partner, side by side."""
    spec = pipe.recipe.steering
    if not spec.enabled:
        return {"skipped": "steering is switched off in the recipe"}
    from featgeom_tda.analyses.matching import top_correlations
    from featgeom_tda.analyses.steering import (
        decoder_direction,
        feature_activation_change,
        mean_activation_norm,
        month_task,
        number_task,
        plot_alpha_sweep,
        plot_before_after,
        pronoun_task,
        restrict_to_baseline,
        steer,
        transfer_comparison,
    )

    src = ensure_sources(pipe)
    acts = ensure_activations(pipe)
    out = pipe.stage_dir("steering")
    a, b = main_pair(pipe)
    model_a, sae_a = src["models"][a.model], src["saes"][a.key]
    model_b, sae_b = src["models"][b.model], src["saes"][b.key]
    tok = src["tokenizer"]
    # B's partner of an A feature: its most correlated B feature over the compared tokens (many-to-one)
    partners = top_correlations(acts[a.key], acts[b.key], k=1)
    unrelated = [tok.encode(t)[:16] for t in src["texts"][: 24]]
    makers = {
        "pronoun": lambda: pronoun_task(tok, desired="she", baseline="he"),
        "month": lambda: month_task(tok, "July"),
        "number": lambda: number_task(tok, "seven"),
    }
    tasks, figures, notes = [], {}, []
    for name in spec.tasks:
        task = makers[name]()
        try:  # keep the prompts where model A predicts the baseline token, so success means a change
            task = restrict_to_baseline(model_a, task)
        except ValueError as exc:
            notes.append(f"{name}: {exc}; all prompts kept")
        norm_a = mean_activation_norm(model_a, a.hook, task.prompt_tokens)
        feature = _best_live_feature(model_a, a.hook, sae_a, task, live=~partners.dead_a & (partners.indices[:, 0] >= 0),
                                     alpha=float(max(spec.alphas)) * norm_a)
        partner = int(partners.indices[feature, 0])
        corr = float(partners.values[feature, 0])
        if partner < 0:
            notes.append(f"{name}: feature {feature} of A is dead on the compared tokens; no partner in B")
            continue
        rows = transfer_comparison(
            model_a, sae_a, a.hook, model_b, sae_b, b.hook, feature, partner, task, spec.alphas,
            alpha_units="norm", control_seed=pipe.recipe.seed, unrelated_tokens=unrelated,
        )
        table = [
            {"alpha": r["alpha"], "success_rate_a": r["success_a"], "success_rate_b": r["success_b"],
             "success_rate_b_random_feature": r.get("success_b_control"), "kl_a": r.get("kl_a"), "kl_b": r.get("kl_b")}
            for r in rows
        ]
        sweep_png = out / f"{name}_sweep.png"
        plot_alpha_sweep(
            [{"alpha": r["alpha"], "success_rate": r["success_a"], "kl_unrelated": r.get("kl_a")} for r in rows],
            sweep_png, title=f"{task.name}: {a.label}, feature {feature}",
        )
        alpha_top = float(spec.alphas[-1]) * norm_a
        change = feature_activation_change(
            model_a, a.hook, sae_a, task.prompt_tokens[0],
            lambda: steer(model_a, a.hook, decoder_direction(sae_a, feature), alpha=alpha_top), top_n=12,
        )
        change_png = out / f"{name}_before_after.png"
        plot_before_after(change, change_png)
        figures[f"{name}: success rate and side effects vs alpha (model A)"] = str(sweep_png)
        figures[f"{name}: SAE features most changed by steering (model A, one prompt)"] = str(change_png)
        tasks.append({
            "name": name, "desired": task.desired, "n_prompts": len(task), "feature_a": feature,
            "feature_b": partner, "partner_correlation": corr, "alpha_units": "mean activation norm at the hook",
            "rows": table,
        })
    return {"tasks": tasks, "figures": figures, "notes": notes}


def _best_live_feature(model: Any, hook: str, sae: Any, task: Any, *, live: np.ndarray, alpha: float, n_verify: int = 8) -> int:
    """Among features that fire on the compared tokens (so they have a partner), the one whose decoder
    direction best promotes the desired token: rank by direct logit attribution, then keep the candidate with
    the highest steering success at ``alpha`` (ties: the higher logit score)."""
    from featgeom_tda.analyses.steering import decoder_direction, logit_scores, steer, success_rate

    scores = np.where(live, logit_scores(model, sae, task), -np.inf)
    candidates = [int(f) for f in np.argsort(-scores, kind="stable")[:n_verify] if np.isfinite(scores[f])]
    if not candidates:
        raise ValueError("no live SAE feature to steer with: every feature is dead on the compared tokens")
    rates = [success_rate(model, task, lambda f=f: steer(model, hook, decoder_direction(sae, f), alpha=alpha)) for f in candidates]
    return candidates[int(np.argmax(rates))]


# ---------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------
def run_report(pipe: "Pipeline") -> dict[str, Any]:
    from featgeom_tda.report.comparison import write_comparison_report

    return write_comparison_report(pipe)


STAGE_FUNCTIONS = {
    "sources": run_sources,
    "extraction": run_extraction,
    "matching": run_matching,
    "geometry": run_geometry,
    "topology": run_topology,
    "interpretation": run_interpretation,
    "steering": run_steering,
    "report": run_report,
}
