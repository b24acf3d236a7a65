"""SAE feature activations of one or two models on the same tokens, streamed into activation stores.

The flow is::

    texts --tokenize_documents--> TokenizedDataset --extract_activations--> {name: ActivationStore}

- Tokenize once for every model that shares a tokenizer (:func:`tokenize_documents`): right padding, an
  optional BOS in column 0, truncation at ``max_length``. Padding never becomes a row.
- :func:`extract_activations` runs batched forward passes (stopping at the hook's layer), encodes the hook
  tensor with each source's SAE, and writes one sparse float32 shard per batch to ``out_dir/<name>/``.
  Row ``i`` of every source is the same token (same document, position and token id).
- Extraction is resumable: each shard records its batch index and the store's ``meta`` fingerprints the
  options (dataset, model and SAE weights, hook, ``keep_bos``, ``batch_size``); a rerun continues after
  the last complete shard of each store and ends with the same arrays as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._validation import check_positive_int, check_rank
from featgeom_tda.sources.hooks import check_hook_name, check_sae_matches_hook
from featgeom_tda.core.store import ActivationStore, StoreError
from featgeom_tda.core.types import FeatureActivations, Provenance

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
_DATASET_TENSORS = "tokens.safetensors"
_DATASET_JSON = "dataset.json"
_FINAL_META_KEYS = ("n_tokens", "n_batches")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_BLOCK_HOOK_RE = re.compile(r"^blocks\.(\d+)\.")
_EMBED_HOOKS = ("hook_embed", "hook_pos_embed", "hook_tokens")
# SAE classes whose encoding of a token depends on the other tokens of its sequence
_SEQUENCE_SAES = ("TemporalSAE",)


# ------------------------------------------------------------------------------------------------------
# tokenized dataset
# ------------------------------------------------------------------------------------------------------
@dataclass
class TokenizedDataset:
    """Documents tokenized once, right-padded to a common length.

    Attributes:
        tokens: int64 (n_docs, seq_len); padding positions hold ``pad_token_id``.
        attention_mask: bool (n_docs, seq_len); True on real tokens, a prefix of each row (right padding).
        bos: whether column 0 of every non-empty row is the tokenizer's BOS token.
        tokenizer_name: a readable name of the tokenizer.
        tokenizer_hash: :func:`tokenizer_fingerprint` of the tokenizer used.
        dataset_name: name of the corpus, or None.
        pad_token_id: the id written at padding positions.
        max_length: the truncation length used, or None.
    """

    tokens: np.ndarray
    attention_mask: np.ndarray
    bos: bool
    tokenizer_name: str
    tokenizer_hash: str
    dataset_name: str | None = None
    pad_token_id: int = 0
    max_length: int | None = None
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = np.asarray(self.tokens)
        mask = np.asarray(self.attention_mask)
        check_rank(tokens, "tokens", 2)
        check_rank(mask, "attention_mask", 2)
        if tokens.dtype.kind not in "iu":
            raise ValueError(f"tokens must hold integers, got dtype {tokens.dtype}")
        if mask.shape != tokens.shape:
            raise ValueError(f"attention_mask has shape {mask.shape} but tokens has shape {tokens.shape}")
        if mask.dtype != bool:
            if mask.dtype.kind not in "biu" or not np.isin(mask, (0, 1)).all():
                raise ValueError(f"attention_mask must hold booleans (or 0/1), got dtype {mask.dtype}")
            mask = mask.astype(bool)
        if tokens.shape[0] == 0:
            raise ValueError("tokens must hold at least one document, got 0 rows")
        if tokens.size and tokens.min() < 0:
            raise ValueError(f"tokens must be non-negative ids, got minimum {int(tokens.min())}")
        # right padding: within each row, no real token after a padding position
        if mask.shape[1] > 1 and (mask[:, 1:] & ~mask[:, :-1]).any():
            bad = int(np.flatnonzero((mask[:, 1:] & ~mask[:, :-1]).any(axis=1))[0])
            raise ValueError(
                f"attention_mask must be right-padded (real tokens first, then padding); row {bad} is not"
            )
        self.tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        self.attention_mask = np.ascontiguousarray(mask)
        self.bos = bool(self.bos)
        self.pad_token_id = int(self.pad_token_id)

    # -- shape ---------------------------------------------------------------------------------------
    @property
    def n_docs(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Number of real tokens (BOS included) of each document, int64 (n_docs,)."""
        return self.attention_mask.sum(axis=1).astype(np.int64)

    def __len__(self) -> int:
        return self.n_docs

    def __repr__(self) -> str:
        return (
            f"TokenizedDataset(n_docs={self.n_docs}, seq_len={self.seq_len}, n_real={int(self.lengths.sum())}, "
            f"bos={self.bos}, tokenizer={self.tokenizer_name!r}, dataset={self.dataset_name!r})"
        )

    def row_mask(self, start: int = 0, stop: int | None = None, *, keep_bos: bool = False) -> np.ndarray:
        """Bool (stop - start, seq_len): positions of documents ``start:stop`` that become activation rows.

        Padding is left out, and BOS too unless ``keep_bos``.
        """
        mask = self.attention_mask[start:stop].copy()
        if self.bos and not keep_bos and mask.shape[1]:
            mask[:, 0] = False
        return mask

    def n_rows(self, *, keep_bos: bool = False) -> int:
        """Number of activation rows extraction produces with this ``keep_bos``."""
        return int(self.row_mask(keep_bos=keep_bos).sum())

    def rows(self, start: int = 0, stop: int | None = None, *, keep_bos: bool = False) -> dict[str, np.ndarray]:
        """Row metadata of documents ``start:stop`` in extraction order: token_ids, doc_index, position (int64)."""
        mask = self.row_mask(start, stop, keep_bos=keep_bos)
        docs, pos = np.nonzero(mask)
        return {
            "token_ids": self.tokens[start:stop][docs, pos].astype(np.int64),
            "doc_index": (docs + start).astype(np.int64),
            "position": pos.astype(np.int64),
        }

    # -- identity ------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """sha256 of the content (tokens, mask, BOS flag, tokenizer hash); the name is not part of it."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(json.dumps([list(self.tokens.shape), self.bos, self.tokenizer_hash]).encode())
            h.update(self.tokens.tobytes())
            h.update(np.packbits(self.attention_mask).tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def to_dict(self) -> dict[str, Any]:
        """JSON description (no arrays)."""
        return {
            "n_docs": self.n_docs,
            "seq_len": self.seq_len,
            "n_real_tokens": int(self.lengths.sum()),
            "bos": self.bos,
            "tokenizer_name": self.tokenizer_name,
            "tokenizer_hash": self.tokenizer_hash,
            "dataset_name": self.dataset_name,
            "pad_token_id": self.pad_token_id,
            "max_length": self.max_length,
            "fingerprint": self.fingerprint,
        }

    # -- disk ----------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (a directory): ``tokens.safetensors`` + ``dataset.json``."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(
            {"tokens": self.tokens, "attention_mask": self.attention_mask},
            str(path / _DATASET_TENSORS),
        )
        (path / _DATASET_JSON).write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TokenizedDataset":
        """Read a directory written by :meth:`save`; the content must match the recorded fingerprint."""
        from safetensors.numpy import load_file

        path = Path(path)
        jpath, tpath = path / _DATASET_JSON, path / _DATASET_TENSORS
        for f in (jpath, tpath):
            if not f.exists():
                raise ValueError(f"path {str(path)!r} is not a tokenized dataset: {f.name} is missing")
        info = json.loads(jpath.read_text())
        t = load_file(str(tpath))
        data = cls(
            tokens=t["tokens"],
            attention_mask=t["attention_mask"],
            bos=info["bos"],
            tokenizer_name=info["tokenizer_name"],
            tokenizer_hash=info["tokenizer_hash"],
            dataset_name=info.get("dataset_name"),
            pad_token_id=info.get("pad_token_id", 0),
            max_length=info.get("max_length"),
        )
        if data.fingerprint != info.get("fingerprint"):
            raise ValueError(
                f"tokenized dataset at {str(path)!r} is corrupt: its content does not match the recorded fingerprint"
            )
        return data


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of what decides how text becomes ids: vocabulary, normalizer, pre-tokenizer, model, added tokens.

    Post-processing, padding and truncation settings are left out (extraction adds BOS and pads itself), so
    a tokenizer and its copy with ``add_bos_token=True`` share a fingerprint.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        for key in ("post_processor", "truncation", "padding"):
            spec.pop(key, None)
    elif hasattr(tokenizer, "get_vocab"):
        spec = {"class": type(tokenizer).__name__, "vocab": sorted(tokenizer.get_vocab().items())}
    else:
        raise ValueError(f"tokenizer must be a Hugging Face tokenizer, got {type(tokenizer).__name__}")
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def tokenize_documents(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    prepend_bos: bool = True,
    dataset_name: str | None = None,
) -> TokenizedDataset:
    """Tokenize ``texts`` once into a right-padded :class:`TokenizedDataset`.

    Each document is tokenized without the tokenizer's own special tokens, then BOS is prepended (when
    ``prepend_bos``) and the result truncated to ``max_length`` ids (BOS included). Rows are padded to the
    longest document with the tokenizer's pad id (its EOS id when it has no pad token).

    Returns tokens int64 (n_docs, seq_len <= max_length) and a bool attention mask of the same shape.
    """
    max_length = check_positive_int(max_length, "max_length")
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("texts must hold at least one document, got an empty list")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts must be a list of strings; texts[{i}] is {type(t).__name__}")
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if prepend_bos and bos_id is None:
        raise ValueError("prepend_bos=True but the tokenizer has no BOS token; pass prepend_bos=False or set one")
    pad_id = getattr(tokenizer, "pad_token_id", None)
    if pad_id is None:
        pad_id = getattr(tokenizer, "eos_token_id", None)
    pad_id = 0 if pad_id is None else int(pad_id)

    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    head = [int(bos_id)] if prepend_bos else []
    docs = [(head + list(ids))[:max_length] for ids in encoded]
    seq_len = max(len(d) for d in docs)
    if seq_len == 0:
        raise ValueError("texts produced no tokens; every document is empty and prepend_bos is False")
    tokens = np.full((len(docs), seq_len), pad_id, dtype=np.int64)
    mask = np.zeros((len(docs), seq_len), dtype=bool)
    for i, d in enumerate(docs):
        tokens[i, : len(d)] = d
        mask[i, : len(d)] = True
    return TokenizedDataset(
        tokens=tokens,
        attention_mask=mask,
        bos=bool(prepend_bos),
        tokenizer_name=str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__),
        tokenizer_hash=tokenizer_fingerprint(tokenizer),
        dataset_name=dataset_name,
        pad_token_id=pad_id,
        max_length=max_length,
    )


# ------------------------------------------------------------------------------------------------------
# sources
# ------------------------------------------------------------------------------------------------------
@dataclass
class ActivationSource:
    """One model + hook + SAE whose feature activations go to the store ``out_dir/<name>/``.

    Attributes:
        name: store directory name (letters, digits, ``_ . -``).
        model: a transformer_lens HookedTransformer.
        hook_name: TransformerLens hook name, e.g. ``blocks.0.hook_resid_post``.
        sae: an sae_lens SAE whose ``d_in`` is the hook's width.
        model_id, sae_id: readable labels for provenance (default: the model's ``cfg.model_name`` and the
            SAE's metadata ``sae_id`` or ``<architecture>-<d_sae>``). Resuming always compares weight hashes.
    """

    name: str
    model: Any
    hook_name: str
    sae: Any
    model_id: str | None = None
    sae_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(
                f"name must be a directory name of letters, digits, '_', '.' or '-' (starting with a letter or "
                f"digit, at most 128 characters); got {self.name!r}"
            )
        if not hasattr(self.model, "hook_dict") or not hasattr(self.model, "run_with_hooks"):
            raise ValueError(f"model must be a transformer_lens HookedTransformer, got {type(self.model).__name__}")
        if not hasattr(self.sae, "encode") or not hasattr(getattr(self.sae, "cfg", None), "d_sae"):
            raise ValueError(
                f"sae must be an sae_lens SAE (with .encode and .cfg.d_sae), got {type(self.sae).__name__}"
            )
        check_hook_name(self.model, self.hook_name)
        check_sae_matches_hook(self.model, self.hook_name, self.sae)

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def model_label(self) -> str:
        if self.model_id:
            return self.model_id
        return str(getattr(getattr(self.model, "cfg", None), "model_name", None) or type(self.model).__name__)

    @property
    def sae_label(self) -> str:
        if self.sae_id:
            return self.sae_id
        meta = getattr(self.sae.cfg, "metadata", None)
        sid = getattr(meta, "sae_id", None) if meta is not None else None
        if sid:
            return str(sid)
        arch = self.sae.cfg.architecture() if hasattr(self.sae.cfg, "architecture") else type(self.sae).__name__
        return f"{arch}-{self.d_sae}"


def _weights_fingerprint(module: Any) -> str:
    """sha256 over a torch module's state dict (names, dtypes, shapes, bytes)."""
    import torch

    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(json.dumps([key, str(t.dtype), list(t.shape)]).encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _stop_layer(hook_name: str) -> int | None:
    """The ``stop_at_layer`` that still runs ``hook_name`` (None: the full forward pass is needed)."""
    m = _BLOCK_HOOK_RE.match(hook_name)
    if m:
        return int(m.group(1)) + 1
    if hook_name in _EMBED_HOOKS:
        return 0
    return None


def _module_device(module: Any):
    import torch

    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def _check_device(module: Any, what: str, device: Any) -> None:
    import torch

    want = torch.device(device)
    have = _module_device(module)
    same = have.type == want.type and (want.index is None or have.index in (None, want.index))
    if not same:
        raise ValueError(f"{what} is on device {have} but device is {str(want)!r}; move it with .to({str(want)!r})")


# ------------------------------------------------------------------------------------------------------
# encoding
# ------------------------------------------------------------------------------------------------------
def _dense_to_csr(dense: Any) -> sp.csr_matrix:
    """(n, d) torch tensor -> scipy CSR float32 via torch.nonzero (row-major, sorted columns)."""
    import torch

    n, d = dense.shape
    nz = torch.nonzero(dense, as_tuple=False)
    rows, cols = nz[:, 0], nz[:, 1]
    values = dense[rows, cols].to(torch.float32).cpu().numpy()
    counts = torch.bincount(rows, minlength=n).cpu().numpy()
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((values, cols.cpu().numpy().astype(np.int32), indptr), shape=(n, d))


def encode_batch(sae: Any, acts: Any, *, token_mask: Any = None, chunk_rows: int = 4096) -> sp.csr_matrix:
    """Encode hook activations with ``sae`` and keep the selected tokens, as sparse float32 rows.

    Args:
        sae: an sae_lens SAE.
        acts: torch tensor (batch, pos, ...) taken at the SAE's hook (``...`` is d_in, or heads x d_head).
        token_mask: bool (batch, pos); the tokens that become rows, in row-major order (default: all).
        chunk_rows: tokens encoded at once, bounding the dense (chunk_rows, d_sae) intermediate.

    Returns:
        scipy CSR float32 of shape (n_selected, d_sae).
    """
    import torch

    check_positive_int(chunk_rows, "chunk_rows")
    if acts.ndim < 3:
        raise ValueError(f"acts must be (batch, pos, ...) with at least 3 dimensions, got shape {tuple(acts.shape)}")
    if token_mask is None:
        token_mask = torch.ones(acts.shape[:2], dtype=torch.bool, device=acts.device)
    token_mask = torch.as_tensor(token_mask, dtype=torch.bool, device=acts.device)
    if tuple(token_mask.shape) != tuple(acts.shape[:2]):
        raise ValueError(f"token_mask has shape {tuple(token_mask.shape)} but acts starts with {tuple(acts.shape[:2])}")
    d_sae = int(sae.cfg.d_sae)
    parts: list[sp.csr_matrix] = []
    with torch.no_grad():
        if type(sae).__name__ in _SEQUENCE_SAES:
            # the code of a token depends on its context: encode whole sequences, then select tokens
            parts.append(_dense_to_csr(sae.encode(acts)[token_mask]))
        else:
            selected = acts[token_mask]
            for start in range(0, int(selected.shape[0]), chunk_rows):
                parts.append(_dense_to_csr(sae.encode(selected[start : start + chunk_rows])))
    if not parts:
        return sp.csr_matrix((0, d_sae), dtype=np.float32)
    out = parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")
    if out.shape[1] != d_sae:
        raise ValueError(f"sae.encode returned {out.shape[1]} features but sae.cfg.d_sae is {d_sae}")
    return out


# ------------------------------------------------------------------------------------------------------
# extraction
# ------------------------------------------------------------------------------------------------------
def _rows_hash(rows: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in ("doc_index", "position", "token_ids"):
        h.update(np.ascontiguousarray(rows[key], dtype=np.int64).tobytes())
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
            fingerprints[id(module)] = _weights_fingerprint(module)
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


def _open_store(path: Path, src: ActivationSource, meta: dict[str, Any], prov: Provenance) -> ActivationStore:
    """Reuse a finished store with the same options, resume a partial one, or start anew."""
    if (path / "manifest.json").exists():
        try:
            old = ActivationStore.open(path)
        except StoreError as exc:
            log.warning("store %s cannot be opened (%s); starting it anew", path, exc)
        else:
            base = {k: v for k, v in old.meta.items() if not (old.complete and k in _FINAL_META_KEYS)}
            if old.complete and old.n_features == src.d_sae and base == json.loads(json.dumps(meta)):
                return old
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
) -> dict[str, ActivationStore]:
    """Stream the SAE feature activations of one or two sources on ``dataset`` into stores.

    Each batch of ``batch_size`` documents is run once per model (up to the last hook it needs), encoded by
    each source's SAE, and written as one shard to ``out_dir/<name>/`` with per-row token id, document index
    and position. Padding never becomes a row; BOS becomes one only with ``keep_bos=True``. Row ``i`` is the
    same token in every store. Memory is bounded by one batch.

    Resuming: a rerun with the same options continues each store after its last complete shard; a finished
    store is returned as is. ``max_batches`` stops after that many batches (stores stay unfinished);
    ``on_shard(name, batch)`` is called each time a source finishes a batch (a batch whose documents hold
    no row, e.g. only BOS, writes no shard).

    Returns:
        {source name: ActivationStore}; finished stores have meta ``n_tokens``, ``n_docs``, ``keep_bos``.
    """
    import torch
    from tqdm.auto import tqdm

    if alignment is not None:
        raise NotImplementedError(
            "alignment is not implemented: activations of models with different tokenizers cannot yet be "
            "paired token by token; compare models that share a tokenizer"
        )
    if isinstance(sources, ActivationSource):
        sources = [sources]
    sources = list(sources)
    if not 1 <= len(sources) <= 2:
        raise ValueError(f"sources must hold one or two ActivationSource, got {len(sources)}")
    for i, src in enumerate(sources):
        if not isinstance(src, ActivationSource):
            raise ValueError(f"sources[{i}] must be an ActivationSource, got {type(src).__name__}")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must differ (they name the store directories), got {names}")
    if not isinstance(dataset, TokenizedDataset):
        raise ValueError(f"dataset must be a TokenizedDataset (see tokenize_documents), got {type(dataset).__name__}")
    batch_size = check_positive_int(batch_size, "batch_size")
    if max_batches is not None:
        max_batches = check_positive_int(max_batches, "max_batches")
    keep_bos = bool(keep_bos)
    for src in sources:
        _check_device(src.model, f"model of source {src.name!r}", device)
        _check_device(src.sae, f"sae of source {src.name!r}", device)
    _check_tokenizers(sources, dataset)

    out_dir = Path(out_dir)
    n_batches = -(-dataset.n_docs // batch_size)
    stores: dict[str, ActivationStore] = {}
    next_batch: dict[str, int] = {}
    fingerprints: dict[int, str] = {}
    for src in sources:
        meta = _store_meta(src, dataset, keep_bos, batch_size, fingerprints)
        store = _open_store(out_dir / src.name, src, meta, _provenance(src, dataset))
        stores[src.name] = store
        next_batch[src.name] = n_batches if store.complete else _resume_point(store, dataset, batch_size, keep_bos)
        log.info("source %r: starting at batch %d of %d", src.name, next_batch[src.name], n_batches)

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
        n_rows = int(rows["doc_index"].shape[0])
        rows_hash = _rows_hash(rows)
        tokens = torch.from_numpy(dataset.tokens[start:stop]).to(device)
        attn = torch.from_numpy(dataset.attention_mask[start:stop].astype(np.int64)).to(device)
        sel = torch.from_numpy(dataset.row_mask(start, stop, keep_bos=keep_bos)).to(device)
        for group in groups:
            todo = [s for s in group if next_batch[s.name] <= b]
            if not todo:
                continue
            captured = _run_hooks(group[0].model, tokens, attn, [s.hook_name for s in todo])
            for src in todo:
                csr = encode_batch(src.sae, captured[src.hook_name], token_mask=sel)
                if csr.shape[0] != n_rows:
                    raise RuntimeError(
                        f"source {src.name!r} produced {csr.shape[0]} rows for batch {b}, expected {n_rows}"
                    )
                if n_rows:
                    acts = FeatureActivations(csr, **rows, provenance=stores[src.name].provenance)
                    stores[src.name].append(
                        acts, meta={"batch": b, "doc_start": start, "doc_stop": stop, "rows_sha256": rows_hash}
                    )
                next_batch[src.name] = b + 1
                if on_shard is not None:
                    on_shard(src.name, b)
            del captured

    if any(next_batch[n] < n_batches for n in names):
        return stores
    if len(stores) > 1:
        _check_alignment(stores)
    for name, store in stores.items():
        if not store.complete:
            store.finalize(n_tokens=store.n_rows, n_batches=n_batches)
    return stores


def _run_hooks(model: Any, tokens: Any, attention_mask: Any, hook_names: list[str]) -> dict[str, Any]:
    """Forward ``tokens`` through ``model`` only as far as ``hook_names`` need; return the hook tensors."""
    import torch

    captured: dict[str, Any] = {}

    def grab(tensor: Any, hook: Any) -> None:
        captured[hook.name] = tensor.detach()

    stops = [_stop_layer(h) for h in hook_names]
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
    return store.read()
