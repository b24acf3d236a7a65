"""Shared input handling for steering: token batches, positions, feature indices, tokenizers, interventions."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Sequence

import numpy as np

from featgeom_tda.core._validation import describe, to_numpy

__all__ = [
    "token_sequences",
    "group_by_length",
    "check_positions",
    "resolve_positions",
    "check_features",
    "encode_text",
    "word_token_id",
    "token_label",
    "open_intervention",
    "model_device",
]


# ----------------------------------------------------------------------------------------------- tokens


def token_sequences(
    tokens: Any, name: str = "tokens", *, tokenizer: Any = None, d_vocab: int | None = None
) -> list[list[int]]:
    """Normalise prompts to a list of token-id lists.

    Accepts a 1-D or 2-D integer torch/numpy array (one prompt or ``(batch, pos)``), a list of ints (one
    prompt), a list of int lists (prompts of any lengths), or a string / list of strings together with
    ``tokenizer``. Token ids must lie in ``[0, d_vocab)`` when ``d_vocab`` is given.
    """
    if isinstance(tokens, str):
        tokens = [tokens]
    if isinstance(tokens, (list, tuple)) and tokens and all(isinstance(t, str) for t in tokens):
        if tokenizer is None:
            raise ValueError(f"{name} holds strings; pass tokenizer= to encode them, or pass token ids")
        seqs = [encode_text(tokenizer, t) for t in tokens]
    elif isinstance(tokens, (list, tuple)) and tokens and all(_is_int(t) for t in tokens):
        seqs = [[int(t) for t in tokens]]
    elif isinstance(tokens, (list, tuple)):
        if not tokens:
            raise ValueError(f"{name} must not be empty")
        seqs = []
        for i, seq in enumerate(tokens):
            arr = to_numpy(seq, f"{name}[{i}]")
            if arr.ndim != 1 or arr.dtype.kind not in "iu":
                raise ValueError(f"{name}[{i}] must be a 1-D sequence of integer token ids, got {describe(arr)}")
            seqs.append([int(t) for t in arr])
    else:
        arr = to_numpy(tokens, name)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer token ids, got {describe(arr)}")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 1-D (pos,) or 2-D (batch, pos), got {describe(arr)}")
        seqs = [[int(t) for t in row] for row in arr]
    for i, seq in enumerate(seqs):
        if not seq:
            raise ValueError(f"{name}[{i}] is empty; every prompt needs at least one token")
        if d_vocab is not None:
            bad = [t for t in seq if t < 0 or t >= d_vocab]
            if bad:
                raise ValueError(f"{name}[{i}] has token id {bad[0]} outside the model vocabulary [0, {d_vocab})")
    return seqs


def group_by_length(seqs: list[list[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group prompts of equal length: list of (indices into ``seqs``, int64 array (n_group, length))."""
    groups: dict[int, list[int]] = {}
    for i, seq in enumerate(seqs):
        groups.setdefault(len(seq), []).append(i)
    return [
        (np.asarray(idx, dtype=np.int64), np.asarray([seqs[i] for i in idx], dtype=np.int64))
        for _, idx in sorted(groups.items())
    ]


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def model_device(model: Any) -> Any:
    return next(model.parameters()).device


# -------------------------------------------------------------------------------------------- positions


def check_positions(positions: Any, name: str = "positions") -> Any:
    """Validate a position spec: None (all), an int, a slice, or a sequence of ints (negative allowed)."""
    if positions is None or isinstance(positions, slice) or _is_int(positions):
        return int(positions) if _is_int(positions) else positions
    if isinstance(positions, (list, tuple, np.ndarray)) or type(positions).__module__.startswith("torch"):
        arr = to_numpy(positions, name)
        if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
            raise ValueError(f"{name} must be a non-empty 1-D sequence of ints, got {describe(arr)}")
        return tuple(int(p) for p in arr)
    raise ValueError(f"{name} must be None (all positions), an int, a slice or a sequence of ints; got {positions!r}")


def resolve_positions(positions: Any, seq_len: int, name: str = "positions") -> list[int]:
    """Concrete, de-duplicated, non-negative indices for a sequence of length ``seq_len``."""
    if positions is None:
        return list(range(seq_len))
    if isinstance(positions, slice):
        idx = list(range(seq_len))[positions]
        if not idx:
            raise ValueError(f"{name} {positions!r} selects no position in a sequence of length {seq_len}")
        return idx
    raw = (positions,) if _is_int(positions) else positions
    out: list[int] = []
    for p in raw:
        q = p + seq_len if p < 0 else p
        if not 0 <= q < seq_len:
            raise ValueError(f"{name} has position {p}, outside a sequence of length {seq_len}")
        if q not in out:
            out.append(q)
    return out


# --------------------------------------------------------------------------------------------- features


def check_features(features: Any, n_features: int, name: str = "features") -> list[int]:
    """Feature indices as a list of ints in ``[0, n_features)``."""
    if _is_int(features):
        features = [features]
    arr = to_numpy(features, name)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an int or a non-empty 1-D sequence of ints, got {describe(arr)}")
    bad = [int(f) for f in arr if f < 0 or f >= n_features]
    if bad:
        raise ValueError(f"{name} has index {bad[0]} outside [0, {n_features}) for an SAE of {n_features} features")
    return [int(f) for f in dict.fromkeys(arr.tolist())]


# -------------------------------------------------------------------------------------------- tokenizer


def encode_text(tokenizer: Any, text: str, *, add_special_tokens: bool = True) -> list[int]:
    """Token ids of ``text`` from a ``tokenizers.Tokenizer``, a Hugging Face tokenizer or any ``encode``."""
    if not hasattr(tokenizer, "encode"):
        raise ValueError(f"tokenizer must have an encode method, got {type(tokenizer).__name__}")
    try:
        out = tokenizer.encode(text, add_special_tokens=add_special_tokens)
    except TypeError:
        out = tokenizer.encode(text)
    ids = getattr(out, "ids", out)
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    return [int(i) for i in ids]


def unknown_token_id(tokenizer: Any) -> int | None:
    """The tokenizer's unknown-token id, or None when it has none."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None:
        return int(unk)
    model = getattr(tokenizer, "model", None)
    unk_token = getattr(model, "unk_token", None)
    if unk_token and hasattr(tokenizer, "token_to_id"):
        found = tokenizer.token_to_id(unk_token)
        return None if found is None else int(found)
    return None


def word_token_id(tokenizer: Any, word: str, name: str = "word") -> int:
    """The single token that continues a text with ``word``.

    Tries `` word`` (a leading space, as byte-level BPE vocabularies spell a word inside a sentence) and then
    ``word``; raises if neither is exactly one known token.
    """
    unk = unknown_token_id(tokenizer)
    for text in (" " + word, word):
        ids = encode_text(tokenizer, text, add_special_tokens=False)
        if len(ids) == 1 and ids[0] != unk:
            return ids[0]
    raise ValueError(f"{name} {word!r} is not a single known token of this tokenizer; choose another word")


def token_label(tokenizer: Any, token_id: int) -> str:
    """Readable text of one token id (for tables and plots)."""
    if tokenizer is None:
        return str(token_id)
    if hasattr(tokenizer, "id_to_token"):
        tok = tokenizer.id_to_token(int(token_id))
        if tok is not None:
            return str(tok)
    if hasattr(tokenizer, "decode"):
        return str(tokenizer.decode([int(token_id)]))
    return str(token_id)


# ----------------------------------------------------------------------------------------- interventions


def open_intervention(intervention: Callable[[], Any] | None, name: str = "intervention") -> Any:
    """Context manager from a zero-argument callable (None means no intervention)."""
    if intervention is None:
        return nullcontext()
    if not callable(intervention):
        raise ValueError(
            f"{name} must be a zero-argument callable returning a context manager "
            f"(e.g. functools.partial(steer, ...)), got {type(intervention).__name__}"
        )
    ctx = intervention()
    if not (hasattr(ctx, "__enter__") and hasattr(ctx, "__exit__")):
        raise ValueError(f"{name}() must return a context manager, got {type(ctx).__name__}")
    return ctx


def as_index_list(values: Sequence[Any] | Any, n: int, name: str) -> list[int]:
    """An int broadcast to ``n`` entries, or a sequence of ``n`` ints."""
    if _is_int(values):
        return [int(values)] * n
    arr = to_numpy(values, name)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an int or a 1-D sequence of ints, got {describe(arr)}")
    if arr.size != n:
        raise ValueError(f"{name} has {arr.size} entries but there are {n} prompts; give one per prompt or one int")
    return [int(v) for v in arr]
