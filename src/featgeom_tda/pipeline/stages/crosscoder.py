"""Stage ``crosscoder``: one acausal TopK crosscoder of the main layer pair, measured against post-hoc matching.

The crosscoder reads both models' raw activations at the main pair's hooks on the compared rows (the rows of
the extraction stores, so the same tokens the matching correlates; when the tokenizers differ, the aligned
units, each at its last token in each model) and is kept under
``cache_dir/crosscoders/<fingerprint>`` (sae_lens format + ``crosscoder.json``), keyed by its options, the
seed and a digest of the activations: a rerun of the stage (``--force crosscoder``, or changed thresholds)
reuses it. Reported: per-model FVU and L0, the relative decoder norm histogram, latent classes, block cosines
of the shared latents, latent-scaling flags, and for every latent its best activation correlation with each
model's SAE features (does a shared latent pick a matched pair?). ``feature_labels.json`` gives each SAE
feature its best-correlated latent and that latent's class, for the explorer.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import Layer, main_pair, pair_key, single_model
from featgeom_tda.results import CrosscoderClassAgreement, CrosscoderModelFit, CrosscoderResult

__all__ = ["run", "LABELS_FORMAT", "read_feature_labels"]

LABELS_FORMAT = "featgeom-crosscoder-labels/1"
N_FLAGGED_KEPT = 50  # flagged latents listed in the result


def run(ctx: RunContext) -> CrosscoderResult:
    spec = ctx.recipe.crosscoder
    if not spec.enabled:
        return CrosscoderResult(skipped="the crosscoder is switched off in the recipe (crosscoder: {enabled: true})")
    from featgeom_tda.analyses.crosscoder import (
        class_counts,
        classify_latents,
        crosscoder_vs_matching,
        decoder_norm_histogram,
        exclusive_but_shared,
        latent_scaling,
        relative_decoder_norm,
    )
    from featgeom_tda.viz.crosscoder import plot_decoder_norm_histogram

    a, b = main_pair(ctx.recipe)
    out = ctx.stage_dir("crosscoder")
    try:
        raw = ctx.hook_activations([a, b])
    except RuntimeError as exc:  # hook rows that are not the stores' rows: a stale extraction
        return CrosscoderResult(skipped=f"the crosscoder needs one hook row per compared row: {exc}",
                                main_pair=pair_key(a, b))
    xa, xb = raw[a.key], raw[b.key]
    cc, directory = _train_or_load(ctx, a, b, xa, xb)
    t, band = float(spec.exclusive_threshold), (float(spec.shared_band[0]), float(spec.shared_band[1]))

    fit = cc.metrics(xa, xb, exclusive_threshold=t)
    z = cc.encode(xa, xb)
    dead = np.diff(z.tocsc().indptr) == 0
    r = relative_decoder_norm(cc)
    counts, edges = decoder_norm_histogram(r[~dead])  # live latents
    classes = classify_latents(r, exclusive_threshold=t, shared_band=band, dead=dead)
    cosines, cosines_skipped = _block_cosines(ctx, cc, classes)

    scaling = latent_scaling(cc, xa, xb)
    flagged = np.flatnonzero(exclusive_but_shared(scaling, nu_threshold=spec.nu_threshold, exclusive_threshold=t) & ~dead)

    acts = ctx.activations()
    sae_a, sae_b = acts[a.key], acts[b.key]
    vs = crosscoder_vs_matching(z, sae_a, sae_b)
    m = ctx.matchings()[pair_key(a, b)]
    matched = set(zip(m.index_a.tolist(), m.index_b.tolist()))
    on_pair = np.array([(int(i), int(j)) in matched for i, j in zip(vs.index_a, vs.index_b)], dtype=bool)
    explained = {(int(vs.index_a[j]), int(vs.index_b[j])) for j in np.flatnonzero(on_pair & (classes == "shared"))}
    agreement = [
        CrosscoderClassAgreement(latent_class=name, n_latents=int(mask.sum()), mean_corr_a=_mean(vs.corr_a[mask]),
                                 mean_corr_b=_mean(vs.corr_b[mask]), n_on_matched_pair=int(on_pair[mask].sum()))
        for name in ("shared", "exclusive_a", "exclusive_b", "partial")
        for mask in [classes == name]
    ]

    labels_path = out / "feature_labels.json"
    feature_classes = _write_feature_labels(labels_path, z, sae_a, sae_b, classes)
    png = out / "decoder_norm_histogram.png"
    plot_decoder_norm_histogram(counts, edges, png, exclusive_threshold=t, shared_band=band,
                                title=f"crosscoder latents, {a.label} (A) vs {b.label} (B)")
    return CrosscoderResult(
        main_pair=pair_key(a, b), width=cc.width, k=int(cc.config.get("k", spec.k)), n_tokens=int(xa.shape[0]),
        rows="aligned units" if ctx.rows_are_units() else "tokens",
        training_steps=int(cc.config.get("steps", 0)), fvu=_finite(fit["fvu"]), l0=_finite(fit["l0"]),
        dead_fraction=_finite(fit["dead_fraction"]),
        models=[CrosscoderModelFit(layer=layer.key, d_model=int(x.shape[1]), fvu=_finite(fit[f"fvu_{s}"]),
                                   l0=_finite(fit[f"l0_{s}"]))
                for layer, x, s in ((a, xa, "a"), (b, xb, "b"))],
        exclusive_threshold=t, shared_band=list(band), histogram_counts=counts.tolist(),
        histogram_edges=[round(float(e), 6) for e in edges], class_counts=class_counts(classes), block_cosines=cosines,
        block_cosines_skipped=cosines_skipped, nu_threshold=float(spec.nu_threshold), n_flagged=int(flagged.size),
        flagged_latents=flagged[:N_FLAGGED_KEPT].tolist(), agreement=agreement, n_matched_pairs=len(m),
        n_pairs_explained=len(explained), feature_classes_a=feature_classes["a"], feature_classes_b=feature_classes["b"],
        histogram=str(png), directory=str(directory), feature_labels=str(labels_path),
    )


def _train_or_load(ctx: RunContext, a: Layer, b: Layer, xa: np.ndarray, xb: np.ndarray) -> tuple[Any, Path]:
    """The crosscoder saved under ``cache_dir/crosscoders`` for these options and activations, else a new one."""
    from featgeom_tda.core._cache import array_digest, fingerprint
    from featgeom_tda.sources.crosscoders import CROSSCODER_JSON, load_crosscoder, train_crosscoder

    spec, recipe = ctx.recipe.crosscoder, ctx.recipe
    width = int(spec.width_multiple) * (xa.shape[1] + xb.shape[1])
    k = min(int(spec.k), width)
    batch_size = min(int(spec.batch_size), int(xa.shape[0]))
    options = {"width": width, "k": k, "training_tokens": int(spec.training_tokens), "batch_size": batch_size,
               "seed": int(recipe.seed), "layers": [a.key, b.key]}
    key = fingerprint({"options": options, "activations": array_digest(xa, xb)})
    directory = Path(recipe.cache_dir) / "crosscoders" / key
    if (directory / CROSSCODER_JSON).exists():
        return load_crosscoder(directory), directory
    cc = train_crosscoder(xa, xb, width=width, k=k, training_tokens=int(spec.training_tokens), batch_size=batch_size,
                          seed=int(recipe.seed), model_names=(a.model, b.model), hook_names=(a.hook, b.hook),
                          device=recipe.device)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cc.save(tmp)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)  # a killed run never leaves a half-written crosscoder that reads as complete
    return cc, directory


def _block_cosines(ctx: RunContext, cc: Any, classes: np.ndarray) -> tuple[dict[str, Any] | None, str | None]:
    """Block cosines of the shared latents: raw when both layers are one model's residual stream at equal widths
    (one basis), after a cross-fitted Procrustes map otherwise (two models share no basis)."""
    from featgeom_tda.analyses.crosscoder import block_cosines

    shared = np.flatnonzero(classes == "shared")
    alignment = "none" if single_model(ctx.recipe) and cc.d_a == cc.d_b else "procrustes"
    if shared.size < (1 if alignment == "none" else 2):
        return None, f"{shared.size} shared latent(s): too few for block cosines"
    try:
        res = block_cosines(cc, latents=shared, alignment=alignment, fit_latents=shared, seed=int(ctx.recipe.seed))
    except ValueError as exc:
        return None, str(exc)
    return {k: (_finite(v) if isinstance(v, float) else v) for k, v in res.to_dict().items()}, None


def _write_feature_labels(path: Path, z: Any, sae_a: Any, sae_b: Any, classes: np.ndarray) -> dict[str, dict[str, int]]:
    """Each SAE feature's best-correlated crosscoder latent (over the compared rows), its correlation and class;
    returns the count of features per class on each side ("none": the feature never fires)."""
    from featgeom_tda.analyses.matching import top_correlations

    payload: dict[str, Any] = {"format": LABELS_FORMAT}
    counts: dict[str, dict[str, int]] = {}
    for side, acts in (("a", sae_a), ("b", sae_b)):
        idx, corr = top_correlations(acts, z, k=1, method="scipy").best()
        ok = (idx >= 0) & np.isfinite(corr)
        label = np.where(ok, classes[np.where(ok, idx, 0)], "none")
        payload[side] = {"latent": np.where(ok, idx, -1).astype(int).tolist(),
                         "correlation": [round(float(c), 4) if k else None for c, k in zip(corr, ok)],
                         "class": label.tolist()}
        names, n = np.unique(label, return_counts=True)
        counts[side] = {str(x): int(c) for x, c in zip(names, n)}
    path.write_text(json.dumps(payload, separators=(",", ":"), allow_nan=False))
    return counts


def read_feature_labels(path: str | Path) -> dict[str, Any]:
    """The per-feature labels written by the stage (``a`` and ``b``: latent, correlation, class lists)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != LABELS_FORMAT:
        raise ValueError(f"{path} is not a crosscoder feature-label file of format {LABELS_FORMAT!r}")
    return data


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _mean(v: np.ndarray) -> float | None:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None
