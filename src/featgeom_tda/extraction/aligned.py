"""SAE activations of models with different tokenizers, on the comparison units of a :class:`TokenAlignment`.

Each model runs on its own tokens of each document (the alignment holds them; BOS is prepended by each
tokenizer's own convention). A unit's feature activation reduces over the unit's tokens in that model
(``max`` by default, ``last`` or ``mean``), so the rows of every store are the same units in the same order,
whichever tokenizer made them. Units that contain a model's position 0 (the attention-sink outlier of a model
without BOS) are left out on both sides, and counted.

Row metadata of the stores (``row_ids="last_token"``, the default): ``doc_index`` the document, ``position``
the unit's first character in it, ``token_ids`` the id of the unit's last token in that model. With
``row_ids="unit"`` the rows speak of units instead, the same in every store: ``token_ids`` index the unit
vocabulary of :func:`unit_vocabulary` (so token filters, concept labels and same-token scores read one
vocabulary for both models: a same-token score becomes a same-unit score), and ``position`` is the unit's index
among the document's kept units (so :func:`units_dataset` lays the units out as a token matrix for examples). One shard per batch of documents; a store made from
the same alignment and sources is reused when finished and resumed when not.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._cache import Hasher
from featgeom_tda.core._validation import check_choice, check_output_dir, check_positive_int
from featgeom_tda.core.store import ActivationStore, StoreError
from featgeom_tda.core.types import FeatureActivations, Provenance
from featgeom_tda.extraction.activations import _run_hooks
from featgeom_tda.extraction.alignment import TokenAlignment, reduce_over_units
from featgeom_tda.extraction.encoding import encode_batch
from featgeom_tda.extraction.source import ActivationSource, weights_fingerprint
from featgeom_tda.sources.checkpoints import tokenizer_adds_bos

__all__ = ["extract_aligned_activations", "aligned_hook_activations", "aligned_units", "kept_units", "unit_vocabulary",
           "units_dataset"]

log = logging.getLogger(__name__)

REDUCTIONS = ("max", "last", "mean")
ROW_IDS = ("last_token", "unit")


def aligned_units(alignment: TokenAlignment, *, bos_a: bool, bos_b: bool) -> np.ndarray:
    """Bool (n_units,): the units that hold neither model's position 0 (with BOS, position 0 is the BOS)."""
    return (alignment.a_start + int(bos_a) >= 1) & (alignment.b_start + int(bos_b) >= 1)


def model_adds_bos(model: Any) -> bool:
    """Whether the model's own tokenizer prepends BOS (the convention each side of an alignment runs with)."""
    tok = getattr(model, "tokenizer", None)
    return tok is not None and tokenizer_adds_bos(tok)


def kept_units(alignment: TokenAlignment, model_a: Any, model_b: Any,
               prepend_bos: tuple[bool, bool] | None = None) -> np.ndarray:
    """Bool (n_units,): the units :func:`extract_aligned_activations` writes for these two models."""
    if prepend_bos is None:
        prepend_bos = (model_adds_bos(model_a), model_adds_bos(model_b))
    return aligned_units(alignment, bos_a=bool(prepend_bos[0]), bos_b=bool(prepend_bos[1]))


def unit_vocabulary(alignment: TokenAlignment) -> tuple[list[str], np.ndarray]:
    """The distinct unit strings and each unit's id among them: (strings, ids int64 (n_units,)).

    A unit's string is its text, with one leading space when text precedes it in its document without
    touching it (whitespace or a dropped span), so that ``" king"`` and ``"king"`` stay apart as the tokens of
    either tokenizer do and examples read with their spaces. Strings are sorted, so ids do not depend on
    document order.
    """
    starts = alignment.char_start
    prev_stop = np.full(len(alignment), -1, dtype=np.int64)
    if len(alignment):
        same_doc = np.concatenate([[False], alignment.doc[1:] == alignment.doc[:-1]])
        prev_stop[1:] = np.where(same_doc[1:], alignment.char_stop[:-1], -1)
    gap = np.where(prev_stop >= 0, starts > prev_stop, starts > 0)
    strings = [(" " + t) if g else t for t, g in zip(alignment.text, gap)]
    vocab = sorted(set(strings))
    index = {s: i for i, s in enumerate(vocab)}
    return vocab, np.fromiter((index[s] for s in strings), dtype=np.int64, count=len(strings))


def units_dataset(alignment: TokenAlignment, keep: np.ndarray, name: str | None = None) -> Any:
    """The kept units as a :class:`TokenizedDataset` of unit-vocabulary ids: row d holds document d's kept
    units in order (right-padded), so the stores' rows are its real positions in order (``row_mask``)."""
    from featgeom_tda.extraction.dataset import TokenizedDataset

    _, ids = unit_vocabulary(alignment)
    docs, kept_ids = alignment.doc[keep], ids[keep]
    counts = np.bincount(docs, minlength=alignment.n_documents)
    tokens = np.zeros((alignment.n_documents, max(1, int(counts.max(initial=0)))), dtype=np.int64)
    mask = np.arange(tokens.shape[1])[None, :] < counts[:, None]
    tokens[mask] = kept_ids  # units are in document, then text order
    return TokenizedDataset(tokens=tokens, attention_mask=mask, bos=False,
                            tokenizer_name=f"units of {alignment.tokenizer_a} x {alignment.tokenizer_b}",
                            tokenizer_hash=_alignment_digest(alignment), dataset_name=name)


def _unit_positions(alignment: TokenAlignment, keep: np.ndarray) -> np.ndarray:
    """Int64 (n_units,): each kept unit's index among its document's kept units (-1 where not kept)."""
    pos = np.full(len(alignment), -1, dtype=np.int64)
    docs = alignment.doc[keep]
    if docs.size:
        first = np.concatenate([[0], np.flatnonzero(np.diff(docs)) + 1])
        run_start = np.repeat(first, np.diff(np.concatenate([first, [docs.size]])))
        pos[np.flatnonzero(keep)] = np.arange(docs.size) - run_start
    return pos


def _side_tokens(alignment: TokenAlignment, side: str, bos_id: int | None) -> list[np.ndarray]:
    tokens = alignment.tokens_a if side == "a" else alignment.tokens_b
    if bos_id is None:
        return [np.asarray(t, dtype=np.int64) for t in tokens]
    return [np.concatenate([[bos_id], t]).astype(np.int64) for t in tokens]


def _meta(alignment_digest: str, src: ActivationSource, reduce: str, batch_size: int, bos: bool,
          row_ids: str) -> dict[str, Any]:
    meta = {"alignment": alignment_digest, "reduce": reduce, "batch_size": batch_size, "bos": bos,
            "hook": src.hook_name, "model": weights_fingerprint(src.model), "sae": weights_fingerprint(src.sae)}
    if row_ids != "last_token":  # stores written before the option keep their meta
        meta["row_ids"] = row_ids
    return {"aligned": meta}


def _alignment_digest(alignment: TokenAlignment) -> str:
    h = Hasher()
    for name in ("doc", "char_start", "char_stop", "a_start", "a_stop", "b_start", "b_stop"):
        h.update_array(np.asarray(getattr(alignment, name), dtype=np.int64))
    for tokens in (*alignment.tokens_a, *alignment.tokens_b):
        h.update_array(np.asarray(tokens, dtype=np.int64))
    return h.hexdigest()


def extract_aligned_activations(
    sources_a: Sequence[ActivationSource],
    sources_b: Sequence[ActivationSource],
    alignment: TokenAlignment,
    out_dir: str | Path,
    *,
    reduce: Literal["max", "last", "mean"] = "max",
    row_ids: Literal["last_token", "unit"] = "last_token",
    batch_size: int = 8,
    device: Any = "cpu",
    progress: bool = True,
    overwrite: bool = False,
    prepend_bos: tuple[bool, bool] | None = None,
) -> dict[str, ActivationStore]:
    """Write one store per source under ``out_dir/<name>/``, every store holding the alignment's kept units.

    Args:
        sources_a, sources_b: the sources of model A (whose tokenizer is the alignment's ``tokenizer_a``) and of
            model B; sources of one model share its forward pass.
        alignment: from :func:`~featgeom_tda.extraction.alignment.align_tokens`.
        reduce: how a unit's token activations become one row: ``max`` per feature, the ``last`` token's, or the
            ``mean``.
        row_ids: the row metadata: ``last_token`` (each model's last token id, the first character) or ``unit``
            (unit-vocabulary ids, the unit's index among its document's kept units; see the module docstring).
        batch_size: documents per forward pass (and per shard).
        overwrite: replace stores made from other inputs; without it they are refused and nothing is deleted.
        prepend_bos: whether models A and B run with their BOS first; default: each model's own tokenizer's
            convention (``model.tokenizer``). Pass the Hugging Face tokenizers' convention when the model's
            tokenizer wrapper adds a BOS its checkpoint does not use (TransformerLens does so for SmolLM2).

    Returns:
        name -> finished :class:`ActivationStore`.
    """
    from tqdm.auto import tqdm

    if not isinstance(alignment, TokenAlignment):
        raise ValueError(f"alignment must be a TokenAlignment (see align_tokens), got {type(alignment).__name__}")
    check_choice(reduce, "reduce", REDUCTIONS)
    check_choice(row_ids, "row_ids", ROW_IDS)
    batch_size = check_positive_int(batch_size, "batch_size")
    sides = {"a": list(sources_a), "b": list(sources_b)}
    for side, srcs in sides.items():
        if not srcs or not all(isinstance(s, ActivationSource) for s in srcs):
            raise ValueError(f"sources_{side} must be a non-empty list of ActivationSource")
        if len({id(s.model) for s in srcs}) != 1:
            raise ValueError(f"sources_{side} must all read one model (the one whose tokenizer made side {side})")
    names = [s.name for srcs in sides.values() for s in srcs]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must differ (they name the store directories); got {names}")
    check_output_dir(out_dir, "out_dir")
    out = Path(out_dir)

    bos, tokens, keep = _side_inputs(alignment, {side: srcs[0].model for side, srcs in sides.items()}, prepend_bos)
    digest = _alignment_digest(alignment)
    if row_ids == "unit":
        unit_ids, unit_pos = unit_vocabulary(alignment)[1], _unit_positions(alignment, keep)
    n_docs = alignment.n_documents
    n_batches = -(-n_docs // batch_size)
    pad_len = {side: max(t.shape[0] for t in tokens[side]) for side in sides}  # one length for every batch

    stores: dict[str, ActivationStore] = {}
    try:
        done = {}
        for side, srcs in sides.items():
            for src in srcs:
                stores[src.name], done[src.name] = _open(out / src.name, src, _meta(digest, src, reduce, batch_size,
                                                                                    bos[side], row_ids), overwrite)
        first = min(done.values())
        unit_docs = alignment.doc
        for b in tqdm(range(first, n_batches), desc="aligned activations", unit="batch",
                      disable=None if progress else True):
            d0, d1 = b * batch_size, min((b + 1) * batch_size, n_docs)
            in_batch = (unit_docs >= d0) & (unit_docs < d1)
            units = np.flatnonzero(in_batch & keep)
            for side, srcs in sides.items():
                todo = [s for s in srcs if done[s.name] <= b]
                if not todo:
                    continue
                docs = tokens[side][d0:d1]
                captured, mask, ranges = _forward_units(srcs[0].model, docs, pad_len[side], [s.hook_name for s in todo],
                                                        alignment, side, units, d0, bos[side], device)
                if row_ids == "unit":
                    ids, positions = unit_ids[units], unit_pos[units]
                else:
                    ids = np.concatenate(docs)[ranges[:, 1] - 1] if units.size else np.zeros(0, dtype=np.int64)
                    positions = alignment.char_start[units]
                for src in todo:
                    per_token = encode_batch(src.sae, captured[src.hook_name], token_mask=mask)
                    rows = reduce_over_units(per_token, ranges, mode=reduce) if units.size else None
                    if units.size:
                        acts = FeatureActivations(
                            sp.csr_matrix(rows, dtype=np.float32), token_ids=ids, doc_index=unit_docs[units],
                            position=positions, provenance=stores[src.name].provenance,
                        )
                        stores[src.name].append(acts, meta={"batch": b, "doc_start": d0, "doc_stop": d1})
                    done[src.name] = b + 1
                del captured
        for store in stores.values():
            if not store.complete:
                store.finalize(n_units=int(keep.sum()), n_dropped_position0=int((~keep).sum()), n_batches=n_batches)
    except BaseException:
        for store in stores.values():
            store.close()
        raise
    return stores


def _side_inputs(alignment: TokenAlignment, models: dict[str, Any], prepend_bos: tuple[bool, bool] | None
                 ) -> tuple[dict[str, bool], dict[str, list[np.ndarray]], np.ndarray]:
    """Per side ("a", "b"): whether it runs with BOS and its token ids per document; and the kept units."""
    bos, tokens = {}, {}
    for side, model in models.items():
        tok = getattr(model, "tokenizer", None)
        bos[side] = model_adds_bos(model) if prepend_bos is None else bool(prepend_bos["ab".index(side)])
        if bos[side] and (tok is None or tok.bos_token_id is None):
            raise ValueError(f"prepend_bos asks for a BOS on side {side.upper()}, but its model's tokenizer has none")
        tokens[side] = _side_tokens(alignment, side, tok.bos_token_id if bos[side] else None)
        longest = max((t.shape[0] for t in tokens[side]), default=0)
        n_ctx = int(model.cfg.n_ctx)
        if longest > n_ctx:
            raise ValueError(
                f"a document has {longest} tokens of model {side.upper()} but its n_ctx is {n_ctx}; split the "
                "documents into shorter ones before aligning them"
            )
    keep = aligned_units(alignment, bos_a=bos["a"], bos_b=bos["b"])
    if not keep.any():
        raise ValueError("no unit of the alignment is kept (every unit holds a model's position 0)")
    return bos, tokens, keep


def aligned_hook_activations(
    model_a: Any,
    hooks_a: Sequence[str],
    model_b: Any,
    hooks_b: Sequence[str],
    alignment: TokenAlignment,
    *,
    reduce: Literal["last", "mean"] = "last",
    batch_size: int = 8,
    device: Any = "cpu",
    prepend_bos: tuple[bool, bool] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Raw hook activations of both models on the alignment's kept units, in the rows of the aligned stores.

    A side whose hook list is empty does not run (the kept units do not depend on it).

    A unit's row is the activation at its ``last`` token in that model (the default: in a causal model it is the
    position that has read exactly the unit's characters, in either tokenizer) or the ``mean`` over its tokens;
    ``max`` is not offered, as it would mix the coordinates of different tokens of a signed dense vector.
    The kept units, BOS convention and document batches are those of :func:`extract_aligned_activations`
    (same ``prepend_bos``), so row i here is row i of its stores.

    Returns:
        ``{"a": {hook: float32 (n_kept, d_A)}, "b": {hook: float32 (n_kept, d_B)}}``.
    """
    from tqdm.auto import tqdm

    if not isinstance(alignment, TokenAlignment):
        raise ValueError(f"alignment must be a TokenAlignment (see align_tokens), got {type(alignment).__name__}")
    check_choice(reduce, "reduce", ("last", "mean"))
    batch_size = check_positive_int(batch_size, "batch_size")
    hooks = {"a": list(hooks_a), "b": list(hooks_b)}
    for side, names in hooks.items():
        if not all(isinstance(h, str) for h in names):
            raise ValueError(f"hooks_{side} must be a list of hook names, got {names!r}")
    if not hooks["a"] and not hooks["b"]:
        raise ValueError("hooks_a and hooks_b are both empty: name at least one hook")
    models = {"a": model_a, "b": model_b}
    bos, tokens, keep = _side_inputs(alignment, models, prepend_bos)
    n_docs = alignment.n_documents
    pad_len = {side: max(t.shape[0] for t in tokens[side]) for side in hooks}  # as the aligned stores were written
    parts: dict[str, dict[str, list[np.ndarray]]] = {side: {h: [] for h in names} for side, names in hooks.items()}
    for d0 in tqdm(range(0, n_docs, batch_size), desc="aligned hook activations", unit="batch",
                   disable=None if progress else True):
        d1 = min(d0 + batch_size, n_docs)
        units = np.flatnonzero((alignment.doc >= d0) & (alignment.doc < d1) & keep)
        if not units.size:
            continue
        for side, names in hooks.items():
            if not names:  # a side with no hook does not run
                continue
            captured, mask, ranges = _forward_units(models[side], tokens[side][d0:d1], pad_len[side], names,
                                                    alignment, side, units, d0, bos[side], device)
            for h in names:
                per_token = captured[h][mask].float().cpu().numpy()
                parts[side][h].append(np.asarray(reduce_over_units(per_token, ranges, mode=reduce), dtype=np.float32))
            del captured
    return {side: {h: np.concatenate(rows, axis=0) if rows else
                   np.zeros((0, int(models[side].cfg.d_model)), dtype=np.float32) for h, rows in by_hook.items()}
            for side, by_hook in parts.items()}


def _forward_units(model: Any, docs: list[np.ndarray], pad_len: int, hook_names: list[str], alignment: TokenAlignment,
                   side: str, units: np.ndarray, d0: int, bos: bool, device: Any) -> tuple[dict[str, Any], Any, np.ndarray]:
    """One side's forward pass over a batch of documents (right-padded to ``pad_len``).

    Returns the captured hook tensors (batch, pad_len, d), the bool token mask (batch, pad_len) and the
    (n_units, 2) token ranges ``[start, stop)`` of ``units`` (documents from ``d0`` on) in the batch's
    real tokens concatenated, which is how :func:`encode_batch` and ``tensor[mask]`` lay them out.
    """
    import torch

    batch = np.zeros((len(docs), pad_len), dtype=np.int64)
    mask = np.zeros(batch.shape, dtype=bool)
    for i, t in enumerate(docs):
        batch[i, : t.shape[0]], mask[i, : t.shape[0]] = t, True
    captured = _run_hooks(model, torch.from_numpy(batch).to(device), torch.from_numpy(mask.astype(np.int64)).to(device),
                          hook_names)
    lengths = mask.sum(axis=1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    lo = (alignment.a_start if side == "a" else alignment.b_start)[units]
    hi = (alignment.a_stop if side == "a" else alignment.b_stop)[units]
    base = starts[alignment.doc[units] - d0] + int(bos)
    return captured, torch.from_numpy(mask), np.stack([base + lo, base + hi], axis=1)


def _open(path: Path, src: ActivationSource, meta: dict[str, Any], overwrite: bool) -> tuple[ActivationStore, int]:
    """The store at ``path`` and the first batch it still needs (reused, resumed, new or refused)."""
    provenance = Provenance(model=src.model_id or getattr(src.model.cfg, "model_name", None), hook_name=src.hook_name,
                            sae_id=src.sae_id)
    n_features = int(src.sae.cfg.d_sae)
    if (path / "manifest.json").exists() and not overwrite:
        store = ActivationStore.open(path)
        if store.meta.get("aligned") != json.loads(json.dumps(meta["aligned"])) or store.n_features != n_features:
            raise StoreError(
                f"store {str(path)!r} holds activations of other inputs (alignment, model, SAE, hook, reduce or "
                "batch size); pass overwrite=True to replace it or choose another out_dir"
            )
        if store.complete:
            return store, 1 << 62
        store = ActivationStore.open_or_create(path, n_features=n_features, provenance=provenance, meta=meta)
        return store, store.n_shards
    store = ActivationStore.create(path, n_features=n_features, provenance=provenance, meta=meta, overwrite=overwrite)
    return store, 0
