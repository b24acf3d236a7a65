"""Controls of the geometry stage: what SAE features add over raw neurons, and the activation-space view.

For every layer pair, beside the decoder-space scores of the grid:

- ``activations``: the matched features compared through their token activations (rows = compared tokens on
  which some matched feature fires in both models, columns = matched pairs), against the null that shuffles B's
  token rows.
- ``neurons``: the same matching and decoder-space metrics on the models' raw MLP neurons (activations at
  ``blocks.L.mlp.hook_post``, output directions ``W_out[L]``) of each hook's block, with the same nulls, so the
  report shows how much the SAE basis adds over the neuron basis.

Token rows are the first compared rows, at most ``geometry.n_control_tokens``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import Layer, layer_pairs, pair_key
from featgeom_tda.results import ControlRow, MetricScore

__all__ = ["controls"]

ACTIVATION_METRICS = ("cka", "rsa", "svcca")
MIN_PAIRS = 10


def controls(ctx: RunContext, metric_options: Any) -> list[ControlRow]:
    spec = ctx.recipe.geometry
    rows: list[ControlRow] = []
    if not spec.controls:
        return rows
    dataset = ctx.dataset()
    n_docs = _docs_for(dataset, spec.n_control_tokens)
    token_rows = dataset.row_mask(0, n_docs).sum()
    raw = _RawUnitsPerLayer(ctx, dataset.head(n_docs))  # each layer's neurons / residual read once, not per pair
    for a, b in layer_pairs(ctx.recipe):
        if "activations" in spec.controls:
            rows.append(_activation_row(ctx, a, b, int(token_rows), metric_options))
        if "residual" in spec.controls:
            rows.append(_residual_row(ctx, a, b, raw, metric_options))
        if "neurons" in spec.controls:
            rows.extend(_neuron_rows(ctx, a, b, raw, metric_options))
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


def _residual_row(ctx: RunContext, a: Layer, b: Layer, raw: _RawUnitsPerLayer, metric_options: Any) -> ControlRow:
    """The raw residual streams at the two hooks, every dimension, compared on the same token rows (the
    representational similarity the SAE bases are read against); null: B's token rows shuffled."""
    kind = "raw residual stream, token activations (all dimensions)"
    if ctx.rows_are_units():
        return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=0,
                          skipped="the rows are aligned units of two tokenizers; residual activations are per token")
    X = raw.get("residual", a).activations.astype(np.float64)
    Y = raw.get("residual", b).activations.astype(np.float64)
    scores = {}
    for metric in ACTIVATION_METRICS:
        try:
            scores[metric] = _score(metric, X, Y, ctx, metric_options(metric, ctx.recipe.geometry))
        except ValueError as exc:
            return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=0, skipped=str(exc))
    return ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=min(X.shape[1], Y.shape[1]), n_rows=int(X.shape[0]),
                      metrics=scores)


def _docs_for(dataset: Any, n_tokens: int) -> int:
    counts = np.cumsum(dataset.row_mask().sum(axis=1))
    return int(max(1, np.searchsorted(counts, n_tokens, side="right")))


def _score(metric: str, X: np.ndarray, Y: np.ndarray, ctx: RunContext, options: dict[str, Any]) -> MetricScore:
    res = ctx.engine.permutation_test(metric, X, Y, n_permutations=ctx.recipe.geometry.n_permutations, seed=ctx.recipe.seed,
                           **options)
    return MetricScore(score=res.score, null_mean=res.null_mean, null_std=res.null_std, p_value=res.p_value)


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
    scores = {}
    for metric in ACTIVATION_METRICS:
        try:
            scores[metric] = _score(metric, X, Y, ctx, metric_options(metric, ctx.recipe.geometry))
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
    scores = {metric: _score(metric, X, Y, ctx, metric_options(metric, ctx.recipe.geometry))
              for metric in ctx.recipe.geometry.metrics}
    return [ControlRow(a=a.key, b=b.key, kind=kind, n_pairs=len(m), n_rows=int(units_a.activations.shape[0]),
                       mean_correlation=float(np.mean(m.correlation)), metrics=scores)]
