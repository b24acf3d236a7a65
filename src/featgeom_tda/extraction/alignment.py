"""Comparison units of two models that do not share a tokenizer.

Two tokenizers cut the same text differently (" unbelievable" is one SentencePiece token of Gemma-3 but
``Ġunbelie`` + ``vable`` for SmolLM2's BPE). :func:`align_tokens` finds, per document, the finest character
spans whose start and end are token boundaries in *both* tokenizations (the common coarsening of the two
segmentations). Each span is a *unit*: a run of tokens of model A and a run of tokens of model B that cover
the same characters, so a per-token activation of each model can be reduced to one row per unit
(:func:`reduce_over_units`) and the two models compared row by row.

How spans are read
    Every tokenizer is run on the raw document text with ``add_special_tokens=False`` and
    ``return_offsets_mapping=True`` (a ``tokenizers.Tokenizer`` with ``encode_batch``). Special tokens (an
    added special token written literally in the text) and tokens with an empty span never belong to a unit.

Whitespace rule (the "core span" of a token)
    A token's span is trimmed of leading and trailing whitespace before boundaries are compared, so a BPE
    leading-space token (``" the"`` / ``"Ġthe"``) and a SentencePiece ``"▁the"`` (whose offsets include the
    space) both stand for ``"the"`` and align with a plain ``"the"``. A token that is whitespace only
    (``"ĊĊ"``, ``"▁▁▁"``) keeps its whole span, so runs of whitespace that both tokenizers cut out as tokens
    become units of their own (e.g. a paragraph break ``"\\n\\n"``). Whitespace that is covered by no core
    span of either side (the space in front of ``" the"``) belongs to no unit; whitespace covered by
    whitespace-only tokens of one side only is *left out* with those tokens (not counted as dropped). Units
    never start or end with whitespace that one side leaves out, but can hold inner whitespace
    (``"foo bar"`` when one tokenizer has ``foo▁bar`` as a token).

Characters are never split
    A position is a boundary of a tokenization when no core span strictly contains it. Byte-fallback tokens
    (an emoji as several byte tokens whose offsets repeat or overlap the same character) all span that whole
    character, so no boundary falls inside it: the pieces form one unit together. For the same reason two
    identical tokenizers give the identity (:meth:`TokenAlignment.is_identity`) only on text without
    byte-fallback pieces.

Dropped spans (counted per document and by reason)
    ``"too_long"``: more than ``max_unit_tokens`` tokens on either side; ``"one_sided"``: non-whitespace
    text that only one tokenizer covers (a character one of them drops, or a special token of one side);
    ``"not_contiguous"``: the tokens of the span are not a contiguous run on one side (a special or
    empty-span token inside it, or offsets that go backwards).

Concatenating, in document order, the units' texts, the dropped spans' texts and the left-out whitespace
gives back each document's text exactly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._validation import check_choice, check_positive_int, describe, to_numpy

__all__ = ["TokenAlignment", "align_tokens", "reduce_over_units", "DROP_REASONS"]

DROP_REASONS: tuple[str, ...] = ("too_long", "one_sided", "not_contiguous")
_FORMAT = "featgeom-token-alignment/1"
_WS_RE = re.compile(r"\s+")
_ARRAY_FIELDS = ("doc", "char_start", "char_stop", "a_start", "a_stop", "b_start", "b_stop")


def _empty_i64() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass
class TokenAlignment:
    """Units shared by two tokenizations of the same documents (see the module docstring for the rules).

    Attributes (per unit, all int64 arrays of shape (n_units,), units in document then text order):
        doc: document index.
        char_start, char_stop: the unit's character span ``[char_start, char_stop)`` in its document.
        a_start, a_stop: its tokens ``[a_start, a_stop)`` in ``tokens_a[doc]`` (indices within the document).
        b_start, b_stop: the same for tokenizer B.
        text: the unit's text, ``documents[doc][char_start:char_stop]``.
    Per document:
        tokens_a, tokens_b: the token ids of A and B (int64 arrays, no special tokens added), so that each
            model can be run on its own tokens.
        n_dropped: int64 array (n_documents,): spans dropped (all reasons).
    Dropped spans (shape (n_dropped_total,)): dropped_doc, dropped_start, dropped_stop and dropped_reason
        (one of :data:`DROP_REASONS` each).
    Config: max_unit_tokens, and the two tokenizers' names.
    """

    doc: np.ndarray
    char_start: np.ndarray
    char_stop: np.ndarray
    a_start: np.ndarray
    a_stop: np.ndarray
    b_start: np.ndarray
    b_stop: np.ndarray
    text: list[str]
    tokens_a: list[np.ndarray]
    tokens_b: list[np.ndarray]
    n_dropped: np.ndarray
    dropped_doc: np.ndarray = field(default_factory=_empty_i64)
    dropped_start: np.ndarray = field(default_factory=_empty_i64)
    dropped_stop: np.ndarray = field(default_factory=_empty_i64)
    dropped_reason: list[str] = field(default_factory=list)
    max_unit_tokens: int = 8
    tokenizer_a: str = ""
    tokenizer_b: str = ""

    def __post_init__(self) -> None:
        for name in _ARRAY_FIELDS + ("n_dropped", "dropped_doc", "dropped_start", "dropped_stop"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int64).ravel())
        self.text = [str(t) for t in self.text]
        self.dropped_reason = [str(r) for r in self.dropped_reason]
        self.tokens_a = [np.asarray(t, dtype=np.int64).ravel() for t in self.tokens_a]
        self.tokens_b = [np.asarray(t, dtype=np.int64).ravel() for t in self.tokens_b]
        n = self.doc.shape[0]
        for name in _ARRAY_FIELDS[1:]:
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} entries but doc has {n}; one per unit")
        if len(self.text) != n:
            raise ValueError(f"text has {len(self.text)} entries but doc has {n}; one per unit")
        n_docs = len(self.tokens_a)
        if len(self.tokens_b) != n_docs or self.n_dropped.shape[0] != n_docs:
            raise ValueError(
                f"tokens_a, tokens_b and n_dropped need one entry per document; got {n_docs}, "
                f"{len(self.tokens_b)} and {self.n_dropped.shape[0]}"
            )
        m = self.dropped_doc.shape[0]
        if self.dropped_start.shape[0] != m or self.dropped_stop.shape[0] != m or len(self.dropped_reason) != m:
            raise ValueError("dropped_doc, dropped_start, dropped_stop and dropped_reason need one entry per dropped span")
        bad = sorted(set(self.dropped_reason) - set(DROP_REASONS))
        if bad:
            raise ValueError(f"dropped_reason must be one of {DROP_REASONS}; got {bad}")
        if n and (self.doc.min() < 0 or self.doc.max() >= n_docs):
            raise ValueError(f"doc must index the {n_docs} documents; got values in [{self.doc.min()}, {self.doc.max()}]")
        if n:
            for side, start, stop, tokens in (("a", self.a_start, self.a_stop, self.tokens_a), ("b", self.b_start, self.b_stop, self.tokens_b)):
                n_tok = np.asarray([t.shape[0] for t in tokens], dtype=np.int64)[self.doc]
                bad_u = np.flatnonzero((start < 0) | (stop <= start) | (stop > n_tok))
                if bad_u.size:
                    u = int(bad_u[0])
                    raise ValueError(
                        f"{side}_start/{side}_stop of unit {u} ({start[u]}, {stop[u]}) is not a non-empty range within "
                        f"the {n_tok[u]} tokens of document {self.doc[u]} ({bad_u.size} such units)"
                    )
        self.max_unit_tokens = check_positive_int(self.max_unit_tokens, "max_unit_tokens")

    # ----------------------------------------------------------------------------------------- views
    def __len__(self) -> int:
        return int(self.doc.shape[0])

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"TokenAlignment(n_documents={s['n_documents']}, n_units={s['n_units']}, "
            f"one_to_one_fraction={s['one_to_one_fraction']:.3f}, n_dropped={s['n_dropped']})"
        )

    @property
    def n_documents(self) -> int:
        return len(self.tokens_a)

    def units_per_document(self) -> np.ndarray:
        """int64 array (n_documents,): number of units of each document."""
        return np.bincount(self.doc, minlength=self.n_documents).astype(np.int64)

    def token_offsets(self, side: Literal["a", "b"]) -> np.ndarray:
        """int64 array (n_documents + 1,): where each document's tokens start in the concatenated tokens."""
        check_choice(side, "side", ("a", "b"))
        tokens = self.tokens_a if side == "a" else self.tokens_b
        return np.concatenate([[0], np.cumsum([t.shape[0] for t in tokens], dtype=np.int64)]).astype(np.int64)

    def ranges(self, side: Literal["a", "b"], *, concatenated: bool = True) -> np.ndarray:
        """int64 array (n_units, 2) of token ranges ``[start, stop)`` of one side, for :func:`reduce_over_units`.

        With ``concatenated=True`` (default) the ranges index the documents' tokens concatenated in document
        order (``np.concatenate(tokens_a)``); otherwise they are within each unit's document.
        """
        check_choice(side, "side", ("a", "b"))
        start, stop = (self.a_start, self.a_stop) if side == "a" else (self.b_start, self.b_stop)
        out = np.stack([start, stop], axis=1).astype(np.int64)
        if concatenated:
            out += self.token_offsets(side)[:-1][self.doc][:, None]
        return out

    def is_identity(self) -> bool:
        """True when the alignment is the identity: in every document the units are exactly the tokens (one
        token of A and one of B each, in order, covering every token of both sides) and nothing was dropped.
        """
        if int(self.n_dropped.sum()) or len(self.dropped_reason):
            return False
        if any(ta.shape[0] != tb.shape[0] for ta, tb in zip(self.tokens_a, self.tokens_b)):
            return False
        if not np.array_equal(self.units_per_document(), [t.shape[0] for t in self.tokens_a]):
            return False
        if len(self) == 0:
            return True
        within = np.arange(len(self)) - np.concatenate([[0], np.cumsum(self.units_per_document())[:-1]])[self.doc]
        return bool(
            np.all(self.a_stop - self.a_start == 1)
            and np.all(self.b_stop - self.b_start == 1)
            and np.array_equal(self.a_start, within)
            and np.array_equal(self.b_start, within)
        )

    def stats(self) -> dict[str, Any]:
        """Counts for a report: units per document, the fraction of units that are one token in both, drops."""
        n = len(self)
        upd = self.units_per_document()
        len_a = self.a_stop - self.a_start
        len_b = self.b_stop - self.b_start
        tok_a = int(sum(t.shape[0] for t in self.tokens_a))
        tok_b = int(sum(t.shape[0] for t in self.tokens_b))
        return {
            "n_documents": self.n_documents,
            "n_units": n,
            "units_per_document_mean": float(upd.mean()) if upd.size else 0.0,
            "units_per_document_min": int(upd.min()) if upd.size else 0,
            "units_per_document_max": int(upd.max()) if upd.size else 0,
            "one_to_one_fraction": float(np.mean((len_a == 1) & (len_b == 1))) if n else 0.0,
            "mean_tokens_per_unit_a": float(len_a.mean()) if n else 0.0,
            "mean_tokens_per_unit_b": float(len_b.mean()) if n else 0.0,
            "n_tokens_a": tok_a,
            "n_tokens_b": tok_b,
            "coverage_a": float(len_a.sum() / tok_a) if tok_a else 0.0,
            "coverage_b": float(len_b.sum() / tok_b) if tok_b else 0.0,
            "n_dropped": int(self.n_dropped.sum()),
            "dropped": {r: int(sum(1 for x in self.dropped_reason if x == r)) for r in DROP_REASONS},
            "max_unit_tokens": self.max_unit_tokens,
        }

    # ------------------------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Config and stats (JSON-able; the per-unit arrays are in :meth:`save`'s safetensors file)."""
        return {
            "format": _FORMAT,
            "tokenizer_a": self.tokenizer_a,
            "tokenizer_b": self.tokenizer_b,
            "max_unit_tokens": self.max_unit_tokens,
            "stats": self.stats(),
        }

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (a directory): ``alignment.safetensors`` (int64 arrays) + ``alignment.json``."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {name: np.ascontiguousarray(getattr(self, name)) for name in _ARRAY_FIELDS}
        arrays["n_dropped"] = self.n_dropped
        arrays["dropped_doc"] = self.dropped_doc
        arrays["dropped_start"] = self.dropped_start
        arrays["dropped_stop"] = self.dropped_stop
        for side, tokens in (("a", self.tokens_a), ("b", self.tokens_b)):
            arrays[f"tokens_{side}"] = np.concatenate(tokens).astype(np.int64) if tokens else _empty_i64()
            arrays[f"tokens_{side}_offsets"] = self.token_offsets(side)
        save_file(arrays, str(path / "alignment.safetensors"))
        meta = self.to_dict()
        meta["text"] = self.text
        meta["dropped_reason"] = self.dropped_reason
        (path / "alignment.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TokenAlignment":
        """Read a directory written by :meth:`save`."""
        from safetensors.numpy import load_file

        path = Path(path)
        for f in ("alignment.safetensors", "alignment.json"):
            if not (path / f).is_file():
                raise ValueError(f"path {str(path)!r} is not a saved token alignment: {f} is missing")
        meta = json.loads((path / "alignment.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"path {str(path)!r}: alignment.json has format {got!r}, expected {_FORMAT!r}")
        arrays = load_file(str(path / "alignment.safetensors"))
        tokens = {}
        for side in ("a", "b"):
            flat, off = arrays[f"tokens_{side}"], arrays[f"tokens_{side}_offsets"]
            tokens[side] = [flat[off[i] : off[i + 1]] for i in range(off.shape[0] - 1)]
        return cls(
            **{name: arrays[name] for name in _ARRAY_FIELDS},
            text=list(meta["text"]),
            tokens_a=tokens["a"],
            tokens_b=tokens["b"],
            n_dropped=arrays["n_dropped"],
            dropped_doc=arrays["dropped_doc"],
            dropped_start=arrays["dropped_start"],
            dropped_stop=arrays["dropped_stop"],
            dropped_reason=list(meta["dropped_reason"]),
            max_unit_tokens=meta["max_unit_tokens"],
            tokenizer_a=meta.get("tokenizer_a", ""),
            tokenizer_b=meta.get("tokenizer_b", ""),
        )


# ------------------------------------------------------------------------------------------- tokenizing
def _tokenizer_name(tokenizer: Any) -> str:
    name = getattr(tokenizer, "name_or_path", None)
    return str(name) if name else type(tokenizer).__name__


def _is_backend_tokenizer(tokenizer: Any) -> bool:
    return type(tokenizer).__module__.split(".")[0] == "tokenizers" and hasattr(tokenizer, "encode_batch")


def _check_tokenizer(tokenizer: Any, name: str) -> None:
    if _is_backend_tokenizer(tokenizer):
        return
    if not callable(tokenizer):
        raise ValueError(
            f"{name} must be a fast tokenizer with offset mappings (a transformers PreTrainedTokenizerFast or a "
            f"tokenizers.Tokenizer); got {describe(tokenizer)}"
        )
    if getattr(tokenizer, "is_fast", True) is False:
        raise ValueError(
            f"{name} is a slow (Python) tokenizer, which gives no offset mappings; load the fast one "
            f"(AutoTokenizer.from_pretrained(..., use_fast=True)); got {type(tokenizer).__name__}"
        )


def _special_tokens(tokenizer: Any) -> dict[int, str]:
    """id -> content of the tokenizer's special tokens (added tokens marked special, and transformers' list).

    Encoding with ``add_special_tokens=False`` does not flag a special token written literally in the text
    (``special_tokens_mask`` is all zeros), so special tokens are recognised by id and content.
    """
    out: dict[int, str] = {}
    backend = tokenizer if _is_backend_tokenizer(tokenizer) else getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "get_added_tokens_decoder"):
        for i, tok in backend.get_added_tokens_decoder().items():
            if getattr(tok, "special", False):
                out[int(i)] = str(getattr(tok, "content", tok))
    ids = getattr(tokenizer, "all_special_ids", None) or []
    toks = getattr(tokenizer, "all_special_tokens", None) or []
    for i, t in zip(ids, toks):
        if i is not None:
            out.setdefault(int(i), str(t))
    return out


def _encode(tokenizer: Any, texts: list[str], name: str) -> list[tuple[list[int], list[tuple[int, int]], Any]]:
    """(ids, offsets, special flags) of each text, no special tokens added.

    A token is special when its id is a special token's and its text is that token's content (a special
    token written in the document); an unknown-token id standing for other text is an ordinary token.
    """
    special = _special_tokens(tokenizer)
    special_ids = np.asarray(sorted(special), dtype=np.int64)
    out = []
    for text, (ids, off) in zip(texts, _encode_raw(tokenizer, texts, name)):
        arr = np.asarray(ids, dtype=np.int64)
        flags = np.isin(arr, special_ids)
        for k in np.flatnonzero(flags):
            s, e = off[k]
            flags[k] = text[s:e] == special[int(arr[k])]
        out.append((ids, off, flags))
    return out


def _encode_raw(tokenizer: Any, texts: list[str], name: str) -> list[tuple[list[int], list[tuple[int, int]]]]:
    if _is_backend_tokenizer(tokenizer):
        encs = tokenizer.encode_batch(texts, add_special_tokens=False)
        return [(e.ids, e.offsets) for e in encs]
    try:
        out = tokenizer(
            texts,
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
    except NotImplementedError as exc:
        raise ValueError(f"{name} gives no offset mappings ({exc}); use a fast tokenizer") from None
    ids, offsets = out["input_ids"], out.get("offset_mapping")
    if offsets is None:
        raise ValueError(f"{name} returned no offset_mapping; use a fast tokenizer")
    return list(zip(ids, offsets))


def _core_spans(
    offsets: Any, special: Any, n_chars: int, next_nonws: np.ndarray, prev_nonws_end: np.ndarray, name: str, doc: int
) -> np.ndarray:
    """(n_tokens, 2) int64 core spans (whitespace rule of the module docstring); (-1, -1) for no span."""
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if off.size and (off.min() < 0 or off.max() > n_chars or np.any(off[:, 0] > off[:, 1])):
        raise ValueError(
            f"{name} gave offsets outside document {doc} ({n_chars} characters) or with start > end; "
            "expected character offsets into the raw text"
        )
    s, e = off[:, 0].copy(), off[:, 1].copy()
    cs = next_nonws[s]
    ce = prev_nonws_end[e]
    content = cs < e  # the token has a non-whitespace character
    s = np.where(content, cs, s)
    e = np.where(content, ce, e)
    none = (e <= s) | np.asarray(special, dtype=bool).reshape(-1)
    s[none] = -1
    e[none] = -1
    return np.stack([s, e], axis=1)


def _interior(core: np.ndarray, n_chars: int) -> np.ndarray:
    """bool (n_chars + 1,): positions strictly inside some core span."""
    long = core[(core[:, 1] - core[:, 0]) >= 2]
    diff = np.zeros(n_chars + 2, dtype=np.int64)
    np.add.at(diff, long[:, 0] + 1, 1)
    np.add.at(diff, long[:, 1], -1)
    return np.cumsum(diff[: n_chars + 1]) > 0


def _runs(interval: np.ndarray, n_intervals: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per interval: token count, first and last token index (of tokens with interval >= 0)."""
    idx = np.flatnonzero(interval >= 0)
    k = interval[idx]
    count = np.bincount(k, minlength=n_intervals)
    first = np.full(n_intervals, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(n_intervals, -1, dtype=np.int64)
    np.minimum.at(first, k, idx)
    np.maximum.at(last, k, idx)
    return count, first, last


def _align_document(text: str, enc_a: Any, enc_b: Any, max_unit_tokens: int, d: int, names: tuple[str, str]) -> dict:
    n = len(text)
    ws = np.zeros(n, dtype=bool)
    for m in _WS_RE.finditer(text):
        ws[m.start() : m.end()] = True
    pos = np.arange(n + 1, dtype=np.int64)
    nonws = np.concatenate([~ws, [True]])  # sentinel at n
    # next_nonws[p]: first q >= p with a non-whitespace char (n if none); prev_nonws_end[p]: last q <= p with
    # q == 0 or text[q-1] non-whitespace.
    next_nonws = np.minimum.accumulate(np.where(nonws, pos, n)[::-1])[::-1]
    ends_ok = np.concatenate([[True], ~ws])
    prev_nonws_end = np.maximum.accumulate(np.where(ends_ok, pos, 0))
    cores = [
        _core_spans(enc[1], enc[2], n, next_nonws, prev_nonws_end, names[i], d) for i, enc in enumerate((enc_a, enc_b))
    ]
    boundary = ~(_interior(cores[0], n) | _interior(cores[1], n))
    bpos = np.flatnonzero(boundary)  # always holds 0 and n
    n_int = bpos.shape[0] - 1
    runs = []
    for core in cores:
        interval = np.where(core[:, 0] >= 0, np.searchsorted(bpos, core[:, 0], side="right") - 1, -1)
        runs.append(_runs(interval, max(n_int, 0)))
    (ca, fa, la), (cb, fb, lb) = runs
    nonws_cum = np.concatenate([[0], np.cumsum(~ws)])
    has = np.flatnonzero((ca > 0) | (cb > 0))
    start, stop = bpos[has], bpos[has + 1]
    both = (ca[has] > 0) & (cb[has] > 0)
    has_text = (nonws_cum[stop] - nonws_cum[start]) > 0
    len_a = la[has] - fa[has] + 1
    len_b = lb[has] - fb[has] + 1
    contiguous = (len_a == ca[has]) & (len_b == cb[has])
    reason = np.full(has.shape[0], -1, dtype=np.int64)  # -1 unit, -2 left-out whitespace
    reason[~both & ~has_text] = -2
    reason[~both & has_text] = 1
    reason[both & ~contiguous] = 2
    reason[both & contiguous & ((len_a > max_unit_tokens) | (len_b > max_unit_tokens))] = 0
    unit = reason == -1
    dropped = reason >= 0
    return {
        "char_start": start[unit],
        "char_stop": stop[unit],
        "a_start": fa[has][unit],
        "a_stop": la[has][unit] + 1,
        "b_start": fb[has][unit],
        "b_stop": lb[has][unit] + 1,
        "dropped_start": start[dropped],
        "dropped_stop": stop[dropped],
        "dropped_reason": [DROP_REASONS[r] for r in reason[dropped]],
    }


def align_tokens(
    tokenizer_a: Any, tokenizer_b: Any, documents: Sequence[str], *, max_unit_tokens: int = 8, batch_size: int = 256
) -> TokenAlignment:
    """Units shared by the tokenizations of ``documents`` by ``tokenizer_a`` and ``tokenizer_b``.

    Args:
        tokenizer_a, tokenizer_b: fast tokenizers with offset mappings (transformers
            ``PreTrainedTokenizerFast`` or ``tokenizers.Tokenizer``). Each is run on the raw text with
            ``add_special_tokens=False``; special tokens are never units.
        documents: a sequence of strings (a list, not one string).
        max_unit_tokens: units with more tokens than this on either side are dropped (and counted).
        batch_size: documents tokenized per call.

    Returns:
        :class:`TokenAlignment`. Units are the finest character spans that start and end on a token boundary of
        both tokenizations, after each token's span is trimmed of leading and trailing whitespace
        (whitespace-only tokens keep their span); whitespace in no such span belongs to no unit. See the module
        docstring for the whole rule, byte-fallback pieces and the drop reasons.
    """
    _check_tokenizer(tokenizer_a, "tokenizer_a")
    _check_tokenizer(tokenizer_b, "tokenizer_b")
    if isinstance(documents, (str, bytes)):
        raise ValueError("documents must be a sequence of strings, got one string; wrap a single document in a list")
    try:
        docs = list(documents)
    except TypeError:
        raise ValueError(f"documents must be a sequence of strings, got {describe(documents)}") from None
    if not docs:
        raise ValueError("documents must not be empty")
    for i, t in enumerate(docs):
        if not isinstance(t, str):
            raise ValueError(f"documents[{i}] must be a str, got {type(t).__name__}")
    max_unit_tokens = check_positive_int(max_unit_tokens, "max_unit_tokens")
    batch_size = check_positive_int(batch_size, "batch_size")
    names = ("tokenizer_a", "tokenizer_b")

    parts: dict[str, list[Any]] = {k: [] for k in _ARRAY_FIELDS}
    texts: list[str] = []
    tokens: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    n_dropped: list[int] = []
    dropped: dict[str, list[Any]] = {"doc": [], "start": [], "stop": [], "reason": []}
    for lo in range(0, len(docs), batch_size):
        batch = docs[lo : lo + batch_size]
        enc_a = _encode(tokenizer_a, batch, "tokenizer_a")
        enc_b = _encode(tokenizer_b, batch, "tokenizer_b")
        for j, text in enumerate(batch):
            d = lo + j
            for side, enc, name in (("a", enc_a[j], names[0]), ("b", enc_b[j], names[1])):
                if len(enc[0]) != len(enc[1]):
                    raise ValueError(f"{name} gave {len(enc[0])} token ids but {len(enc[1])} offsets for document {d}")
                tokens[side].append(np.asarray(enc[0], dtype=np.int64))
            r = _align_document(text, enc_a[j], enc_b[j], max_unit_tokens, d, names)
            k = r["char_start"].shape[0]
            parts["doc"].append(np.full(k, d, dtype=np.int64))
            for name in _ARRAY_FIELDS[1:]:
                parts[name].append(r[name])
            texts.extend(text[s:e] for s, e in zip(r["char_start"].tolist(), r["char_stop"].tolist()))
            m = len(r["dropped_reason"])
            n_dropped.append(m)
            dropped["doc"].append(np.full(m, d, dtype=np.int64))
            dropped["start"].append(r["dropped_start"])
            dropped["stop"].append(r["dropped_stop"])
            dropped["reason"].extend(r["dropped_reason"])
    return TokenAlignment(
        **{k: np.concatenate(v).astype(np.int64) for k, v in parts.items()},
        text=texts,
        tokens_a=tokens["a"],
        tokens_b=tokens["b"],
        n_dropped=np.asarray(n_dropped, dtype=np.int64),
        dropped_doc=np.concatenate(dropped["doc"]),
        dropped_start=np.concatenate(dropped["start"]),
        dropped_stop=np.concatenate(dropped["stop"]),
        dropped_reason=dropped["reason"],
        max_unit_tokens=max_unit_tokens,
        tokenizer_a=_tokenizer_name(tokenizer_a),
        tokenizer_b=_tokenizer_name(tokenizer_b),
    )


# -------------------------------------------------------------------------------------------- reducing
def _check_ranges(unit_ranges: Any, n_tokens: int) -> np.ndarray:
    r = to_numpy(unit_ranges, "unit_ranges")
    if r.ndim != 2 or r.shape[1] != 2:
        raise ValueError(f"unit_ranges must have shape (n_units, 2) of [start, stop) token ranges, got shape {r.shape}")
    if r.size and not np.issubdtype(r.dtype, np.integer):
        if not np.all(np.isfinite(r)) or not np.all(r == np.round(r)):
            raise ValueError(f"unit_ranges must hold integers, got dtype {r.dtype} with non-integer values")
    r = r.astype(np.int64)
    if r.size:
        if np.any(r[:, 0] < 0) or np.any(r[:, 1] > n_tokens):
            raise ValueError(f"unit_ranges must lie in [0, {n_tokens}] (token_matrix has {n_tokens} rows); got values in [{r.min()}, {r.max()}]")
        empty = np.flatnonzero(r[:, 1] <= r[:, 0])
        if empty.size:
            raise ValueError(f"unit_ranges must have start < stop; unit {int(empty[0])} is {r[empty[0]].tolist()} ({empty.size} empty)")
    return r


def reduce_over_units(token_matrix: Any, unit_ranges: Any, mode: Literal["max", "last", "mean"] = "max") -> Any:
    """One row per unit from per-token rows: the max, last or mean of the rows ``[start, stop)`` of each unit.

    Args:
        token_matrix: (n_tokens, n_features) scipy sparse matrix (any format; CSR is used) or dense array, of one
            document or of documents concatenated (then ``unit_ranges`` are global, e.g.
            ``TokenAlignment.ranges("a")``).
        unit_ranges: (n_units, 2) integer array of token ranges ``[start, stop)``, ``0 <= start < stop <= n_tokens``.
        mode: ``"max"`` (column-wise max over the unit's rows; implicit zeros of a sparse matrix count as 0),
            ``"last"`` (the unit's last row, the one that has read the whole unit in a causal model) or
            ``"mean"`` (computed in float64).

    Returns:
        (n_units, n_features): CSR for sparse input, a numpy array for dense input. ``max`` and ``last`` keep
        the input dtype; ``mean`` is float32 for float32 / float16 input and float64 otherwise.
    """
    check_choice(mode, "mode", ("max", "last", "mean"))
    sparse = sp.issparse(token_matrix)
    if sparse:
        x = sp.csr_matrix(token_matrix)
        if x.ndim != 2:
            raise ValueError(f"token_matrix must be 2-D, got {describe(token_matrix)}")
    else:
        x = to_numpy(token_matrix, "token_matrix")
        if x.ndim != 2:
            raise ValueError(f"token_matrix must be 2-D (n_tokens, n_features), got {describe(x)}")
    n_tokens, n_features = x.shape
    r = _check_ranges(unit_ranges, n_tokens)
    n_units = r.shape[0]
    mean_dtype = np.float32 if x.dtype in (np.float32, np.float16) else np.float64
    lengths = r[:, 1] - r[:, 0]
    if mode == "last":
        return x[r[:, 1] - 1]
    # expanded rows: the rows of unit 0, then unit 1, ... (units may overlap or come in any order)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if n_units else _empty_i64()
    unit_of = np.repeat(np.arange(n_units, dtype=np.int64), lengths)
    rows = (np.arange(unit_of.shape[0], dtype=np.int64) - starts[unit_of] + r[unit_of, 0]) if n_units else _empty_i64()
    if not sparse:
        if n_units == 0:
            return np.zeros((0, n_features), dtype=x.dtype if mode == "max" else mean_dtype)
        ex = x[rows]
        if mode == "max":
            return np.maximum.reduceat(ex, starts, axis=0)
        return (np.add.reduceat(ex.astype(np.float64), starts, axis=0) / lengths[:, None]).astype(mean_dtype)
    if mode == "mean":
        sel = sp.csr_matrix(
            (1.0 / lengths[unit_of].astype(np.float64), (unit_of, rows)), shape=(n_units, n_tokens)
        )
        return sp.csr_matrix(sel @ x.astype(np.float64)).astype(mean_dtype)
    x.sum_duplicates()
    ex = x[rows].tocoo()
    u = unit_of[ex.row]
    key = u * np.int64(n_features) + ex.col.astype(np.int64)
    order = np.argsort(key, kind="stable")
    key, vals = key[order], ex.data[order]
    if key.size == 0:
        return sp.csr_matrix((n_units, n_features), dtype=x.dtype)
    first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    best = np.maximum.reduceat(vals, first)
    count = np.diff(np.concatenate([first, [key.size]]))
    ukey = key[first]
    uu, cc = ukey // n_features, ukey % n_features
    best = np.where(count < lengths[uu], np.maximum(best, 0), best).astype(x.dtype)
    out = sp.csr_matrix((best, (uu, cc)), shape=(n_units, n_features), dtype=x.dtype)
    out.eliminate_zeros()
    return out
