"""Controls of the geometry stage: what SAE features add over raw neurons, and the activation-space view.

For every layer pair, beside the decoder-space scores of the grid:

- ``activations``: the matched features compared through their token activations (rows = compared tokens on
  which some matched feature fires in both models, columns = matched pairs), against the null that shuffles B's
  token rows.
- ``neurons``: the same matching and decoder-space metrics on the models' raw MLP neurons (activations at
  ``blocks.L.mlp.hook_post``, output directions ``W_out[L]``) of each hook's block, with the same nulls, so the
  report shows how much the SAE basis adds over the neuron basis.

- ``random_model`` (main layer pair only): model B re-initialised (same architecture, weights re-drawn from the
  recipe seed or each of ``geometry.random_model_seeds``, :func:`~featgeom_tda.sources.control.reinitialised_copy`),
  its own SAE trained at B's hook with B's
  SAE spec on the SAE-training rows of model B (``geometry.random_model_training_tokens`` caps its training
  budget), encoded on all compared rows, matched against A's SAE with the recipe's matching options and scored
  like the grid (same metrics, permutation nulls and subset baselines). Similarity that survives in this row
  comes from architecture, tokens and positions, not from training. Its SAE is cached under
  ``cache_dir/saes``.

Token rows of the other controls are the first compared rows, at most ``geometry.n_control_tokens``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import Layer, all_layers, layer_pairs, main_pair, pair_key
from featgeom_tda.pipeline.timing import PartTimes
from featgeom_tda.results import ControlRow, MetricScore

__all__ = ["controls"]

log = logging.getLogger(__name__)

ACTIVATION_METRICS = ("cka", "rsa", "svcca")
MIN_PAIRS = 10


def controls(ctx: RunContext, metric_options: Any, decoder_scores: Any = None) -> list[ControlRow]:
    """The recipe's control rows; ``decoder_scores(ctx, wa, wb, matching)`` scores matched decoder rows as the
    grid does (needed by ``random_model``)."""
    spec = ctx.recipe.geometry
    rows: list[ControlRow] = []
    if not spec.controls:
        return rows
    dataset = ctx.dataset()
    n_docs = _docs_for(dataset, spec.n_control_tokens)
    token_rows = dataset.row_mask(0, n_docs).sum()
    raw = _RawUnitsPerLayer(ctx, dataset.head(n_docs))  # each layer's neurons / residual read once, not per pair
    timed = PartTimes("controls")
    if "residual" in spec.controls and ctx.rows_are_units():  # each model runs once for all its hooks
        timed("residual", lambda: ctx.hook_activations(all_layers(ctx.recipe)))

    for a, b in layer_pairs(ctx.recipe):
        if "activations" in spec.controls:
            rows.append(timed("activations", lambda: _activation_row(ctx, a, b, int(token_rows), metric_options)))
        if "residual" in spec.controls:
            rows.append(timed("residual", lambda: _residual_row(ctx, a, b, raw, int(token_rows), metric_options)))
        if "neurons" in spec.controls:
            rows.extend(timed("neurons", lambda: _neuron_rows(ctx, a, b, raw, metric_options)))
        if "random_model" in spec.controls and (a, b) == main_pair(ctx.recipe):
            for seed in spec.random_model_seeds or [ctx.recipe.seed]:
                rows.append(timed("random_model", lambda: _random_model_row(ctx, a, b, decoder_scores, seed)))
    timed.log()
    return rows


class _RawUnitsPerLayer:
    """The raw units (MLP neurons of a block, residual dimensions at a hook) of each layer on the control rows,
    computed on first use and kept for the other layer pairs."""

    def __init__(self, ctx: RunContext, rows: Any) -> None:
        self.ctx, self.rows, self._cache = ctx, rows, {}

    def get(self, kind: str, layer: Layer) -> Any:
        from featgeom_tda.sources.neurons import mlp_neuron_units, residual_units

        key = (kind, layer.key)
        if key not in self._cache:
            model, mask, bs = self.ctx.sources.models[layer.model], self.rows.row_mask(), self.ctx.recipe.batch_size
            if kind == "neurons":
                self._cache[key] = mlp_neuron_units(model, self.rows.tokens, _block(layer.hook), mask=mask, batch_size=bs)
            else:
                self._cache[key] = residual_units(model, self.rows.tokens, layer.hook, mask=mask, batch_size=bs)
        return self._cache[key]


def _residual_row(ctx: RunContext, a: Layer, b: Layer, raw: _RawUnitsPerLayer, n_rows: int,
                  metric_options: Any) -> ControlRow:
    """The raw residual streams at the two hooks, every dimension, compared on the same token rows (the
    representational similarity the SAE bases are read against); null: B's token rows shuffled. On aligned
    units, each unit's activation at its last token in each model (``ctx.hook_activations``)."""
    kind = "raw residual stream, token activations (all dimensions)"
    if ctx.rows_are_units():
        unit_rows = ctx.hook_activations([a, b])
        X, Y = (unit_rows[x.key][:n_rows].astype(np.float64) for x in (a, b))
    else:
        X = raw.get("residual", a).activations.astype(np.float64)
        Y = raw.get("residual", b).activations.astype(np.float64)
    try:
        scores = _scores(ACTIVATION_METRICS, X, Y, ctx, metric_options)
    except ValueError as exc:
        return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=0, skipped=str(exc))
    return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=min(X.shape[1], Y.shape[1]), n_rows=int(X.shape[0]),
                      metrics=scores)


def _docs_for(dataset: Any, n_tokens: int) -> int:
    counts = np.cumsum(dataset.row_mask().sum(axis=1))
    return int(max(1, np.searchsorted(counts, n_tokens, side="right")))


def _scores(metrics: Any, X: np.ndarray, Y: np.ndarray, ctx: RunContext, metric_options: Any) -> dict[str, MetricScore]:
    """Each of ``metrics`` on the paired rows of X and Y beside its permutation null (one call for all of them)."""
    options = {metric: metric_options(metric, ctx.recipe.geometry) for metric in metrics}
    nulls = ctx.engine.nulls(options, X, Y, n_permutations=ctx.recipe.geometry.n_permutations, seed=ctx.recipe.seed)
    return {metric: MetricScore(score=r.score, null_mean=r.null_mean, null_std=r.null_std, p_value=r.p_value)
            for metric, r in nulls.items()}


def _activation_row(ctx: RunContext, a: Layer, b: Layer, n_rows: int, metric_options: Any) -> ControlRow:
    m = ctx.matchings()[pair_key(a, b)]
    acts = ctx.activations()
    kind = "SAE features, token activations"
    if len(m) < MIN_PAIRS:
        return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=len(m), skipped=f"fewer than {MIN_PAIRS} matched pairs")
    X = acts[a.key].matrix[:n_rows][:, m.index_a].toarray().astype(np.float64)
    Y = acts[b.key].matrix[:n_rows][:, m.index_b].toarray().astype(np.float64)
    live = X.any(axis=1) & Y.any(axis=1)  # tokens where a matched feature fires on both sides (else no direction)
    X, Y, n_rows = X[live], Y[live], int(live.sum())
    try:
        scores = _scores(ACTIVATION_METRICS, X, Y, ctx, metric_options)
    except ValueError as exc:  # e.g. a matched column that never fires on these rows
        return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=len(m), skipped=str(exc))
    return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=len(m), n_rows=n_rows,
                      mean_correlation=float(np.mean(m.correlation)), metrics=scores)


def _block(hook: str) -> int | None:
    match = re.match(r"blocks\.(\d+)\.", hook)
    return int(match.group(1)) if match else None


def _neuron_rows(ctx: RunContext, a: Layer, b: Layer, raw: _RawUnitsPerLayer, metric_options: Any) -> list[ControlRow]:
    models = ctx.sources.models
    la, lb = _block(a.hook), _block(b.hook)
    kind = "MLP neurons (W_out rows)"
    if ctx.rows_are_units():
        return [ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=0,
                           skipped="the rows are aligned units of two tokenizers; neuron activations are per token")]
    if la is None or lb is None or any(getattr(models[x].cfg, "attn_only", False) for x in (a.model, b.model)):
        return [ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=0, skipped="a hook outside a block with an MLP")]
    units_a, units_b = raw.get("neurons", a), raw.get("neurons", b)
    m = ctx.engine.match_features(units_a.to_activations(), units_b.to_activations(), mode="one-to-one", threshold=None)
    if len(m) < MIN_PAIRS:
        return [ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=len(m), skipped=f"fewer than {MIN_PAIRS} matched neurons")]
    X, Y = units_a.weights.weights[m.index_a], units_b.weights.weights[m.index_b]
    scores = _scores(ctx.recipe.geometry.metrics, X, Y, ctx, metric_options)
    return [ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=len(m), n_rows=int(units_a.activations.shape[0]),
                       mean_correlation=float(np.mean(m.correlation)), metrics=scores)]


def random_model_kind(b: Layer, seed: int) -> str:
    return f"randomised control of B (seed {seed}): {b.model} re-initialised, its own SAE at {b.hook}, decoder rows"


def _sae_spec_of(ctx: RunContext, layer: Layer) -> Any:
    model = next(m for m in ctx.recipe.models if m.name == layer.model)
    return next(x.sae for x in model.layers if x.hook == layer.hook)


def _random_model_row(ctx: RunContext, a: Layer, b: Layer, decoder_scores: Any, seed: int) -> ControlRow:
    """Model B with weights re-drawn from ``seed`` and its own SAE, matched against A's SAE and scored like the
    grid (the nulls keep the recipe seed, as the grid's do)."""
    from featgeom_tda.core.types import FeatureActivations, Provenance
    from featgeom_tda.extraction.encoding import encode_batch
    from featgeom_tda.pipeline.stages.matching import match_options
    from featgeom_tda.sources.control import reinitialised_copy
    from featgeom_tda.sources.saes import collect_activations_at
    from featgeom_tda.sources.weights import decoder_weights

    kind, recipe = random_model_kind(b, seed), ctx.recipe
    if ctx.rows_are_units():
        return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=0,
                          skipped="the rows are aligned units of two tokenizers; the control's SAE reads B's tokens")
    try:
        control = reinitialised_copy(ctx.sources.models[b.model], seed=seed)
    except ValueError as exc:
        return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=0, skipped=f"model B cannot be re-initialised: {exc}")
    sae, details = _control_sae(ctx, b, control, seed)
    details["seed"] = seed
    dataset, acts = ctx.dataset(), ctx.activations()
    x = collect_activations_at(control, dataset.tokens, [b.hook], batch_size=recipe.batch_size,
                               mask=dataset.row_mask())[b.hook]
    real = acts[b.key]
    if x.shape[0] != real.n_tokens:
        raise RuntimeError(f"{b.key} control: {x.shape[0]} hook rows but the extraction store has {real.n_tokens}")
    ctrl = FeatureActivations(
        encode_batch(sae, x[None]), token_ids=real.token_ids, doc_index=real.doc_index, position=real.position,
        provenance=Provenance(model=control.cfg.model_name, hook_name=b.hook, sae_id="random-model control",
                              dataset=real.provenance.dataset, seed=seed),
    )
    m = ctx.engine.match_features(acts[a.key], ctrl, **match_options(ctx))
    details["control_model"] = control.cfg.model_name
    if len(m) < MIN_PAIRS:
        return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=len(m), n_rows=real.n_tokens,
                          skipped=f"fewer than {MIN_PAIRS} matched pairs", details=details)
    scores = decoder_scores(ctx, ctx.decoder_rows(a), decoder_weights(sae).weights, m)
    return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=len(m), n_rows=real.n_tokens,
                      mean_correlation=float(np.mean(m.correlation)), metrics=scores, details=details)


def _control_sae(ctx: RunContext, b: Layer, control: Any, seed: int) -> tuple[Any, dict[str, Any]]:
    """The control's SAE at B's hook: from the cache, else trained on the control's activations over model B's
    SAE-training rows (B's SAE spec; a pretrained or disk SAE of B gives a TopK SAE of its width)."""
    from featgeom_tda.core._cache import fingerprint, text_digest
    from featgeom_tda.pipeline.sources import source_options
    from featgeom_tda.sources import saes as sae_mod

    recipe, sources = ctx.recipe, ctx.sources
    sspec = _sae_spec_of(ctx, b)
    d_model = int(control.cfg.d_model)
    if sspec.kind == "train":
        width, architecture, k, l1 = d_model * sspec.width_multiple, sspec.architecture, sspec.k, sspec.l1_coefficient
    else:
        width, architecture, k, l1 = int(sources.saes[b.key].cfg.d_sae), "topk", sspec.k, sspec.l1_coefficient
    tokens = sources.model_tokens.get(b.model, sources.tokens).train
    budget = sspec.training_tokens
    cap = recipe.geometry.random_model_training_tokens
    if cap is not None:
        budget = min(budget, cap)
    cfg = control.cfg
    key = {"control": "reinitialised_copy", "model": b.model, "hook": b.hook, "seed": seed,
           "architecture": {n: getattr(cfg, n, None) for n in ("n_layers", "d_model", "d_mlp", "n_heads", "d_vocab",
                                                               "n_ctx", "act_fn", "normalization_type")},
           "sae": {"width": width, "architecture": architecture, "k": k, "l1_coefficient": l1,
                   "training_tokens": budget},
           "rows": tokens.fingerprint, "texts": text_digest(sources.texts), "sources": source_options(recipe)}
    directory = Path(recipe.cache_dir) / "saes" / f"{b.model}-reinit__{b.hook}__{fingerprint(key, length=12)}"
    report_path = directory / "featgeom_report.json"
    if report_path.exists():
        return sae_mod.load_sae(directory, device=recipe.device), {**json.loads(report_path.read_text()), "cached": True}
    start = time.perf_counter()
    acts = sae_mod.collect_activations_at(control, tokens.tokens, [b.hook], mask=tokens.row_mask(keep_bos=False),
                                          batch_size=recipe.batch_size)[b.hook]
    sae = sae_mod.train_sae(
        acts, width=width, architecture=architecture, k=k, l1_coefficient=l1, hook_name=b.hook,
        model_name=cfg.model_name, model=control, training_tokens=budget, seed=seed, device=recipe.device,
        progress=False,
    )
    report = {"architecture": architecture, "width": int(sae.cfg.d_sae), "k": k if architecture == "topk" else None,
              "training_tokens": budget, "training_rows": int(acts.shape[0]), **sae_mod.sae_metrics(sae, acts),
              "seconds": round(time.perf_counter() - start, 2)}
    sae_mod.save_sae(sae, directory)
    report_path.write_text(json.dumps(report))
    return sae, {**report, "cached": False}
