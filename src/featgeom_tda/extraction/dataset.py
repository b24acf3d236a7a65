"""Documents tokenized once for every model that shares a tokenizer, right-padded to a common length.

- :func:`tokenize_documents`: right padding, an optional BOS in column 0, truncation at ``max_length``.
- :func:`window_documents`: real text cut into fixed-length windows with no padding (the tokenizer's own
  BOS convention), position 0 of every window excluded from the rows by default.
- :class:`TokenizedDataset`: tokens int64 (n_docs, seq_len) + bool attention mask; which positions become
  activation rows (padding never does, BOS only with ``keep_bos``, position 0 never with
  ``exclude_first``), content fingerprint, save / load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from featgeom_tda.core._cache import Hasher, fingerprint
from featgeom_tda.core._validation import check_positive_int, check_rank
from featgeom_tda.sources.checkpoints import tokenizer_adds_bos

__all__ = ["TokenizedDataset", "tokenize_documents", "tokenizer_fingerprint", "window_documents", "tokenizer_adds_bos"]

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
        max_length: the truncation length used (the window length for windows), or None.
        exclude_first: position 0 of every row is never an activation row, whatever ``keep_bos`` says.
            Models without a BOS (SmolLM2) make the first position of any window an attention sink whose
            residual norm is ~100x the median, so it is left out of SAE training and matching. False (the
            default) keeps the behaviour of padded documents: only padding and BOS are left out.
    """

    tokens: np.ndarray
    attention_mask: np.ndarray
    bos: bool
    tokenizer_name: str
    tokenizer_hash: str
    dataset_name: str | None = None
    pad_token_id: int = 0
    max_length: int | None = None
    exclude_first: bool = False
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
        if not isinstance(self.exclude_first, (bool, np.bool_)):
            raise ValueError(f"exclude_first must be True or False, got {self.exclude_first!r}")
        self.exclude_first = bool(self.exclude_first)

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
            f"bos={self.bos}, exclude_first={self.exclude_first}, tokenizer={self.tokenizer_name!r}, "
            f"dataset={self.dataset_name!r})"
        )

    def row_mask(self, start: int = 0, stop: int | None = None, *, keep_bos: bool = False) -> np.ndarray:
        """Bool (stop - start, seq_len): positions of documents ``start:stop`` that become activation rows.

        Padding is left out, BOS too unless ``keep_bos``, and position 0 always when ``exclude_first``.
        """
        mask = self.attention_mask[start:stop].copy()
        if mask.shape[1] and (self.exclude_first or (self.bos and not keep_bos)):
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

    def head(self, n_docs: int) -> "TokenizedDataset":
        """The first ``n_docs`` documents (all of them if there are fewer), every option kept."""
        n = min(check_positive_int(n_docs, "n_docs"), self.n_docs)
        return TokenizedDataset(
            tokens=self.tokens[:n], attention_mask=self.attention_mask[:n], bos=self.bos,
            tokenizer_name=self.tokenizer_name, tokenizer_hash=self.tokenizer_hash, dataset_name=self.dataset_name,
            pad_token_id=self.pad_token_id, max_length=self.max_length, exclude_first=self.exclude_first,
        )

    @classmethod
    def from_token_windows(
        cls,
        tokens: Any,
        *,
        tokenizer: Any,
        bos: bool,
        exclude_first: bool = True,
        dataset_name: str | None = None,
    ) -> "TokenizedDataset":
        """Unpadded windows: int (n_windows, length) token ids, every position real (the mask is all True).

        ``bos`` says whether column 0 of every window is the tokenizer's BOS id (checked). ``exclude_first``
        leaves position 0 out of the activation rows (see the class docstring).
        """
        arr = np.asarray(tokens)
        check_rank(arr, "tokens", 2)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"tokens must hold integer token ids, got dtype {arr.dtype}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"tokens must hold at least one window of at least one token, got shape {arr.shape}")
        if bos:
            bos_id = getattr(tokenizer, "bos_token_id", None)
            if bos_id is None:
                raise ValueError("bos=True but the tokenizer has no BOS token")
            if not (arr[:, 0] == bos_id).all():
                bad = int(np.flatnonzero(arr[:, 0] != bos_id)[0])
                raise ValueError(f"bos=True but window {bad} does not start with the BOS id {bos_id}")
        return cls(
            tokens=arr.astype(np.int64),
            attention_mask=np.ones(arr.shape, dtype=bool),
            bos=bool(bos),
            tokenizer_name=_tokenizer_name(tokenizer),
            tokenizer_hash=tokenizer_fingerprint(tokenizer),
            dataset_name=dataset_name,
            pad_token_id=_pad_id(tokenizer),
            max_length=int(arr.shape[1]),
            exclude_first=exclude_first,
        )

    # -- identity ------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """sha256 of the content (tokens, mask, BOS flag, ``exclude_first``, tokenizer hash); not the name.

        ``exclude_first=False`` hashes as before the option existed, so earlier fingerprints still hold.
        """
        if self._fingerprint is None:
            h = Hasher()
            head: list[Any] = [list(self.tokens.shape), self.bos, self.tokenizer_hash]
            if self.exclude_first:
                head.append({"exclude_first": True})
            h.update_bytes(json.dumps(head).encode())
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
            "exclude_first": self.exclude_first,
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
            exclude_first=info.get("exclude_first", False),
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
    texts = _check_texts(texts)
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if prepend_bos and bos_id is None:
        raise ValueError("prepend_bos=True but the tokenizer has no BOS token; pass prepend_bos=False or set one")
    pad_id = _pad_id(tokenizer)

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
        tokenizer_name=_tokenizer_name(tokenizer),
        tokenizer_hash=tokenizer_fingerprint(tokenizer),
        dataset_name=dataset_name,
        pad_token_id=pad_id,
        max_length=max_length,
    )


def _tokenizer_name(tokenizer: Any) -> str:
    return str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


def _pad_id(tokenizer: Any) -> int:
    """The tokenizer's pad id, else its EOS id, else 0."""
    pad_id = getattr(tokenizer, "pad_token_id", None)
    if pad_id is None:
        pad_id = getattr(tokenizer, "eos_token_id", None)
    return 0 if pad_id is None else int(pad_id)


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("texts must hold at least one document, got an empty list")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts must be a list of strings; texts[{i}] is {type(t).__name__}")
    return list(texts)


def window_documents(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    length: int,
    pack: bool = True,
    separator: str | None = "eos",
    prepend_bos: bool | None = None,
    exclude_first: bool = True,
    max_windows: int | None = None,
    dataset_name: str | None = None,
    chunk_docs: int = 256,
) -> TokenizedDataset:
    """Tokenize ``texts`` once into unpadded windows of exactly ``length`` ids: a :class:`TokenizedDataset`.

    Every position is a real token (the mask is all True), so left-padding tokenizers (Gemma) and
    TransformerLens's own attention mask never meet padding. Documents are tokenized without special
    tokens, in order, ``chunk_docs`` at a time (only as many as ``max_windows`` needs).

    Args:
        tokenizer: a Hugging Face tokenizer.
        texts: the documents, in order.
        length: ids per window (>= 2), BOS included.
        pack: True cuts one stream of all documents (joined by ``separator``) into consecutive windows;
            False cuts each document on its own (a document shorter than one window gives none). The
            tail shorter than a window is dropped either way.
        separator: "eos" puts the tokenizer's EOS id between packed documents (nothing if it has none);
            None joins them directly.
        prepend_bos: start every window with BOS; None follows the tokenizer's own convention
            (:func:`tokenizer_adds_bos`), so SmolLM2 windows have no BOS and Gemma windows do.
        exclude_first: position 0 of every window is never an activation row (BOS, or the attention-sink
            outlier of a window without BOS). Default True.
        max_windows: stop after this many windows.

    Returns:
        tokens int64 (n_windows, length), all-True mask; ``bos``, ``exclude_first`` and ``max_length=length``
        recorded. Row ``i`` of the dataset is window ``i`` (its ``doc_index``).
    """
    length = check_positive_int(length, "length", minimum=2)
    texts = _check_texts(texts)
    if max_windows is not None:
        max_windows = check_positive_int(max_windows, "max_windows")
    chunk_docs = check_positive_int(chunk_docs, "chunk_docs")
    if separator not in ("eos", None):
        raise ValueError(f"separator must be 'eos' or None, got {separator!r}")
    if not isinstance(pack, (bool, np.bool_)):
        raise ValueError(f"pack must be True or False, got {pack!r}")
    if prepend_bos is None:
        prepend_bos = tokenizer_adds_bos(tokenizer)
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if prepend_bos and bos_id is None:
        raise ValueError("prepend_bos=True but the tokenizer has no BOS token; pass prepend_bos=False")
    sep: list[int] = []
    if pack and separator == "eos" and getattr(tokenizer, "eos_token_id", None) is not None:
        sep = [int(tokenizer.eos_token_id)]
    content = length - (1 if prepend_bos else 0)
    head = [int(bos_id)] if prepend_bos else []

    windows: list[list[int]] = []
    stream: list[int] = []
    n_tokens = 0
    full = False
    for start in range(0, len(texts), chunk_docs):
        encoded = tokenizer(texts[start:start + chunk_docs], add_special_tokens=False)["input_ids"]
        for ids in encoded:
            if not ids:
                continue  # an empty document adds neither tokens nor a separator
            ids = [int(t) for t in ids]
            if pack:
                if sep and n_tokens:
                    stream.extend(sep)
                stream.extend(ids)
                cut = 0
                while len(stream) - cut >= content:
                    windows.append(head + stream[cut:cut + content])
                    cut += content
                    if max_windows is not None and len(windows) >= max_windows:
                        full = True
                        break
                stream = stream[cut:]
            else:
                for cut in range(0, len(ids) - content + 1, content):
                    windows.append(head + ids[cut:cut + content])
                    if max_windows is not None and len(windows) >= max_windows:
                        full = True
                        break
            n_tokens += len(ids)
            if full:
                break
        if full:
            break
    if not windows:
        need = f"one window of length={length} ({content} text tokens{' after BOS' if prepend_bos else ''})"
        what = f"texts hold {n_tokens} tokens in all" if pack else "no document of texts is as long as"
        raise ValueError(
            f"{what}{', fewer than ' if pack else ' '}{need}; give more text, a smaller length"
            + ("" if pack else ", or pack=True")
        )
    return TokenizedDataset.from_token_windows(
        np.asarray(windows, dtype=np.int64),
        tokenizer=tokenizer,
        bos=bool(prepend_bos),
        exclude_first=exclude_first,
        dataset_name=dataset_name,
    )
