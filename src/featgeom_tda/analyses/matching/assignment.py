"""Matching features one-to-one (greedy mutual pairs first, or globally optimal), many-to-one or mutually from top
correlations, with filters."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Callable, Literal

import numpy as np
import scipy.sparse as sp

from featgeom_tda.analyses.matching.stats import column_stats, prepared, resolve_jobs
from featgeom_tda.analyses.matching.top import CORRELATION_METHODS, TopCorrelations, top_from_stats
from featgeom_tda.core._validation import check_choice, check_number, check_positive_int, check_same_rows, describe
from featgeom_tda.core.token_filters import excluded_token_mask, top_token_ids, top_tokens_overlap
from featgeom_tda.core.types import FeatureMatching

__all__ = ["MATCH_MODES", "match_features", "match_with_top"]

MATCH_MODES = ("one-to-one", "many-to-one", "mutual", "optimal")


def match_features(
    acts_a: Any,
    acts_b: Any,
    *,
    mode: Literal["one-to-one", "many-to-one", "mutual", "optimal"] = "one-to-one",
    threshold: float | None = None,
    top_k: int = 5,
    exclude_tokens: str | Collection[int] | Collection[str] | None = None,
    token_strings: Sequence[str] | None = None,
    require_same_token: bool = False,
    n_top_tokens: int = 5,
    chunk_size: int | None = None,
    device: Any = None,
    n_jobs: int | None = None,
    method: Literal["auto", "fused", "scipy", "dense"] = "auto",
    progress: bool = False,
) -> FeatureMatching:
    """Pair the features of A and B by activation correlation over the same token rows.

    Modes:
        "many-to-one": every live A feature keeps its most correlated B feature.
        "mutual": only pairs that are each other's best.
        "one-to-one": the mutual pairs, plus an optimal assignment (maximum total correlation, pairs with
            correlation <= 0 left out) of the remaining features over the candidate pairs found in the
            top ``top_k`` lists of both directions (sparse, never an n_a x n_b matrix).
        "optimal": the one-to-one pairing with the maximum total correlation over that whole candidate graph
            (the top ``top_k`` B features of every A feature and the top ``top_k`` A features of every B
            feature), mutual pairs not fixed first; pairs with correlation <= 0 never enter, features may stay
            unpaired. Its total is >= that of "one-to-one" (whose pairs are a feasible pairing of the same
            graph), and equal to the dense optimum when ``top_k`` covers every pair.

    Filters, applied in this order, each recorded in ``filtered`` with the number of pairs it removed:
        threshold: drop pairs with correlation < threshold ("below_threshold"). In "optimal" mode candidate
            pairs below the threshold are dropped BEFORE the assignment, so the result is the optimum among
            the pairs that pass it, and "below_threshold" counts the distinct candidate pairs (with positive
            correlation) it dropped.
        exclude_tokens: "punctuation" drops pairs where either feature's top ``n_top_tokens`` activating
            tokens are all punctuation / whitespace / special tokens ("punctuation_only"; needs
            ``token_strings``); a collection of token ids (or strings, with ``token_strings``) drops pairs
            where either feature's top tokens all lie in it ("excluded_tokens_only").
        require_same_token: keep only pairs whose top-token sets overlap ("no_shared_top_token").
    Token filters need the token ids of the rows (``FeatureActivations.token_ids``).
    ``filtered`` also records "dead_a" / "dead_b" (features with zero variance, never paired) and, by
    mode, "not_mutual" (A features whose best B is not mutual) or "unassigned_a" (live A features left
    without a partner by the one-to-one assignment).

    Returns:
        :class:`FeatureMatching` ordered by index_a, with the options in ``config`` and provenance of
        both inputs.
    """
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    n_jobs = resolve_jobs(n_jobs)
    check_choice(method, "method", CORRELATION_METHODS)
    common = dict(chunk_size=chunk_size, device=device, n_jobs=n_jobs, method=method, progress=progress)

    def top(x: Any, y: Any, sx: Any, sy: Any, k: int) -> Any:
        return top_from_stats(x, y, sx, sy, k=k, **common)

    return match_with_top(
        top, acts_a, acts_b, mode=mode, threshold=threshold, top_k=top_k, exclude_tokens=exclude_tokens,
        token_strings=token_strings, require_same_token=require_same_token, n_top_tokens=n_top_tokens,
    )


def match_with_top(
    top: Callable[[Any, Any, Any, Any, int], Any],
    acts_a: Any,
    acts_b: Any,
    *,
    mode: Literal["one-to-one", "many-to-one", "mutual", "optimal"] = "one-to-one",
    threshold: float | None = None,
    top_k: int = 5,
    exclude_tokens: str | Collection[int] | Collection[str] | None = None,
    token_strings: Sequence[str] | None = None,
    require_same_token: bool = False,
    n_top_tokens: int = 5,
) -> FeatureMatching:
    """:func:`match_features` with the top correlations computed by ``top(x, y, stats_x, stats_y, k)`` (a
    :class:`TopCorrelations` of every column of x against y), e.g. sharded over a cluster; options as there."""
    check_choice(mode, "mode", MATCH_MODES)
    top_k = check_positive_int(top_k, "top_k")
    n_top_tokens = check_positive_int(n_top_tokens, "n_top_tokens")
    if threshold is not None:
        threshold = check_number(threshold, "threshold", low=-1.0, high=1.0)
    if not isinstance(require_same_token, bool):
        raise ValueError(f"require_same_token must be True or False; got {require_same_token!r}")

    a = prepared(acts_a, "acts_a")
    b = prepared(acts_b, "acts_b")
    check_same_rows(a.matrix, "acts_a", b.matrix, "acts_b", what="the two activation sets")
    token_rule = _token_rule(exclude_tokens, token_strings)
    uses_tokens = token_rule is not None or require_same_token
    if uses_tokens:
        for acts, name in ((a, "acts_a"), (b, "acts_b")):
            if (acts.token_ids < 0).any():
                raise ValueError(
                    f"{name} has rows without token ids (-1); token filters need FeatureActivations with token_ids"
                )

    sa, sb = column_stats(a.matrix), column_stats(b.matrix)
    k = top_k if mode in ("one-to-one", "optimal") else 1
    ab = top(a.matrix, b.matrix, sa, sb, k)
    filtered: dict[str, int] = {"dead_a": int(sa.dead.sum()), "dead_b": int(sb.dead.sum())}
    best_b, best_ab = ab.best()
    has_best = best_b >= 0
    if mode == "many-to-one":
        ia = np.flatnonzero(has_best)
        ib = best_b[ia]
        corr = best_ab[ia].astype(np.float64)
    elif mode == "optimal":
        ba = top(b.matrix, a.matrix, sb, sa, k)
        none = np.zeros(0, dtype=np.int64)
        ea, eb, ec = _candidate_edges(ab, ba, none, none)
        if threshold is not None:
            keep = ec >= threshold
            filtered["below_threshold"] = int((~keep).sum())
            ea, eb, ec = ea[keep], eb[keep], ec[keep]
        ia, ib, corr = _max_weight_matching(ea, eb, ec)
        filtered["unassigned_a"] = int(has_best.sum() - ia.size)
    else:
        ba = top(b.matrix, a.matrix, sb, sa, k)
        best_a, _ = ba.best()
        mutual = has_best.copy()
        mutual[has_best] = best_a[best_b[has_best]] == np.flatnonzero(has_best)
        ia = np.flatnonzero(mutual)
        ib = best_b[ia]
        corr = best_ab[ia].astype(np.float64)
        if mode == "mutual":
            filtered["not_mutual"] = int(has_best.sum() - mutual.sum())
        else:
            xa, xb, xc = _assign_rest(ab, ba, ia, ib)
            ia = np.concatenate([ia, xa])
            ib = np.concatenate([ib, xb])
            corr = np.concatenate([corr, xc])
            filtered["unassigned_a"] = int(has_best.sum() - ia.size)

    order = np.argsort(ia, kind="stable")
    ia, ib, corr = ia[order], ib[order], corr[order]

    if threshold is not None and mode != "optimal":  # "optimal" applied it to the candidate pairs
        keep = corr >= threshold
        filtered["below_threshold"] = int((~keep).sum())
        ia, ib, corr = ia[keep], ib[keep], corr[keep]

    if uses_tokens:
        if ia.size:
            tok_a = top_token_ids(a.select_features(ia), k=n_top_tokens)
            tok_b = top_token_ids(b.select_features(ib), k=n_top_tokens)
        else:
            tok_a = tok_b = np.zeros((0, n_top_tokens), dtype=np.int64)
        if token_rule is not None:
            reason, excluded = token_rule
            drop = _only_excluded(tok_a, excluded) | _only_excluded(tok_b, excluded)
            filtered[reason] = int(drop.sum())
            keep = ~drop
            ia, ib, corr, tok_a, tok_b = ia[keep], ib[keep], corr[keep], tok_a[keep], tok_b[keep]
        if require_same_token:
            keep = top_tokens_overlap(tok_a, tok_b)
            filtered["no_shared_top_token"] = int((~keep).sum())
            ia, ib, corr = ia[keep], ib[keep], corr[keep]

    config = {
        "mode": mode,
        "threshold": threshold,
        "top_k": top_k,
        "exclude_tokens": _describe_exclude(exclude_tokens),
        "require_same_token": require_same_token,
        "n_top_tokens": n_top_tokens,
        "n_rows": int(a.n_tokens),
        "n_features_a": int(a.n_features),
        "n_features_b": int(b.n_features),
        "method": ab.method,
    }
    return FeatureMatching(
        ia, ib, corr.astype(np.float32), filtered=filtered, config=config,
        provenance_a=a.provenance, provenance_b=b.provenance,
    )


def _assign_rest(
    ab: TopCorrelations, ba: TopCorrelations, fixed_a: np.ndarray, fixed_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-total-correlation matching of the features not in a fixed pair, over top-k candidate edges.

    Unmatched features are allowed (each gets a private dummy partner), so a full matching always exists;
    a real pair (a, b) enters the matching only when it raises the total, i.e. corr(a, b) > 0.
    """
    ea, eb, ec = _candidate_edges(ab, ba, fixed_a, fixed_b)
    return _max_weight_matching(ea, eb, ec)


def _candidate_edges(
    ab: TopCorrelations, ba: TopCorrelations, fixed_a: np.ndarray, fixed_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct candidate pairs (a, b, corr) of the top-k lists of both directions with corr > 0, among the
    features not in ``fixed_a`` / ``fixed_b``; a pair listed in both directions keeps the larger value."""
    na, nb = ab.n_features_a, ab.n_features_b
    ea = np.concatenate([np.repeat(np.arange(na), ab.k), ba.indices.ravel()])
    eb = np.concatenate([ab.indices.ravel(), np.repeat(np.arange(nb), ba.k)])
    ec = np.concatenate([ab.values.ravel(), ba.values.ravel()]).astype(np.float64)
    free_a = np.ones(na, dtype=bool)
    free_a[fixed_a] = False
    free_b = np.ones(nb, dtype=bool)
    free_b[fixed_b] = False
    ok = (ea >= 0) & (eb >= 0)
    ok[ok] &= free_a[ea[ok]] & free_b[eb[ok]] & (ec[ok] > 0)
    ea, eb, ec = ea[ok], eb[ok], ec[ok]
    if ea.size == 0:
        return ea, eb, ec
    # one edge per pair (the two directions agree up to rounding; keep the larger)
    key = ea * nb + eb
    o = np.lexsort((-ec, key))
    key, ea, eb, ec = key[o], ea[o], eb[o], ec[o]
    first = np.ones(key.size, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    return ea[first], eb[first], ec[first]


def _max_weight_matching(
    ea: np.ndarray, eb: np.ndarray, ec: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The matching of maximum total ``ec`` over the distinct edges (ea, eb) with ec > 0, unmatched features
    allowed, by scipy's min_weight_full_bipartite_matching on an augmented graph that always has a full matching."""
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    if ea.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    # compact to the features that have candidate edges
    ua, la = np.unique(ea, return_inverse=True)
    ub, lb = np.unique(eb, return_inverse=True)
    n_ra, n_rb, n_e = ua.size, ub.size, la.size
    # rows: free A features, then one dummy per B feature; columns: free B features, then one dummy per A
    # feature. Real edge (a, b): cost shift - corr; a unmatched: (a, dummy_a); b unmatched: (dummy_b, b);
    # (dummy_b, dummy_a) for every real edge lets the dummies of a matched pair pair up. Every full
    # matching costs shift * (n_ra + n_rb) - (sum of matched correlations).
    shift = 2.0  # keeps every weight > 0 (zero weights are not edges for the solver)
    rows = np.concatenate([la, np.arange(n_ra), n_ra + np.arange(n_rb), n_ra + lb])
    cols = np.concatenate([lb, n_rb + np.arange(n_ra), np.arange(n_rb), n_rb + la])
    w = np.concatenate([shift - ec, np.full(n_ra + n_rb + n_e, shift)])
    graph = sp.csr_matrix((w, (rows, cols)), shape=(n_ra + n_rb, n_rb + n_ra))
    r, c = min_weight_full_bipartite_matching(graph)
    real = (r < n_ra) & (c < n_rb)
    ra, cb = r[real], c[real]
    corr_of_edge = sp.csr_matrix((ec, (la, lb)), shape=(n_ra, n_rb))
    corr = np.asarray(corr_of_edge[ra, cb]).ravel()
    return ua[ra], ub[cb], corr


def _token_rule(exclude_tokens: Any, token_strings: Sequence[str] | None) -> tuple[str, np.ndarray] | None:
    """(reason, excluded token ids) for the exclusion filter, or None when it is off."""
    if exclude_tokens is None:
        return None
    if isinstance(exclude_tokens, str):
        if exclude_tokens != "punctuation":
            raise ValueError(
                "exclude_tokens must be None, 'punctuation', or a collection of token ids or token strings; "
                f"got {exclude_tokens!r}"
            )
        if token_strings is None:
            raise ValueError("exclude_tokens='punctuation' needs token_strings (token id -> string); got None")
        return "punctuation_only", np.flatnonzero(excluded_token_mask(token_strings))
    items = list(exclude_tokens)
    if all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in items):
        ids = np.asarray(items, dtype=np.int64)
        if (ids < 0).any():
            raise ValueError(f"exclude_tokens must hold token ids >= 0; got {ids[ids < 0][:5].tolist()}")
        return "excluded_tokens_only", np.unique(ids)
    if all(isinstance(t, str) for t in items):
        if token_strings is None:
            raise ValueError("exclude_tokens given as strings needs token_strings (token id -> string); got None")
        wanted = set(items)
        ids = np.asarray([i for i, s in enumerate(token_strings) if s in wanted], dtype=np.int64)
        return "excluded_tokens_only", ids
    raise ValueError(
        f"exclude_tokens must be None, 'punctuation', or token ids (int) or token strings (str), not a mix; "
        f"got {describe(exclude_tokens)}"
    )


def _only_excluded(top: np.ndarray, excluded_ids: np.ndarray) -> np.ndarray:
    """Rows of ``top`` (n, k) whose valid (>= 0) token ids are all in ``excluded_ids`` (and not empty)."""
    valid = top >= 0
    inside = np.isin(top, excluded_ids) | ~valid
    return inside.all(axis=1) & valid.any(axis=1)


def _describe_exclude(exclude_tokens: Any) -> Any:
    if exclude_tokens is None or isinstance(exclude_tokens, str):
        return exclude_tokens
    return [t.item() if isinstance(t, np.generic) else t for t in exclude_tokens]
