"""Token filters of feature activations: top-activating tokens and token classes of a vocabulary.

- :func:`top_activations` / :func:`top_token_ids`: each feature's k highest activations and their tokens,
  (n_features, k) arrays.
- :func:`top_tokens_overlap`: whether paired rows of two top-token tables share a token, bool (n,).
- :func:`normalize_token` / :func:`excluded_token_mask`: BPE-marker-free tokens; punctuation /
  whitespace / special tokens of a vocabulary, bool (vocab,).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from featgeom_tda.core._validation import check_positive_int
from featgeom_tda.core.types import FeatureActivations, as_activations

__all__ = [
    "DEFAULT_SPECIAL_TOKENS",
    "BPE_TABLE",
    "top_activations",
    "top_token_ids",
    "top_tokens_overlap",
    "require_token_ids",
    "normalize_token",
    "excluded_token_mask",
]

DEFAULT_SPECIAL_TOKENS = (
    "<pad>", "<bos>", "<eos>", "<unk>", "<s>", "</s>", "<mask>", "<sep>", "<cls>",
    "[PAD]", "[BOS]", "[EOS]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
)
_ANGLE_SPECIAL = re.compile(r"^<\|[^<>]*\|>$")  # <|endoftext|>, <|im_start|>, ...
_BPE_SPACE = {"\u0120": " ", "\u2581": " ", "\u010a": "\n", "\u0109": "\t"}  # Ġ ▁ Ċ ĉ
BPE_TABLE = str.maketrans(_BPE_SPACE)


def top_activations(acts: Any, *, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Rows and values of each feature's k highest activations.

    Args:
        acts: (n_tokens, n_features) activations (anything :func:`~featgeom_tda.core.types.as_activations` takes).
        k: activations kept per feature.

    Returns:
        rows: int64 (n_features, k), decreasing activation (ties: earlier row first); -1 padding for
            features with fewer than k non-zero activations.
        values: float32 (n_features, k); NaN padding.
    """
    k = check_positive_int(k, "k")
    m = as_activations(acts).matrix.tocsc()
    m.sort_indices()
    m.eliminate_zeros()
    n_features = m.shape[1]
    rows = np.full((n_features, k), -1, dtype=np.int64)
    values = np.full((n_features, k), np.nan, dtype=np.float32)
    counts = np.diff(m.indptr)
    col = np.repeat(np.arange(n_features), counts)
    if m.nnz == 0:
        return rows, values
    if k <= 16:
        # k passes of a segmented max over the columns (cheaper than sorting all entries for small k)
        data = m.data.astype(np.float64)
        row_idx = m.indices.astype(np.int64)
        nonempty = np.flatnonzero(counts)
        starts = m.indptr[:-1][nonempty]
        big = np.int64(np.iinfo(np.int64).max)
        for j in range(k):
            col_max = np.full(n_features, -np.inf)
            col_max[nonempty] = np.maximum.reduceat(data, starts)
            hit = (data == col_max[col]) & (data > -np.inf)
            first_row = np.full(n_features, big)
            first_row[nonempty] = np.minimum.reduceat(np.where(hit, row_idx, big), starts)
            pick = np.flatnonzero(hit & (row_idx == first_row[col]))
            if pick.size == 0:
                break
            rows[col[pick], j] = row_idx[pick]
            values[col[pick], j] = m.data[pick]
            data[pick] = -np.inf
        return rows, values
    # larger k: one stable sort by (column, -value); ties keep the row order of the sorted CSC
    order = np.lexsort((-m.data.astype(np.float64), col))
    col_sorted = col[order]
    slot = np.arange(order.size) - m.indptr[col_sorted]
    keep = slot < k
    rows[col_sorted[keep], slot[keep]] = m.indices[order[keep]]
    values[col_sorted[keep], slot[keep]] = m.data[order[keep]]
    return rows, values


def top_token_ids(acts: Any, *, k: int = 5) -> np.ndarray:
    """Token ids of each feature's k highest activations, int64 (n_features, k), -1 padding.

    Needs ``acts.token_ids`` (a FeatureActivations built with token ids).
    """
    a = as_activations(acts)
    require_token_ids(a, "acts")
    rows, _ = top_activations(a, k=k)
    return np.where(rows >= 0, a.token_ids[np.maximum(rows, 0)], -1)


def top_tokens_overlap(top_a: np.ndarray, top_b: np.ndarray) -> np.ndarray:
    """Whether row i of ``top_a`` and row i of ``top_b`` (token ids, -1 = none) share a token, bool (n,)."""
    top_a = np.asarray(top_a)
    top_b = np.asarray(top_b)
    if top_a.ndim != 2 or top_b.ndim != 2 or top_a.shape[0] != top_b.shape[0]:
        raise ValueError(
            f"top_a and top_b must be 2-D with the same number of rows, got {top_a.shape} and {top_b.shape}"
        )
    out = np.zeros(top_a.shape[0], dtype=bool)
    step = max(1, 4_000_000 // max(1, top_a.shape[1] * top_b.shape[1]))
    for s in range(0, top_a.shape[0], step):  # blocks bound the (n, k_a, k_b) comparison
        ta, tb = top_a[s : s + step], top_b[s : s + step]
        eq = (ta[:, :, None] == tb[:, None, :]) & (ta[:, :, None] >= 0)
        out[s : s + step] = eq.any(axis=(1, 2))
    return out


def require_token_ids(a: FeatureActivations, name: str) -> None:
    """Raise ValueError when some row of ``a`` has no token id (-1)."""
    if (a.token_ids < 0).any():
        n_bad = int((a.token_ids < 0).sum())
        raise ValueError(
            f"{name} has {n_bad} rows without a token id (-1); build FeatureActivations with token_ids"
        )



def normalize_token(token: str) -> str:
    """Lower-cased token without BPE space markers ("Ġ", "▁") or surrounding whitespace."""
    return str(token).translate(BPE_TABLE).strip().lower()



def excluded_token_mask(
    token_strings: Sequence[str], *, special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS
) -> np.ndarray:
    """bool (vocab,) marking tokens that are whitespace, punctuation / symbols only, or special tokens.

    Special tokens: ``special_tokens`` (exact strings) and any "<|...|>" token.
    """
    specials = set(special_tokens)
    out = np.zeros(len(token_strings), dtype=bool)
    for i, raw in enumerate(token_strings):
        raw = str(raw)
        if raw in specials or _ANGLE_SPECIAL.match(raw):
            out[i] = True
            continue
        text = raw.translate(BPE_TABLE).strip()
        out[i] = all(unicodedata.category(ch)[0] in "PSZC" for ch in text)  # also True for ""
    return out
