"""Documents tokenized once for every model that shares a tokenizer, right-padded to a common length.

- :func:`tokenize_documents`: right padding, an optional BOS in column 0, truncation at ``max_length``.
- :class:`TokenizedDataset`: tokens int64 (n_docs, seq_len) + bool attention mask; which positions become
  activation rows (padding never does, BOS only with ``keep_bos``), content fingerprint, save / load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from featgeom_tda.core._cache import Hasher, fingerprint
from featgeom_tda.core._validation import check_positive_int, check_rank

__all__ = ["TokenizedDataset", "tokenize_documents", "tokenizer_fingerprint"]

_DATASET_TENSORS = "tokens.safetensors"
_DATASET_JSON = "dataset.json"


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
            h = Hasher()
            h.update_bytes(json.dumps([list(self.tokens.shape), self.bos, self.tokenizer_hash]).encode())
            h.update_bytes(self.tokens.tobytes())
            h.update_bytes(np.packbits(self.attention_mask).tobytes())
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
    return fingerprint(spec, length=None, compact=False)


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
