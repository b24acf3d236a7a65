"""SAE feature activations of N sources on the same tokens, streamed into activation stores.

The flow is::

    texts --tokenize_documents--> TokenizedDataset --extract_activations--> {name: ActivationStore}

- :func:`extract_activations` takes any number of :class:`ActivationSource`. Sources that share a model
  object are grouped: per batch each model runs ONE forward pass (stopping after the last block any of its
  hooks needs) with hooks on all of its sources' hook names, and each source's SAE encodes its own hook's
  tensor. One sparse float32 shard per batch goes to ``out_dir/<name>/``; row ``i`` of every store is the
  same token (same document, position and token id).
- Extraction is resumable: each shard records its batch index and a digest of its rows, and the store's
  ``meta`` fingerprints the options (dataset, model and SAE weights, hook, ``keep_bos``, ``batch_size``); a
  rerun continues each store after its last complete shard and ends with the same arrays as an
  uninterrupted run.
- No store is ever deleted without ``overwrite=True``: a store made from other inputs (dataset, tokenizer,
  model or SAE weights, hook, width, ``keep_bos``), finished or not, is refused with :class:`StoreError`
  saying what differs, and so is a damaged manifest (see ``featgeom store-repair``) and an unfinished store
  written with another ``batch_size``. A finished store with the same rows is reused whatever the
  ``batch_size``; a finalized store that lost shards is continued.
- While it writes, each store holds its writer lock (see :mod:`featgeom_tda.core.store`); the locks are
  released when :func:`extract_activations` returns or raises.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from featgeom_tda.core._cache import Hasher
from featgeom_tda.core._validation import check_output_dir, check_positive_int
from featgeom_tda.core.store import REPAIR_HINT, ActivationStore, StoreError
from featgeom_tda.core.types import FeatureActivations, Provenance
from featgeom_tda.extraction.dataset import TokenizedDataset, tokenize_documents, tokenizer_fingerprint
from featgeom_tda.extraction.encoding import encode_batch
from featgeom_tda.extraction.source import ActivationSource, check_device, stop_layer, weights_fingerprint

__all__ = [
    "TokenizedDataset",
    "tokenize_documents",
    "tokenizer_fingerprint",
    "ActivationSource",
    "encode_batch",
    "extract_activations",
    "load_activations",
]

log = logging.getLogger(__name__)

EXTRACTION_FORMAT = "featgeom-activations/1"
_FINAL_META_KEYS = ("n_tokens", "n_batches")
# meta keys that are extraction options, not inputs: a store that differs only in these is recomputable
_OPTION_META_KEYS = ("batch_size",)


# ------------------------------------------------------------------------------------------------------
# extraction
# ------------------------------------------------------------------------------------------------------
def _rows_hash(rows: dict[str, np.ndarray]) -> str:
    """Full hex sha256 of the int64 bytes of doc_index, position and token_ids (persisted in shard meta)."""
    h = Hasher()
    for key in ("doc_index", "position", "token_ids"):
        h.update_bytes(np.ascontiguousarray(rows[key], dtype=np.int64).tobytes())
    return h.hexdigest()


def _check_tokenizers(sources: list[ActivationSource], dataset: TokenizedDataset) -> None:
    hashes: dict[str, str] = {}
    for src in sources:
        tok = getattr(src.model, "tokenizer", None)
        if tok is not None:
            hashes[src.name] = tokenizer_fingerprint(tok)
        else:
            log.info("model of source %r has no tokenizer; only its vocabulary size is checked", src.name)
    if len(set(hashes.values())) > 1:
        (a, ha), (b, hb) = list(hashes.items())[:2]
        raise ValueError(
            f"sources {a!r} and {b!r} use different tokenizers (fingerprints {ha[:12]}... and {hb[:12]}...); "
            "their tokens do not line up row by row. Compare models that share a tokenizer, or give an alignment"
        )
    for name, h in hashes.items():
        if h != dataset.tokenizer_hash:
            raise ValueError(
                f"dataset was tokenized with {dataset.tokenizer_name!r} (fingerprint {dataset.tokenizer_hash[:12]}...) "
                f"but the model of source {name!r} uses another tokenizer (fingerprint {h[:12]}...); "
                "tokenize the texts with the models' tokenizer"
            )
    max_id = int(dataset.tokens[dataset.attention_mask].max()) if dataset.attention_mask.any() else 0
    for src in sources:
        cfg = src.model.cfg
        if max_id >= int(cfg.d_vocab):
            raise ValueError(
                f"dataset holds token id {max_id} but the model of source {src.name!r} has d_vocab={cfg.d_vocab}"
            )
        if dataset.seq_len > int(cfg.n_ctx):
            raise ValueError(
                f"dataset has seq_len {dataset.seq_len} but the model of source {src.name!r} has n_ctx={cfg.n_ctx}; "
                "tokenize with a smaller max_length"
            )


def _store_meta(
    src: ActivationSource,
    dataset: TokenizedDataset,
    keep_bos: bool,
    batch_size: int,
    fingerprints: dict[int, str],
) -> dict[str, Any]:
    """The options a store's content depends on; a store made with other options is not resumed."""
    for module in (src.model, src.sae):
        if id(module) not in fingerprints:
            fingerprints[id(module)] = weights_fingerprint(module)
    return {
        "format": EXTRACTION_FORMAT,
        "source": src.name,
        "dataset_fingerprint": dataset.fingerprint,
        "dataset_name": dataset.dataset_name,
        "tokenizer_hash": dataset.tokenizer_hash,
        "n_docs": dataset.n_docs,
        "seq_len": dataset.seq_len,
        "bos": dataset.bos,
        "keep_bos": bool(keep_bos),
        "batch_size": int(batch_size),
        "model": src.model_label,
        "model_fingerprint": fingerprints[id(src.model)],
        "hook_name": src.hook_name,
        "sae": src.sae_label,
        "sae_fingerprint": fingerprints[id(src.sae)],
        "d_sae": src.d_sae,
    }


def _provenance(src: ActivationSource, dataset: TokenizedDataset) -> Provenance:
    return Provenance(
        model=src.model_label,
        hook_name=src.hook_name,
        sae_id=src.sae_label,
        dataset=dataset.dataset_name,
        extra={"source": src.name, "tokenizer": dataset.tokenizer_name},
    )


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 24 else text[:21] + '..."'


def _input_differences(old: ActivationStore, src: ActivationSource, meta: dict[str, Any]) -> list[str]:
    """What makes the store ``old`` hold other rows or values than ``meta`` asks for (empty if none).

    Everything but ``batch_size`` counts: it changes how rows are grouped into shards, not the rows.
    """
    want = json.loads(json.dumps(meta))
    have = {k: v for k, v in old.meta.items() if k not in _FINAL_META_KEYS}
    diffs = []
    if old.n_features != src.d_sae:
        diffs.append(f"width (n_features {old.n_features} in the store, {src.d_sae} asked for)")
    for key in sorted(set(want) | set(have)):
        if key in _OPTION_META_KEYS or have.get(key) == want.get(key):
            continue
        what = {
            "dataset_fingerprint": "dataset fingerprint (other texts or tokenization)",
            "sae_fingerprint": "SAE weights",
            "model_fingerprint": "model weights",
            "keep_bos": "keep_bos (whether BOS positions are rows)",
        }.get(key, key)
        diffs.append(f"{what} ({_short(have.get(key))} in the store, {_short(want.get(key))} asked for)")
    return diffs


def _store_plan(path: Path, src: ActivationSource, meta: dict[str, Any], overwrite: bool) -> str:
    """How to use what is at ``path``: ``new``, ``reuse``, ``resume``, ``reopen`` or ``overwrite``.

    Raises :class:`StoreError` (unless ``overwrite``) for a store that cannot be opened or continued as
    asked: a damaged manifest, other inputs, or an unfinished store written with another ``batch_size``.
    Nothing is ever deleted without ``overwrite=True``.
    """
    if not (path / "manifest.json").exists():
        if not any(path.glob("shard_*.safetensors")):
            return "new"
        if overwrite:
            return "overwrite"
        raise StoreError(
            f"store {str(path)!r} of source {src.name!r} holds shard files but no manifest; "
            + REPAIR_HINT.format(path=path) + ", or pass overwrite=True to start it anew"
        )
    try:
        old = ActivationStore.open(path)
    except StoreError:
        if overwrite:
            return "overwrite"
        raise
    state = "a finished" if old.complete else ("an incomplete" if old.finalized else "an unfinished")
    refusal = f"store {str(path)!r} of source {src.name!r} is {state} extraction "
    diffs = _input_differences(old, src, meta)
    if diffs:
        if overwrite:
            return "overwrite"
        raise StoreError(
            refusal + "from other inputs; it differs in " + "; ".join(diffs)
            + ". Refusing to delete it: use another out_dir, or pass overwrite=True to rebuild it"
        )
    if old.complete:
        return "reuse"  # the same rows; another batch_size would only regroup them into other shards
    if old.meta.get("batch_size") != meta["batch_size"]:
        if overwrite:
            return "overwrite"
        raise StoreError(
            refusal + f"written with batch_size={old.meta.get('batch_size')}; resume it with that batch_size, "
            "or pass overwrite=True to start it anew"
        )
    return "reopen" if old.finalized else "resume"


def _open_store(path: Path, plan: str, src: ActivationSource, meta: dict[str, Any], prov: Provenance) -> ActivationStore:
    """Carry out :func:`_store_plan`'s ``plan`` for the store at ``path``; writable unless reused."""
    if plan == "reuse":
        old = ActivationStore.open(path)
        if old.meta.get("batch_size") != meta["batch_size"]:
            log.info("store %s holds these rows already (written with batch_size %s); reusing it",
                     path, old.meta.get("batch_size"))
        return old
    if plan == "reopen":  # finalized but shards were lost: continue it as an unfinished store
        store = ActivationStore.open(path)
        store.lock()
        for key in _FINAL_META_KEYS:
            store.meta.pop(key, None)
        store.truncate(store.n_shards)
        log.warning("%s; continuing it", store.incomplete_reason or f"store {path} lost shards")
        return store
    if plan == "overwrite":
        log.warning("store %s is replaced (overwrite=True)", path)
        return ActivationStore.create(path, n_features=src.d_sae, provenance=prov, meta=meta, overwrite=True)
    return ActivationStore.open_or_create(path, n_features=src.d_sae, provenance=prov, meta=meta)


def _truncate_store(store: ActivationStore, n_shards: int) -> None:
    """Forget shards ``n_shards:`` (their files are overwritten by later appends)."""
    store.truncate(n_shards)


def _resume_point(store: ActivationStore, dataset: TokenizedDataset, batch_size: int, keep_bos: bool) -> int:
    """Index of the first batch still to do; shards that are missing, corrupt or inconsistent are dropped."""
    shards = store.shards
    good = 0
    last_batch = -1
    for i, info in enumerate(shards):
        batch = info.meta.get("batch")
        if not isinstance(batch, int) or batch <= last_batch or batch * batch_size >= dataset.n_docs:
            break
        if not (store.path / info.file).exists():
            break
        start = batch * batch_size
        rows = dataset.rows(start, min(start + batch_size, dataset.n_docs), keep_bos=keep_bos)
        if info.meta.get("rows_sha256") != _rows_hash(rows) or info.n_rows != rows["doc_index"].shape[0]:
            break
        if i == len(shards) - 1:
            try:
                store.verify_shard(info)
            except StoreError as exc:
                log.warning("%s; recomputing it", exc)
                break
        good = i + 1
        last_batch = batch
    if good < len(shards):
        log.warning("store %s: keeping %d of %d shards, recomputing the rest", store.path, good, len(shards))
        _truncate_store(store, good)
    return last_batch + 1


def _check_alignment(stores: dict[str, ActivationStore]) -> None:
    """Every store must hold the same batches with the same (doc, position, token) rows."""
    names = list(stores)
    ref = [(s.meta.get("batch"), s.n_rows, s.meta.get("rows_sha256")) for s in stores[names[0]].shards]
    for name in names[1:]:
        other = [(s.meta.get("batch"), s.n_rows, s.meta.get("rows_sha256")) for s in stores[name].shards]
        if other != ref:
            raise StoreError(
                f"stores {names[0]!r} and {name!r} do not hold the same token rows "
                f"({len(ref)} and {len(other)} shards); delete them and extract again"
            )


def extract_activations(
    sources: Sequence[ActivationSource],
    dataset: TokenizedDataset,
    out_dir: str | Path,
    *,
    batch_size: int = 32,
    keep_bos: bool = False,
    device: Any = "cpu",
    progress: bool = True,
    alignment: Any = None,
    max_batches: int | None = None,
    on_shard: Callable[[str, int], None] | None = None,
    overwrite: bool = False,
) -> dict[str, ActivationStore]:
    """Stream the SAE feature activations of any number of sources on ``dataset`` into stores.

    Sources that share a model object form a group: each batch of ``batch_size`` documents is run through
    each model once (up to the last block any of its hooks needs, with hooks on all of them), encoded by
    each source's SAE, and written as one shard to ``out_dir/<name>/`` with per-row token id, document index
    and position. Padding never becomes a row; BOS becomes one only with ``keep_bos=True``. Row ``i`` is the
    same token in every store. Memory is bounded by one batch.

    Resuming: a rerun with the same options continues each store after its last complete shard; a finished
    store is returned as is. ``max_batches`` stops after that many batches (stores stay unfinished);
    ``on_shard(name, batch)`` is called each time a source finishes a batch (a batch whose documents hold
    no row, e.g. only BOS, writes no shard).

    A store in ``out_dir`` made from other inputs (dataset fingerprint, tokenizer, model or SAE weights, hook,
    width, ``keep_bos``), finished or not, raises :class:`StoreError` saying what differs, before any store is
    touched; pass ``overwrite=True`` to rebuild it. Each store holds its writer lock while this function runs; another
    process writing the same store makes it raise :class:`StoreError` naming that process.

    Returns:
        {source name: ActivationStore}; finished stores have meta ``n_tokens``, ``n_docs``, ``keep_bos``.
    """
    if alignment is not None:
        raise NotImplementedError(
            "alignment is not implemented: activations of models with different tokenizers cannot yet be "
            "paired token by token; compare models that share a tokenizer"
        )
    if isinstance(sources, ActivationSource):
        sources = [sources]
    sources = list(sources)
    if not sources:
        raise ValueError("sources must hold at least one ActivationSource, got an empty list")
    for i, src in enumerate(sources):
        if not isinstance(src, ActivationSource):
            raise ValueError(f"sources[{i}] must be an ActivationSource, got {type(src).__name__}")
    names = [s.name for s in sources]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(
                f"source names must differ (they name the store directories); {name!r} is given more than once"
            )
        seen.add(name)
    if not isinstance(dataset, TokenizedDataset):
        raise ValueError(f"dataset must be a TokenizedDataset (see tokenize_documents), got {type(dataset).__name__}")
    batch_size = check_positive_int(batch_size, "batch_size")
    if max_batches is not None:
        max_batches = check_positive_int(max_batches, "max_batches")
    keep_bos = bool(keep_bos)
    for src in sources:
        check_device(src.model, f"model of source {src.name!r}", device)
        check_device(src.sae, f"sae of source {src.name!r}", device)
    _check_tokenizers(sources, dataset)

    check_output_dir(out_dir, "out_dir")
    out_dir = Path(out_dir)
    stores: dict[str, ActivationStore] = {}
    fingerprints: dict[int, str] = {}
    metas = {src.name: _store_meta(src, dataset, keep_bos, batch_size, fingerprints) for src in sources}
    # decide (and refuse) for every store before any is opened for writing
    plans = {src.name: _store_plan(out_dir / src.name, src, metas[src.name], bool(overwrite)) for src in sources}
    try:
        return _extract(sources, dataset, out_dir, stores, metas, plans, batch_size, keep_bos, device, progress,
                        max_batches, on_shard)
    finally:
        for store in stores.values():  # release the writer locks; the stores stay readable
            store.close()


def _extract(
    sources: list[ActivationSource],
    dataset: TokenizedDataset,
    out_dir: Path,
    stores: dict[str, ActivationStore],
    metas: dict[str, dict[str, Any]],
    plans: dict[str, str],
    batch_size: int,
    keep_bos: bool,
    device: Any,
    progress: bool,
    max_batches: int | None,
    on_shard: Callable[[str, int], None] | None,
) -> dict[str, ActivationStore]:
    import torch
    from tqdm.auto import tqdm

    n_batches = -(-dataset.n_docs // batch_size)
    next_batch = _open_stores(sources, dataset, out_dir, stores, metas, plans, batch_size, keep_bos)

    # sources that share a model run in one forward pass
    groups: list[list[ActivationSource]] = []
    for src in sources:
        for g in groups:
            if g[0].model is src.model:
                g.append(src)
                break
        else:
            groups.append([src])

    first = min(next_batch.values())
    last = n_batches if max_batches is None else min(n_batches, first + max_batches)
    for b in tqdm(range(first, last), desc="activations", unit="batch", disable=None if progress else True):
        start, stop = b * batch_size, min((b + 1) * batch_size, dataset.n_docs)
        rows = dataset.rows(start, stop, keep_bos=keep_bos)
        tokens = torch.from_numpy(dataset.tokens[start:stop]).to(device)
        attn = torch.from_numpy(dataset.attention_mask[start:stop].astype(np.int64)).to(device)
        sel = torch.from_numpy(dataset.row_mask(start, stop, keep_bos=keep_bos)).to(device)
        for group in groups:
            todo = [s for s in group if next_batch[s.name] <= b]
            if not todo:
                continue
            captured = _run_hooks(group[0].model, tokens, attn, [s.hook_name for s in todo])
            codes = {src.name: encode_batch(src.sae, captured[src.hook_name], token_mask=sel) for src in todo}
            del captured
            append_batch(b, codes, [src.name for src in todo], rows, (start, stop), stores, next_batch, on_shard)
    return finish_stores(stores, next_batch, n_batches)


def _open_stores(sources: list[ActivationSource], dataset: TokenizedDataset, out_dir: Path,
                 stores: dict[str, ActivationStore], metas: dict[str, dict[str, Any]], plans: dict[str, str],
                 batch_size: int, keep_bos: bool) -> dict[str, int]:
    """Open (create, resume or reuse) every source's store into ``stores``; returns each one's next batch."""
    n_batches = -(-dataset.n_docs // batch_size)
    next_batch: dict[str, int] = {}
    for src in sources:
        store = _open_store(out_dir / src.name, plans[src.name], src, metas[src.name], _provenance(src, dataset))
        stores[src.name] = store
        next_batch[src.name] = n_batches if store.complete else _resume_point(store, dataset, batch_size, keep_bos)
        log.info("source %r: starting at batch %d of %d", src.name, next_batch[src.name], n_batches)
    return next_batch


def append_batch(b: int, codes: dict[str, Any], todo: list[str], rows: dict[str, np.ndarray], docs: tuple[int, int],
                 stores: dict[str, ActivationStore], next_batch: dict[str, int],
                 on_shard: Callable[[str, int], None] | None) -> None:
    """Append batch ``b``'s sparse codes (source name -> CSR over ``rows``) of the sources ``todo``, in that order,
    with the shard meta a resumed run checks; ``docs`` is the batch's (doc_start, doc_stop)."""
    n_rows = int(rows["doc_index"].shape[0])
    rows_hash = _rows_hash(rows)
    for name in todo:
        csr = codes[name]
        if csr.shape[0] != n_rows:
            raise RuntimeError(f"source {name!r} produced {csr.shape[0]} rows for batch {b}, expected {n_rows}")
        if n_rows:
            acts = FeatureActivations(csr, **rows, provenance=stores[name].provenance)
            stores[name].append(acts, meta={"batch": b, "doc_start": docs[0], "doc_stop": docs[1],
                                            "rows_sha256": rows_hash})
        next_batch[name] = b + 1
        if on_shard is not None:
            on_shard(name, b)


def finish_stores(stores: dict[str, ActivationStore], next_batch: dict[str, int],
                  n_batches: int) -> dict[str, ActivationStore]:
    """Once every source has written every batch: check the stores' rows agree and mark them complete."""
    if any(next_batch[n] < n_batches for n in stores):
        return stores
    if len(stores) > 1:
        _check_alignment(stores)
    for store in stores.values():
        if not store.complete:
            store.finalize(n_tokens=store.n_rows, n_batches=n_batches)
    return stores


def _run_hooks(model: Any, tokens: Any, attention_mask: Any, hook_names: list[str]) -> dict[str, Any]:
    """Forward ``tokens`` through ``model`` only as far as ``hook_names`` need; return the hook tensors."""
    import torch

    captured: dict[str, Any] = {}

    def grab(tensor: Any, hook: Any) -> None:
        captured[hook.name] = tensor.detach()

    stops = [stop_layer(h) for h in hook_names]
    stop = None if any(s is None for s in stops) else max(stops)
    with torch.no_grad():
        model.run_with_hooks(
            tokens,
            return_type=None,
            attention_mask=attention_mask,
            stop_at_layer=stop,
            fwd_hooks=[(h, grab) for h in hook_names],
        )
    missing = [h for h in hook_names if h not in captured]
    if missing:
        raise RuntimeError(f"hooks {missing} did not run in the forward pass")
    return captured


def load_activations(out_dir: str | Path, name: str, *, allow_partial: bool = False) -> FeatureActivations:
    """All rows of the store ``out_dir/<name>/`` as :class:`FeatureActivations` (refuses unfinished stores)."""
    path = Path(out_dir) / name
    store = ActivationStore.open(path)
    if not store.complete and not allow_partial:
        raise StoreError(
            f"store {str(path)!r} is unfinished ({store.n_rows} rows); run extract_activations again to finish it, "
            "or pass allow_partial=True"
        )
    if store.n_rows == 0:
        raise StoreError(f"store {str(path)!r} holds no rows")
    return store.read(allow_partial=allow_partial)
