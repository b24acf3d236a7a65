"""The explorer page of a run (``report/explorer.html``): the main layer pair's features, side by side.

For each feature of both layers: PCA coordinates of its decoder row, its top-activating examples with the
activation on every token of the window, a histogram of its non-zero activations, the tokens its decoder
direction promotes and suppresses through the model's unembedding, its concept label and whether it is dead,
the Mapper node(s) holding it (when the topology stage built Mapper graphs) and, when the crosscoder stage ran,
the class of its best-correlated crosscoder latent; the pairs of the main matching link the two panels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import Layer, main_pair, pair_key

__all__ = ["write_run_explorer"]

N_EXAMPLES = 4
WINDOW = 8  # tokens either side of the peak
N_OUTPUT_TOKENS = 6
N_BINS = 20


def write_run_explorer(ctx: RunContext, path: Path) -> Path:
    from featgeom_tda.analyses.projection import pca_projection
    from featgeom_tda.viz.explorer import write_explorer

    a, b = main_pair(ctx.recipe)
    strings = _display_strings(ctx)
    points = [pca_projection(ctx.decoder_rows(layer), metric="cosine", seed=ctx.recipe.seed).coords for layer in (a, b)]
    features = [_features(ctx, layer, strings) for layer in (a, b)]
    for side, feats in zip("ab", features):
        nodes = _mapper_nodes(ctx, side, len(feats))
        labels = _crosscoder_labels(ctx, side, len(feats))
        for f, node, label in zip(feats, nodes, labels):
            f["mapper_node"] = node
            f.update(label)
    return write_explorer(
        path, model_a=a.label, model_b=b.label, points_a=points[0], points_b=points[1], features_a=features[0],
        features_b=features[1], pairs=ctx.matchings()[pair_key(a, b)], title=f"Feature explorer: {a.label} vs {b.label}",
    )


def _mapper_nodes(ctx: RunContext, side: str, n: int) -> list[list[str] | None]:
    """Per feature of one side: the ids of the Mapper nodes holding it (None: in none, or no Mapper membership)."""
    import json

    from featgeom_tda.results import TopologyResult

    topo = ctx.stage_results.get("topology")
    mapper = topo.mapper if isinstance(topo, TopologyResult) else None
    membership = getattr(mapper, side).membership if mapper is not None else None
    path = Path(ctx.out_dir) / "topology" / membership if membership else None
    if path is None or not path.exists():
        return [None] * n
    nodes: list[list[str]] = [[] for _ in range(n)]
    for node, members in json.loads(path.read_text()).items():
        for i in members:
            if 0 <= int(i) < n:
                nodes[int(i)].append(str(node))
    return [x or None for x in nodes]


def _crosscoder_labels(ctx: RunContext, side: str, n: int) -> list[dict[str, Any]]:
    """Per feature of one side: the class, id and correlation of its best-correlated crosscoder latent ({} when
    the crosscoder stage did not run)."""
    from featgeom_tda.pipeline.stages.crosscoder import read_feature_labels
    from featgeom_tda.results import CrosscoderResult

    cc = ctx.stage_results.get("crosscoder")
    if not isinstance(cc, CrosscoderResult) or cc.skipped is not None or not Path(cc.feature_labels).exists():
        return [{} for _ in range(n)]
    labels = read_feature_labels(cc.feature_labels)[side]
    if len(labels["class"]) != n:
        raise ValueError(f"{cc.feature_labels} labels {len(labels['class'])} features of side {side}; expected {n}")
    return [{"crosscoder_class": c, "crosscoder_latent": (l if l >= 0 else None), "crosscoder_correlation": r}
            for c, l, r in zip(labels["class"], labels["latent"], labels["correlation"])]


def _display_strings(ctx: RunContext) -> list[str]:
    """Row token id -> the text it stands for: a unit's text when the rows are aligned units, else the token's
    (byte-level markers such as 'Ġ' turned back into spaces)."""
    if ctx.rows_are_units():
        return ctx.token_strings()
    return _rendered(ctx.sources.tokenizer, ctx.token_strings())


def _model_display_strings(ctx: RunContext, model: str) -> list[str]:
    """Token id -> text in one model's own vocabulary (what its unembedding scores)."""
    if not ctx.rows_are_units():
        return _display_strings(ctx)
    return _rendered(ctx.sources.tokenizers.get(model, ctx.sources.tokenizer), ctx.model_token_strings(model))


def _rendered(tokenizer: Any, raw: list[str]) -> list[str]:
    convert = getattr(tokenizer, "convert_tokens_to_string", None)
    if convert is None:
        return raw
    out = []
    for s in raw:
        try:
            out.append(convert([s]) if s else s)
        except Exception:  # noqa: BLE001 - a token the tokenizer cannot render stays as its vocabulary string
            out.append(s)
    return out


def _features(ctx: RunContext, layer: Layer, strings: list[str]) -> list[dict[str, Any]]:
    from featgeom_tda.analyses.interpret import feature_concepts
    from featgeom_tda.core.token_filters import top_activations
    from featgeom_tda.sources.concepts import load_concept_groups

    acts = ctx.activations()[layer.key]
    matrix = acts.matrix.tocsc()
    rows, _ = top_activations(acts, k=N_EXAMPLES)
    concepts = feature_concepts(acts, ctx.token_strings(), load_concept_groups())
    promoted, suppressed = _output_tokens(ctx, layer, _model_display_strings(ctx, layer.model))
    fired = np.diff(matrix.indptr) > 0
    out = []
    for f in range(acts.n_features):
        column = matrix[:, f]
        values = column.data
        hist, edges = np.histogram(values, bins=N_BINS) if values.size else (np.zeros(N_BINS, int), np.array([0.0, 1.0]))
        examples = [_window(acts, column, int(r), strings) for r in rows[f] if r >= 0]
        out.append({
            "examples": examples, "histogram": hist.tolist(), "histogram_range": (float(edges[0]), float(edges[-1])),
            "promoted": promoted[f], "suppressed": suppressed[f], "dead": not bool(fired[f]),
            "concept": str(concepts[f]) if concepts[f] else None,
        })
    return out


def _window(acts: Any, column: Any, row: int, strings: list[str]) -> tuple[list[str], list[float]]:
    """The tokens of ``row``'s document within WINDOW rows of it, and the feature's activation on each."""
    doc = acts.doc_index[row]
    lo, hi = max(0, row - WINDOW), min(acts.n_tokens, row + WINDOW + 1)
    keep = np.arange(lo, hi)[acts.doc_index[lo:hi] == doc]
    dense = np.asarray(column[keep].todense()).ravel()
    return [strings[t] if 0 <= t < len(strings) else f"<{t}>" for t in acts.token_ids[keep]], dense.tolist()


def _output_tokens(ctx: RunContext, layer: Layer, strings: list[str]) -> tuple[list[list], list[list]]:
    """Per feature: the tokens whose logits its decoder direction raises most and lowers most."""
    import torch

    model = ctx.sources.models[layer.model]
    W_dec = torch.as_tensor(ctx.decoder_rows(layer), dtype=torch.float32)
    W_U = model.W_U.detach().float().cpu()
    promoted, suppressed = [], []
    with torch.no_grad():
        for start in range(0, W_dec.shape[0], 512):
            logits = W_dec[start:start + 512] @ W_U
            top = torch.topk(logits, N_OUTPUT_TOKENS, dim=1)
            bottom = torch.topk(-logits, N_OUTPUT_TOKENS, dim=1)
            for vals, idx, nvals, nidx in zip(top.values, top.indices, bottom.values, bottom.indices):
                promoted.append([(_token(strings, int(i)), float(v)) for v, i in zip(vals, idx)])
                suppressed.append([(_token(strings, int(i)), -float(v)) for v, i in zip(nvals, nidx)])
    return promoted, suppressed


def _token(strings: list[str], i: int) -> str:
    return strings[i] if 0 <= i < len(strings) else f"<{i}>"
