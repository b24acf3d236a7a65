"""Reading features through the tokens they fire on.

- :func:`top_activations` / :func:`top_token_ids`: each feature's k highest activations and their tokens.
- :func:`top_examples`: those activations in context, with the firing token marked.
- :func:`same_token_score`: how often matched features share a top-activating token, against randomly
  re-paired features.
- :func:`concept_labels` / :func:`feature_concepts`: features whose top tokens fall in a concept group.
- :func:`excluded_token_mask`: punctuation / whitespace / special tokens of a vocabulary.

The token helpers (top activations, top token ids, token classes) live in
:mod:`featgeom_tda.core.token_filters` and are part of this module's public API too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featgeom_tda.core._validation import check_positive_int, describe
from featgeom_tda.core.token_filters import (
    BPE_TABLE,
    DEFAULT_SPECIAL_TOKENS,
    excluded_token_mask,
    normalize_token,
    require_token_ids,
    top_activations,
    top_token_ids,
    top_tokens_overlap,
)
from featgeom_tda.core.types import FeatureActivations, FeatureMatching, as_activations

__all__ = [
    "Example",
    "SameTokenScore",
    "DEFAULT_SPECIAL_TOKENS",
    "top_activations",
    "top_token_ids",
    "top_tokens_overlap",
    "top_examples",
    "same_token_score",
    "concept_labels",
    "feature_concepts",
    "normalize_token",
    "excluded_token_mask",
]


# ------------------------------------------------------------------------------------------------------
# examples in context
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Example:
    """One activation of a feature in context.

    ``context`` is the text around the token with the token itself wrapped in the markers (default
    ``[[...]]``); ``doc`` and ``position`` are -1 when unknown.
    """

    feature: int
    row: int
    doc: int
    position: int
    activation: float
    token_id: int
    token: str
    context: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "row": self.row,
            "doc": self.doc,
            "position": self.position,
            "activation": self.activation,
            "token_id": self.token_id,
            "token": self.token,
            "context": self.context,
        }


def top_examples(
    acts: Any,
    features: Any,
    *,
    k: int = 5,
    window: int = 8,
    tokens: Any = None,
    decode: Callable[[list[int]], str] | None = None,
    token_strings: Sequence[str] | None = None,
    markers: tuple[str, str] = ("[[", "]]"),
) -> list[list[Example]]:
    """The k highest activations of each of ``features`` with ``window`` tokens of context on each side.

    Args:
        acts: FeatureActivations with token ids (and doc_index / position for context).
        features: feature indices (sequence of ints).
        tokens: the tokenized corpus, a 2-D array (n_docs, seq_len) or a list of 1-D arrays, indexed by
            ``acts.doc_index`` and ``acts.position``. Without it the context is read from the activation
            rows of the same document (by position when known, else by row order).
        decode: callable turning a list of token ids into text (e.g. ``tokenizer.decode``), or
        token_strings: token id -> string (BPE markers such as "Ġ" / "▁" shown as spaces);
            with neither, token ids are shown.
        markers: strings put before and after the firing token.

    Returns:
        One list per requested feature (in order), each with up to k :class:`Example` of decreasing activation.
    """
    a = as_activations(acts)
    k = check_positive_int(k, "k")
    window = check_positive_int(window, "window", minimum=0)
    feats = _feature_indices(features, a.n_features, "features")
    if decode is not None and not callable(decode):
        raise ValueError(f"decode must be callable (list of token ids -> str); got {describe(decode)}")
    require_token_ids(a, "acts")
    if feats.size == 0:
        return []
    rows, values = top_activations(a.select_features(feats), k=k)
    context_ids = _context_ids(a, rows, window, tokens)
    to_text = _text_function(decode, token_strings)
    out: list[list[Example]] = []
    for i, f in enumerate(feats):
        examples = []
        for j in range(k):
            r = int(rows[i, j])
            if r < 0:
                break
            before, tok, after = context_ids[i][j]
            context = f"{to_text(before)}{markers[0]}{to_text([tok])}{markers[1]}{to_text(after)}"
            examples.append(
                Example(
                    feature=int(f),
                    row=r,
                    doc=int(a.doc_index[r]),
                    position=int(a.position[r]),
                    activation=float(values[i, j]),
                    token_id=int(tok),
                    token=to_text([tok]),
                    context=context,
                )
            )
        out.append(examples)
    return out


def _feature_indices(features: Any, n_features: int, name: str) -> np.ndarray:
    arr = np.asarray(features)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-D sequence of feature indices; got {describe(arr)}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_features):
        raise ValueError(f"{name} must lie in [0, {n_features}); got values from {arr.min()} to {arr.max()}")
    return arr


def _context_ids(a: FeatureActivations, rows: np.ndarray, window: int, tokens: Any) -> list[list[Any]]:
    """(before ids, token id, after ids) for every selected row; vectorised window lookup."""
    flat = rows.ravel()
    valid = flat >= 0
    r = np.where(valid, flat, 0)
    result: list[Any] = [None] * flat.size
    if tokens is not None:
        docs, pos = a.doc_index[r], a.position[r]
        if ((docs < 0) | (pos < 0))[valid].any():
            raise ValueError("tokens was given but some selected rows have no doc_index / position (-1)")
        seqs = _token_sequences(tokens)
        if valid.any() and docs[valid].max() >= len(seqs):
            raise ValueError(f"tokens holds {len(seqs)} documents but acts refers to doc {docs[valid].max()}")
        for i in np.flatnonzero(valid):
            seq = seqs[docs[i]]
            p = int(pos[i])
            if p >= len(seq):
                raise ValueError(f"tokens document {docs[i]} has {len(seq)} tokens but acts refers to position {p}")
            result[i] = (
                [int(t) for t in seq[max(0, p - window) : p]],
                int(a.token_ids[flat[i]]),
                [int(t) for t in seq[p + 1 : p + 1 + window]],
            )
    else:
        # order rows by (doc, position or row) and take neighbours within the same document
        use_pos = (a.position >= 0).all()
        second = a.position if use_pos else np.arange(a.n_tokens)
        order = np.lexsort((np.arange(a.n_tokens), second, a.doc_index))
        where = np.empty(a.n_tokens, dtype=np.int64)
        where[order] = np.arange(a.n_tokens)
        doc_sorted = a.doc_index[order]
        second_sorted = second[order]
        for i in np.flatnonzero(valid):
            at = int(where[flat[i]])
            lo, hi = max(0, at - window), min(a.n_tokens, at + window + 1)
            nb = np.arange(lo, hi)
            same = (doc_sorted[nb] == doc_sorted[at]) & (np.abs(second_sorted[nb] - second_sorted[at]) <= window)
            ids = a.token_ids[order[nb]]
            result[i] = (
                ids[(nb < at) & same].tolist(),
                int(a.token_ids[flat[i]]),
                ids[(nb > at) & same].tolist(),
            )
    return [result[i * rows.shape[1] : (i + 1) * rows.shape[1]] for i in range(rows.shape[0])]


def _token_sequences(tokens: Any) -> list[np.ndarray]:
    if isinstance(tokens, np.ndarray) or hasattr(tokens, "detach"):
        from featgeom_tda.core._validation import to_numpy

        arr = to_numpy(tokens, "tokens")
        if arr.ndim != 2:
            raise ValueError(f"tokens must be 2-D (n_docs, seq_len) or a list of 1-D arrays; got {describe(arr)}")
        return list(arr)
    if isinstance(tokens, Sequence):
        return [np.asarray(t).ravel() for t in tokens]
    raise ValueError(f"tokens must be 2-D (n_docs, seq_len) or a list of 1-D arrays; got {describe(tokens)}")


def _text_function(decode: Callable | None, token_strings: Sequence[str] | None) -> Callable[[list[int]], str]:
    if decode is not None:
        return lambda ids: str(decode(list(ids))) if len(ids) else ""
    if token_strings is not None:
        n = len(token_strings)

        def join(ids: list[int]) -> str:
            return "".join(
                str(token_strings[t]).translate(BPE_TABLE) if 0 <= t < n else f"<{t}>" for t in ids
            )

        return join
    return lambda ids: " ".join(str(t) for t in ids)


# ------------------------------------------------------------------------------------------------------
# same-token score
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SameTokenScore:
    """Fraction of matched pairs whose top-activating token sets overlap, against re-paired features.

    p_value = (1 + #baseline scores >= score) / (1 + n_baseline).
    """

    score: float
    baseline_mean: float
    baseline_std: float
    p_value: float
    n_pairs: int
    k: int
    n_baseline: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def same_token_score(
    matching: FeatureMatching,
    acts_a: Any,
    acts_b: Any,
    *,
    k: int = 5,
    n_baseline: int = 100,
    seed: int = 0,
) -> SameTokenScore:
    """Fraction of pairs in ``matching`` whose k top-activating tokens overlap, with a shuffled baseline.

    The baseline re-pairs the same A and B features at random (a permutation of index_b), ``n_baseline``
    times with ``np.random.default_rng(seed)``.
    """
    if not isinstance(matching, FeatureMatching):
        raise ValueError(f"matching must be a FeatureMatching; got {describe(matching)}")
    k = check_positive_int(k, "k")
    n_baseline = check_positive_int(n_baseline, "n_baseline")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer; got {seed!r}")
    a = as_activations(acts_a, "acts_a")
    b = as_activations(acts_b, "acts_b")
    if len(matching) == 0:
        raise ValueError("matching must hold at least one pair; got an empty matching")
    for idx, acts, name in ((matching.index_a, a, "acts_a"), (matching.index_b, b, "acts_b")):
        if idx.max() >= acts.n_features or idx.min() < 0:
            raise ValueError(
                f"matching refers to feature {int(idx.max())} but {name} has {acts.n_features} features"
            )
    top_a = top_token_ids(a.select_features(matching.index_a), k=k)
    top_b = top_token_ids(b.select_features(matching.index_b), k=k)
    score = float(top_tokens_overlap(top_a, top_b).mean())
    rng = np.random.default_rng(seed)
    n_pairs = len(matching)
    null = np.array([top_tokens_overlap(top_a, top_b[rng.permutation(n_pairs)]).mean() for _ in range(n_baseline)])
    p = (1 + int((null >= score).sum())) / (1 + n_baseline)
    return SameTokenScore(
        score=score,
        baseline_mean=float(null.mean()),
        baseline_std=float(null.std()),
        p_value=float(p),
        n_pairs=len(matching),
        k=k,
        n_baseline=n_baseline,
        seed=int(seed),
    )


# ------------------------------------------------------------------------------------------------------
# concepts and token classes
# ------------------------------------------------------------------------------------------------------
def _normalized_vocab(token_strings: Sequence[str]) -> np.ndarray:
    if isinstance(token_strings, (str, bytes)) or not isinstance(token_strings, Sequence):
        raise ValueError(
            f"token_strings must be a sequence of strings (token id -> string); got {describe(token_strings)}"
        )
    return np.array([normalize_token(s) for s in token_strings], dtype=object)


def _check_groups(concept_groups: Any) -> dict[str, set[str]]:
    if not isinstance(concept_groups, Mapping) or not concept_groups:
        raise ValueError(f"concept_groups must be a non-empty mapping concept -> words; got {describe(concept_groups)}")
    groups = {}
    for name, words in concept_groups.items():
        if isinstance(words, str) or not isinstance(words, (Sequence, set, frozenset)) or not words:
            raise ValueError(f"concept_groups[{name!r}] must be a non-empty list of words; got {words!r}")
        groups[str(name)] = {normalize_token(w) for w in words}
    return groups


def _concept_fractions(
    acts: Any, token_strings: Sequence[str], concept_groups: Any, k: int
) -> tuple[list[str], np.ndarray]:
    """Concept names and (n_features, n_concepts) fraction of each feature's top-k tokens in each group."""
    groups = _check_groups(concept_groups)
    k = check_positive_int(k, "k")
    vocab = _normalized_vocab(token_strings)
    top = top_token_ids(acts, k=k)
    if top.size and top.max() >= vocab.size:
        raise ValueError(f"acts has token id {int(top.max())} but token_strings has {vocab.size} entries")
    valid = top >= 0
    n_valid = valid.sum(axis=1)
    names = list(groups)
    frac = np.zeros((top.shape[0], len(names)))
    for j, name in enumerate(names):  # loop over concepts; vectorised over features
        in_group = np.isin(vocab, list(groups[name]))
        hits = in_group[np.maximum(top, 0)] & valid
        frac[:, j] = np.divide(hits.sum(axis=1), n_valid, out=np.zeros(top.shape[0]), where=n_valid > 0)
    return names, frac


def concept_labels(
    acts: Any,
    token_strings: Sequence[str],
    concept_groups: Mapping[str, Sequence[str]],
    *,
    k: int = 1,
    min_fraction: float = 0.5,
) -> dict[str, np.ndarray]:
    """Concept -> int64 array of the features labelled with it.

    A feature is labelled with a concept when at least ``min_fraction`` of its k top-activating tokens
    (with k=1: its top-activating token) are in the concept's word group. Matching ignores case and
    leading spaces / BPE markers ("Ġ", "▁"). A feature may carry several concepts when groups overlap.
    """
    min_fraction = _check_min_fraction(min_fraction)
    names, frac = _concept_fractions(acts, token_strings, concept_groups, k)
    return {name: np.flatnonzero(frac[:, j] >= min_fraction) for j, name in enumerate(names)}


def feature_concepts(
    acts: Any,
    token_strings: Sequence[str],
    concept_groups: Mapping[str, Sequence[str]],
    *,
    k: int = 1,
    min_fraction: float = 0.5,
) -> np.ndarray:
    """One label per feature (object array of str, "" for none): the concept with the largest fraction of
    the feature's k top tokens (first group wins ties), if that fraction is >= ``min_fraction``."""
    min_fraction = _check_min_fraction(min_fraction)
    names, frac = _concept_fractions(acts, token_strings, concept_groups, k)
    best = np.argmax(frac, axis=1)
    labels = np.array(names + [""], dtype=object)
    ok = frac[np.arange(frac.shape[0]), best] >= min_fraction
    return labels[np.where(ok, best, len(names))]


def _check_min_fraction(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"min_fraction must be a number in (0, 1]; got {value!r}") from None
    if not 0 < v <= 1:
        raise ValueError(f"min_fraction must be a number in (0, 1]; got {value!r}")
    return v
