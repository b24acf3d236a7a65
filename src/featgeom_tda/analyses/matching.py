"""Feature matching by activation correlation.

:func:`top_correlations` finds, for every feature of A, the ``k`` features of B with the highest Pearson
correlation over the shared token rows, exactly (float64 arithmetic) and without ever holding an
(n_features_a x n_features_b) matrix.

For sparse non-negative activations (SAE codes) the correlation of a and b is

    corr(a, b) = (P_ab / N - mu_a mu_b) / (sd_a sd_b),      P = A^T B,

and P is sparse. For every b outside the support of row P[a] the score is ``-(mu_a / sd_a) * (mu_b / sd_b)``,
which is largest for the smallest ratio ``mu_b / sd_b`` among those b. Presorting B by that ratio gives
the best out-of-support candidates after a few steps, so the cost is the sparse product alone. Methods:

- ``"fused"``: a compiled (numba) kernel that accumulates each row of P in a scratch vector, scores its
  support and walks the presorted order, in parallel over A's features; memory O(n_threads x n_b).
- ``"scipy"``: the same computation with scipy sparse products on chunks of A's features (threads over
  chunks) and vectorised numpy top-k; memory bounded by a chunk.
- ``"dense"``: sparse product, then a dense scan of each (chunk x n_b) block; works for any sign.
- ``device=...``: the dense scan with torch on that device (sparse products on the device).

Ties are broken towards the lower index of B. :func:`match_features` turns top correlations in both
directions into a :class:`~featgeom_tda.core.types.FeatureMatching` (many-to-one, mutual or one-to-one) and
applies threshold and token filters, recording what each removed.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._validation import check_choice, check_positive_int, check_same_rows, describe
from featgeom_tda.core.types import FeatureActivations, FeatureMatching, as_activations

__all__ = [
    "TopCorrelations",
    "top_correlations",
    "match_features",
    "MATCH_MODES",
    "CORRELATION_METHODS",
]

logger = logging.getLogger(__name__)

MATCH_MODES = ("one-to-one", "many-to-one", "mutual")
CORRELATION_METHODS = ("auto", "fused", "scipy", "dense")

# Budget of one dense (chunk x n_b) float64 block, in bytes, when chunk_size is not given.
_DENSE_CHUNK_BYTES = 1 << 26
# Budget of multiply-adds of one sparse product chunk (scipy method) when chunk_size is not given.
_SPARSE_CHUNK_FLOPS = 30_000_000
# Features of A per compiled-kernel call (progress granularity) when chunk_size is not given.
_FUSED_CHUNK = 4096


# ------------------------------------------------------------------------------------------------------
# result type
# ------------------------------------------------------------------------------------------------------
@dataclass
class TopCorrelations:
    """The ``k`` most correlated B features of every A feature.

    Attributes:
        values: float32 (n_features_a, k), decreasing along each row; NaN where there is no candidate.
        indices: int64 (n_features_a, k), the B features; -1 where there is no candidate.
        dead_a: bool (n_features_a,), A features with zero variance (their rows are all NaN / -1).
        dead_b: bool (n_features_b,), B features with zero variance (never returned).
        n_rows: number of token rows the correlations are taken over.
        method: the method that computed them ("fused", "scipy", "dense" or "torch:<device>").
    """

    values: np.ndarray
    indices: np.ndarray
    dead_a: np.ndarray
    dead_b: np.ndarray
    n_rows: int
    method: str = ""

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.indices = np.asarray(self.indices, dtype=np.int64)
        self.dead_a = np.asarray(self.dead_a, dtype=bool).ravel()
        self.dead_b = np.asarray(self.dead_b, dtype=bool).ravel()
        if self.values.ndim != 2 or self.values.shape != self.indices.shape:
            raise ValueError(
                f"values and indices must be 2-D of the same shape, got {self.values.shape} and {self.indices.shape}"
            )
        if self.values.shape[0] != self.dead_a.shape[0]:
            raise ValueError(
                f"values has {self.values.shape[0]} rows but dead_a has {self.dead_a.shape[0]} entries"
            )

    @property
    def k(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_features_a(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_features_b(self) -> int:
        return int(self.dead_b.shape[0])

    def best(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of the best B feature of each A feature, shapes (n_features_a,)."""
        return self.indices[:, 0], self.values[:, 0]

    def __repr__(self) -> str:
        return (
            f"TopCorrelations(n_features_a={self.n_features_a}, n_features_b={self.n_features_b}, k={self.k}, "
            f"n_rows={self.n_rows}, dead_a={int(self.dead_a.sum())}, dead_b={int(self.dead_b.sum())}, "
            f"method={self.method!r})"
        )


# ------------------------------------------------------------------------------------------------------
# column statistics
# ------------------------------------------------------------------------------------------------------
@dataclass
class _Stats:
    """float64 column statistics of one activation matrix (population variance)."""

    mean: np.ndarray
    sd: np.ndarray  # 1.0 where dead, so that divisions stay finite
    dead: np.ndarray
    nonnegative: bool


def _column_stats(m: sp.csr_matrix) -> _Stats:
    n, f = m.shape
    data = m.data.astype(np.float64)
    cols = m.indices
    s1 = np.bincount(cols, weights=data, minlength=f)
    s2 = np.bincount(cols, weights=data * data, minlength=f)
    nnz = np.bincount(cols, minlength=f)
    mean = s1 / n
    # sum of squared deviations: over the stored entries, plus the implicit zeros
    dev = np.bincount(cols, weights=(data - mean[cols]) ** 2, minlength=f) + (n - nnz) * mean**2
    var = dev / n
    dead = var <= 1e-12 * np.maximum(s2 / n, np.finfo(np.float64).tiny)
    sd = np.where(dead, 1.0, np.sqrt(var))
    nonneg = bool(m.data.size == 0 or m.data.min() >= 0)
    return _Stats(mean=mean, sd=sd, dead=dead, nonnegative=nonneg)


def _prepared(x: Any, name: str) -> FeatureActivations:
    acts = as_activations(x, name)
    if not np.isfinite(acts.matrix.data).all():
        bad = int((~np.isfinite(acts.matrix.data)).sum())
        raise ValueError(f"{name} contains {bad} NaN or inf values; expected only finite numbers")
    return acts


def _without_zeros(m: sp.csr_matrix) -> sp.csr_matrix:
    if m.data.size and not m.data.all():
        m = m.copy()
        m.eliminate_zeros()
    return m


# ------------------------------------------------------------------------------------------------------
# public entry point
# ------------------------------------------------------------------------------------------------------
def top_correlations(
    acts_a: Any,
    acts_b: Any,
    *,
    k: int = 1,
    chunk_size: int | None = None,
    device: Any = None,
    n_jobs: int | None = None,
    method: Literal["auto", "fused", "scipy", "dense"] = "auto",
    progress: bool = False,
) -> TopCorrelations:
    """For every feature of A, the ``k`` features of B with the highest Pearson correlation.

    Args:
        acts_a: (n_tokens, n_features_a) activations: FeatureActivations, scipy sparse, torch or numpy.
        acts_b: (n_tokens, n_features_b) activations over the same token rows.
        k: number of B features kept per A feature.
        chunk_size: A features per work unit; bounds memory of the "scipy" / "dense" / torch methods
            (default: chosen from the sizes).
        device: run the dense scan with torch on this device (e.g. "cuda"); None keeps to numpy/scipy.
        n_jobs: threads (default: all available cores).
        method: "auto" (fused kernel for non-negative data when numba is importable, else "scipy";
            "dense" when any value is negative), or one of "fused", "scipy", "dense".
        progress: show a progress bar over chunks.

    Returns:
        :class:`TopCorrelations` with values (n_features_a, k) float32 sorted decreasingly (ties: lower B
        index first) and indices (n_features_a, k) int64. Dead (zero-variance) A features get NaN / -1;
        dead B features are never returned; rows are padded with NaN / -1 when B has fewer than k live
        features.
    """
    k = check_positive_int(k, "k")
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    n_jobs = _resolve_jobs(n_jobs)
    check_choice(method, "method", CORRELATION_METHODS)
    a = _prepared(acts_a, "acts_a")
    b = _prepared(acts_b, "acts_b")
    check_same_rows(a.matrix, "acts_a", b.matrix, "acts_b", what="the two activation sets")
    ma, mb = a.matrix, b.matrix
    sa, sb = _column_stats(ma), _column_stats(mb)
    return _top_correlations(
        ma, mb, sa, sb, k=k, chunk_size=chunk_size, device=device, n_jobs=n_jobs, method=method, progress=progress
    )


def _resolve_jobs(n_jobs: int | None) -> int:
    if n_jobs is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not on Linux
            return max(1, os.cpu_count() or 1)
    return check_positive_int(n_jobs, "n_jobs")


def _top_correlations(
    ma: sp.csr_matrix,
    mb: sp.csr_matrix,
    sa: _Stats,
    sb: _Stats,
    *,
    k: int,
    chunk_size: int | None,
    device: Any,
    n_jobs: int,
    method: str,
    progress: bool,
) -> TopCorrelations:
    n = ma.shape[0]
    na, nb = ma.shape[1], mb.shape[1]
    nonneg = sa.nonnegative and sb.nonnegative
    if device is not None:
        if method not in ("auto", "dense"):
            raise ValueError(
                f"method={method!r} cannot run on a device; with device={str(device)!r} the dense scan runs "
                "in torch, so method must be 'auto' or 'dense'"
            )
        chosen = "torch"
    elif method == "auto":
        chosen = ("fused" if _numba_available() else "scipy") if nonneg else "dense"
    else:
        chosen = method
        if chosen in ("fused", "scipy") and not nonneg:
            which = "acts_a" if not sa.nonnegative else "acts_b"
            raise ValueError(
                f"method={chosen!r} needs non-negative activations, but {which} has negative values; "
                "use method='dense' (or 'auto')"
            )

    values = np.full((na, k), np.nan, dtype=np.float64)
    indices = np.full((na, k), -1, dtype=np.int64)
    live_a = np.flatnonzero(~sa.dead)
    if live_a.size and (~sb.dead).any():
        if chosen == "fused":
            _run_fused(ma, mb, sa, sb, live_a, k, chunk_size, n_jobs, progress, values, indices)
        elif chosen == "torch":
            _run_torch(ma, mb, sa, sb, live_a, k, chunk_size, device, progress, values, indices)
        else:
            _run_chunks(ma, mb, sa, sb, live_a, k, chunk_size, n_jobs, progress, values, indices, chosen)
    label = f"torch:{device}" if chosen == "torch" else chosen
    logger.debug("top correlations: %d x %d features over %d rows with %s", na, nb, n, label)
    return TopCorrelations(
        values=values.astype(np.float32), indices=indices, dead_a=sa.dead, dead_b=sb.dead, n_rows=n, method=label
    )


def _progress_bar(total: int, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not progress, desc=desc, unit="feat")


# ------------------------------------------------------------------------------------------------------
# fused compiled kernel (numba)
# ------------------------------------------------------------------------------------------------------
# These names are rebound to numba's parallel range, thread id and a cache-prefetch intrinsic before the
# kernel is compiled; the plain-Python defaults only keep the module importable without numba.
_prange = range


def _thread_id() -> int:
    return 0


def _prefetch(arr, i) -> None:
    return None


def _push(top_v, top_i, m, k, s, b):  # pragma: no cover - compiled by numba
    """Insert (s, b) into the sorted top list of length m <= k (decreasing s, then increasing b)."""
    if m == k:
        ws = top_v[k - 1]
        if s < ws or (s == ws and b > top_i[k - 1]):
            return m
        j = k - 1
    else:
        j = m
        m += 1
    while j > 0 and (top_v[j - 1] < s or (top_v[j - 1] == s and top_i[j - 1] > b)):
        top_v[j] = top_v[j - 1]
        top_i[j] = top_i[j - 1]
        j -= 1
    top_v[j] = s
    top_i[j] = b
    return m


def _fused_topk(
    feats, a_ptr, a_rows, a_vals, b_ptr, b_cols, b_vals, inv_n, mu_a, sd_a, mu_b, sd_b, b_live,
    order, ratio, k, out_v, out_i, acc, touched, top_v, top_i,
):  # pragma: no cover - compiled by numba
    """Top-k correlations of the A features ``feats`` (CSC arrays of A, CSR arrays of B, all values > 0).

    acc, touched, top_v, top_i are per-thread scratch rows; acc must be all zero on entry and is left so.
    """
    ahead = 3  # B rows prefetched ahead of the one being accumulated (their addresses are random)
    for t in _prange(feats.shape[0]):
        tid = _thread_id()
        accr = acc[tid]
        tch = touched[tid]
        tv = top_v[tid]
        ti = top_i[tid]
        a = feats[t]
        nt = 0
        p_end = a_ptr[a + 1]
        # row a of P = A^T B, accumulated in accr (values are positive, so 0 means "not in the support")
        for p in range(a_ptr[a], p_end):
            if p + ahead < p_end:
                r_next = a_rows[p + ahead]
                for q in range(b_ptr[r_next], b_ptr[r_next + 1], 16):
                    _prefetch(b_cols, q)
                    _prefetch(b_vals, q)
            r = a_rows[p]
            va = np.float64(a_vals[p])
            for q in range(b_ptr[r], b_ptr[r + 1]):
                c = b_cols[q]
                old = accr[c]
                tch[nt] = c
                if old == 0.0:
                    nt += 1
                accr[c] = old + va * np.float64(b_vals[q])
        ma = mu_a[a]
        sa = sd_a[a]
        m = 0
        for j in range(nt):
            c = tch[j]
            if b_live[c]:
                s = (accr[c] * inv_n - ma * mu_b[c]) / (sa * sd_b[c])
                m = _push(tv, ti, m, k, s, c)
        # best out-of-support candidates: smallest mu_b / sd_b first (order holds live B features only)
        ra = ma / sa
        found = 0
        for j in range(order.shape[0]):
            if found == k:
                break
            c = order[j]
            if accr[c] == 0.0:
                m = _push(tv, ti, m, k, -ra * ratio[j], c)
                found += 1
        for j in range(nt):
            accr[tch[j]] = 0.0
        for j in range(m):
            out_v[t, j] = tv[j]
            out_i[t, j] = ti[j]


@functools.cache
def _numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _prefetch_intrinsic():
    """numba intrinsic ``prefetch(array, index)``: llvm.prefetch (read, high locality) of array[index]."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx, arr, idx):
        def codegen(context, builder, signature, args):
            ary = context.make_array(arr)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, arr, ary, [args[1]], wraparound=False)
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            name = "llvm.prefetch.p0" if getattr(i8p, "is_opaque", True) else "llvm.prefetch.p0i8"
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
            return context.get_dummy_value()

        return types.void(arr, idx), codegen

    return prefetch


@functools.cache
def _fused_kernel():
    """Compile (or load from numba's cache) the fused kernel; without prefetching if that fails to build."""
    from featgeom_tda.core._numba import configure_numba

    numba = configure_numba()
    global _prange, _thread_id, _prefetch
    _prange = numba.prange
    _thread_id = numba.get_thread_id
    globals()["_push"] = numba.njit(cache=True, nogil=True)(_push)
    try:
        _prefetch = _prefetch_intrinsic()
        kernel = numba.njit(parallel=True, cache=True, nogil=True)(_fused_topk)
        _warm_up(kernel)
    except Exception as exc:  # pragma: no cover - depends on the LLVM build
        logger.warning("building the prefetching kernel failed (%s); using the plain one", exc)
        _prefetch = numba.njit(cache=True, nogil=True)(lambda arr, i: None)
        kernel = numba.njit(parallel=True, cache=True, nogil=True)(_fused_topk)
        _warm_up(kernel)
    return kernel


def _warm_up(kernel) -> None:
    """Compile the kernel for the usual argument types (int32 indices, float32 values) on a tiny input."""
    import numba

    m = sp.random(6, 3, density=0.5, format="csr", dtype=np.float32, random_state=0)
    m.data += 0.5
    a_csc, st = m.tocsc(), _column_stats(m)
    order, ratio = _ratio_order(st)
    n_threads = numba.config.NUMBA_NUM_THREADS
    kernel(
        np.flatnonzero(~st.dead), a_csc.indptr, a_csc.indices, a_csc.data, m.indptr, m.indices, m.data,
        1.0 / 6, st.mean, st.sd, st.mean, st.sd, ~st.dead, order, ratio, 1,
        np.full((3, 1), np.nan), np.full((3, 1), -1, dtype=np.int64), np.zeros((n_threads, 3)),
        np.zeros((n_threads, 4), dtype=np.int64), np.zeros((n_threads, 1)), np.zeros((n_threads, 1), dtype=np.int64),
    )


def _run_fused(ma, mb, sa, sb, live_a, k, chunk_size, n_jobs, progress, values, indices) -> None:
    import numba

    kernel = _fused_kernel()
    a_csc = _without_zeros(ma).tocsc()
    a_csc.sort_indices()
    b_csr = _without_zeros(mb)
    nb = mb.shape[1]
    order, ratio = _ratio_order(sb)
    n_threads = numba.config.NUMBA_NUM_THREADS
    acc = np.zeros((n_threads, nb), dtype=np.float64)
    touched = np.zeros((n_threads, nb + 1), dtype=np.int64)
    top_v = np.zeros((n_threads, k), dtype=np.float64)
    top_i = np.zeros((n_threads, k), dtype=np.int64)
    step = chunk_size or _FUSED_CHUNK
    previous = numba.get_num_threads()
    numba.set_num_threads(min(n_jobs, n_threads))
    try:
        with _progress_bar(live_a.size, progress, "top correlations") as bar, numba.parallel_chunksize(8):
            for start in range(0, live_a.size, step):
                feats = live_a[start : start + step]
                out_v = np.full((feats.size, k), np.nan)
                out_i = np.full((feats.size, k), -1, dtype=np.int64)
                kernel(
                    feats, a_csc.indptr, a_csc.indices, a_csc.data, b_csr.indptr, b_csr.indices, b_csr.data,
                    1.0 / ma.shape[0], sa.mean, sa.sd, sb.mean, sb.sd, ~sb.dead, order, ratio, k,
                    out_v, out_i, acc, touched, top_v, top_i,
                )
                values[feats] = out_v
                indices[feats] = out_i
                bar.update(feats.size)
    finally:
        numba.set_num_threads(previous)


def _ratio_order(sb: _Stats) -> tuple[np.ndarray, np.ndarray]:
    """Live B features sorted by mu_b / sd_b (ties: lower index first) and the sorted ratios."""
    live = np.flatnonzero(~sb.dead)
    r = sb.mean[live] / sb.sd[live]
    o = np.argsort(r, kind="stable")
    return live[o].astype(np.int64), r[o]


# ------------------------------------------------------------------------------------------------------
# chunked scipy products: sparse scan ("scipy") or dense scan ("dense")
# ------------------------------------------------------------------------------------------------------
def _feature_chunks(live_a: np.ndarray, cost: np.ndarray, budget: float, fixed: int | None) -> list[np.ndarray]:
    """Split ``live_a`` into consecutive chunks of ``fixed`` features, or of about ``budget`` total cost."""
    if fixed is not None:
        return [live_a[i : i + fixed] for i in range(0, live_a.size, fixed)]
    csum = np.cumsum(cost[live_a], dtype=np.float64)
    cuts = np.searchsorted(csum, np.arange(budget, csum[-1] if csum.size else 0, budget), side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [live_a.size]]))
    return [live_a[s:e] for s, e in zip(bounds[:-1], bounds[1:]) if e > s]


def _run_chunks(ma, mb, sa, sb, live_a, k, chunk_size, n_jobs, progress, values, indices, how) -> None:
    n = ma.shape[0]
    nb = mb.shape[1]
    a_t = ma.T.tocsr().astype(np.float64)  # (n_a, n_tokens)
    b64 = mb.astype(np.float64)
    if how == "scipy":
        a_t = _without_zeros(a_t)
        b64 = _without_zeros(b64)
        row_len_b = np.diff(b64.indptr)
        cost = np.asarray(a_t @ row_len_b.astype(np.float64)).ravel() + 1.0
        chunks = _feature_chunks(live_a, cost, _SPARSE_CHUNK_FLOPS, chunk_size)
        order, ratio = _ratio_order(sb)
        rank = np.full(nb, order.size, dtype=np.int64)
        rank[order] = np.arange(order.size)
    else:
        fixed = chunk_size or max(1, _DENSE_CHUNK_BYTES // (8 * nb))
        chunks = _feature_chunks(live_a, np.ones(ma.shape[1]), 0, fixed)

    def work(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = a_t[feats] @ b64  # (chunk, n_b) sparse, float64
        if how == "scipy":
            v, i = _sparse_chunk_topk(p, feats, n, sa, sb, k, order, ratio, rank)
        else:
            v, i = _dense_chunk_topk(p.toarray(), feats, n, sa, sb, k)
        return feats, v, i

    with _progress_bar(live_a.size, progress, "top correlations") as bar:
        if n_jobs == 1 or len(chunks) == 1:
            results = map(work, chunks)
            for feats, v, i in results:
                values[feats], indices[feats] = v, i
                bar.update(feats.size)
        else:
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                for feats, v, i in pool.map(work, chunks):
                    values[feats], indices[feats] = v, i
                    bar.update(feats.size)


def _dense_chunk_topk(p: np.ndarray, feats, n, sa, sb, k) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of one dense block of P (chunk x n_b) after the mean correction."""
    s = p
    s *= 1.0 / n
    s -= sa.mean[feats, None] * sb.mean[None, :]
    s /= sa.sd[feats, None] * sb.sd[None, :]
    s[:, sb.dead] = -np.inf
    return _topk_rows_dense(s, k)


def _topk_rows_dense(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a dense float64 matrix: decreasing value, ties to the lower column; -inf -> NaN/-1."""
    rows, cols = s.shape
    kk = min(k, cols)
    part = np.partition(s, cols - kk, axis=1)
    kth = part[:, cols - kk]  # k-th largest value of each row
    above = s > kth[:, None]
    need = kk - above.sum(axis=1)
    tie = s == kth[:, None]
    chosen = above | (tie & (np.cumsum(tie, axis=1) <= need[:, None]))
    r, c = np.nonzero(chosen)
    c = c.reshape(rows, kk)
    v = s[r, c.ravel()].reshape(rows, kk)
    o = np.argsort(-v, axis=1, kind="stable")
    v = np.take_along_axis(v, o, axis=1)
    c = np.take_along_axis(c, o, axis=1).astype(np.int64)
    return _finish_rows(v, c, k)


def _finish_rows(v: np.ndarray, c: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad to k columns and turn -inf candidates (dead B features) into NaN / -1."""
    bad = ~np.isfinite(v)
    v = np.where(bad, np.nan, v)
    c = np.where(bad, -1, c)
    if v.shape[1] < k:
        pad = k - v.shape[1]
        v = np.pad(v, ((0, 0), (0, pad)), constant_values=np.nan)
        c = np.pad(c, ((0, 0), (0, pad)), constant_values=-1)
    return v, c


def _sparse_chunk_topk(p: sp.csr_matrix, feats, n, sa, sb, k, order, ratio, rank) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of one sparse block of P: in-support scores merged with the best out-of-support ones."""
    rows = p.shape[0]
    counts = np.diff(p.indptr)
    row_of = np.repeat(np.arange(rows), counts)
    cols = p.indices.astype(np.int64)
    mu_a, sd_a = sa.mean[feats], sa.sd[feats]
    s = p.data  # float64, owned by this chunk: scored in place
    s *= 1.0 / n
    s -= mu_a[row_of] * sb.mean[cols]
    s /= sd_a[row_of] * sb.sd[cols]
    s[sb.dead[cols]] = -np.inf

    # in-support: k passes of a segmented max, ties to the lower column
    in_v = np.full((rows, k), -np.inf)
    in_c = np.full((rows, k), -1, dtype=np.int64)
    nonempty = np.flatnonzero(counts)
    starts = p.indptr[:-1][nonempty]
    big = np.iinfo(np.int64).max
    for j in range(k):
        if s.size == 0:
            break
        mx = np.maximum.reduceat(s, starts)
        row_max = np.full(rows, -np.inf)
        row_max[nonempty] = mx
        hit = (s == row_max[row_of]) & np.isfinite(s)
        cand = np.where(hit, cols, big)
        mc = np.minimum.reduceat(cand, starts)
        row_col = np.full(rows, big)
        row_col[nonempty] = mc
        pick = hit & (cols == row_col[row_of])
        in_v[row_of[pick], j] = s[pick]
        in_c[row_of[pick], j] = cols[pick]
        s[pick] = -np.inf

    # out-of-support: first k live B features in ratio order that are absent from each row
    out_v, out_c = _absent_in_order(p, row_of, cols, rank, order, ratio, k)
    out_v = -(mu_a / sd_a)[:, None] * out_v

    v = np.concatenate([in_v, out_v], axis=1)
    c = np.concatenate([in_c, out_c], axis=1)
    v = np.where(c < 0, -np.inf, v)
    # sort each row by (-value, column)
    key_c = np.where(c < 0, big, c)
    o = _rowwise_lexsort(-v, key_c)
    v = np.take_along_axis(v, o, axis=1)[:, :k]
    c = np.take_along_axis(c, o, axis=1)[:, :k]
    return _finish_rows(v, c, k)


def _rowwise_lexsort(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Per-row argsort by (primary, secondary), both (rows, m)."""
    o = np.argsort(secondary, axis=1, kind="stable")
    p2 = np.take_along_axis(primary, o, axis=1)
    o2 = np.argsort(p2, axis=1, kind="stable")
    return np.take_along_axis(o, o2, axis=1)


def _absent_in_order(p, row_of, cols, rank, order, ratio, k) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the first k entries of ``order`` not in the row's support: (ratios, features)."""
    rows = p.shape[0]
    n_live = order.size
    out_r = np.full((rows, k), np.inf)
    out_c = np.full((rows, k), -1, dtype=np.int64)
    todo = np.arange(rows)
    width = min(n_live, k + 16)
    rank_of_entry = rank[cols]
    while todo.size:
        local = np.full(rows, -1, dtype=np.int64)
        local[todo] = np.arange(todo.size)
        sel = (rank_of_entry < width) & (local[row_of] >= 0)
        present = np.zeros((todo.size, width), dtype=bool)
        present[local[row_of[sel]], rank_of_entry[sel]] = True
        absent = ~present
        taken = absent & (np.cumsum(absent, axis=1) <= k)
        n_taken = taken.sum(axis=1)
        done = (n_taken >= k) | (width >= n_live)
        if done.any():
            rr, jj = np.nonzero(taken & done[:, None])
            slot = (np.cumsum(taken & done[:, None], axis=1) - 1)[rr, jj]
            out_r[todo[rr], slot] = ratio[jj]
            out_c[todo[rr], slot] = order[jj]
        todo = todo[~done]
        width = min(n_live, width * 4)
    return out_r, out_c


# ------------------------------------------------------------------------------------------------------
# torch (any device)
# ------------------------------------------------------------------------------------------------------
def _run_torch(ma, mb, sa, sb, live_a, k, chunk_size, device, progress, values, indices) -> None:
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was requested but torch.cuda.is_available() is False")
    n, nb = mb.shape
    kk = min(k, nb)
    a_t = ma.T.tocsr()

    def to_dev(m: sp.csr_matrix):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse.*", category=UserWarning)
            return torch.sparse_csr_tensor(
                torch.from_numpy(m.indptr.astype(np.int64)),
                torch.from_numpy(m.indices.astype(np.int64)),
                torch.from_numpy(m.data.astype(np.float64)),
                size=m.shape,
                check_invariants=False,
            ).to(dev)

    b_dev = to_dev(mb)
    mu_a = torch.from_numpy(sa.mean).to(dev)
    sd_a = torch.from_numpy(sa.sd).to(dev)
    mu_b = torch.from_numpy(sb.mean).to(dev)
    sd_b = torch.from_numpy(sb.sd).to(dev)
    dead_b = torch.from_numpy(sb.dead).to(dev)
    step = chunk_size or max(1, (4 * _DENSE_CHUNK_BYTES) // (8 * nb))
    with _progress_bar(live_a.size, progress, "top correlations") as bar:
        for start in range(0, live_a.size, step):
            feats = live_a[start : start + step]
            f_dev = torch.from_numpy(feats).to(dev)
            p = (to_dev(a_t[feats]) @ b_dev).to_dense()
            s = (p / n - mu_a[f_dev, None] * mu_b[None, :]) / (sd_a[f_dev, None] * sd_b[None, :])
            s[:, dead_b] = -torch.inf
            kth = torch.topk(s, kk, dim=1).values[:, kk - 1 : kk]
            above = s > kth
            need = kk - above.sum(dim=1, keepdim=True)
            tie = s == kth
            chosen = above | (tie & (torch.cumsum(tie.to(torch.int64), dim=1) <= need))
            c = torch.nonzero(chosen)[:, 1].reshape(feats.size, kk)
            v = torch.gather(s, 1, c)
            v, o = torch.sort(v, dim=1, descending=True, stable=True)
            c = torch.gather(c, 1, o)
            vv, cc = _finish_rows(v.cpu().numpy(), c.cpu().numpy(), k)
            values[feats], indices[feats] = vv, cc
            bar.update(feats.size)


# ------------------------------------------------------------------------------------------------------
# matching
# ------------------------------------------------------------------------------------------------------
def match_features(
    acts_a: Any,
    acts_b: Any,
    *,
    mode: Literal["one-to-one", "many-to-one", "mutual"] = "one-to-one",
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

    Filters, applied in this order, each recorded in ``filtered`` with the number of pairs it removed:
        threshold: drop pairs with correlation < threshold ("below_threshold").
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
    check_choice(mode, "mode", MATCH_MODES)
    top_k = check_positive_int(top_k, "top_k")
    n_top_tokens = check_positive_int(n_top_tokens, "n_top_tokens")
    if threshold is not None:
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise ValueError(f"threshold must be a number in [-1, 1] or None; got {threshold!r}") from None
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a number in [-1, 1] or None; got {threshold!r}")
    if not isinstance(require_same_token, bool):
        raise ValueError(f"require_same_token must be True or False; got {require_same_token!r}")
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    n_jobs = _resolve_jobs(n_jobs)
    check_choice(method, "method", CORRELATION_METHODS)

    a = _prepared(acts_a, "acts_a")
    b = _prepared(acts_b, "acts_b")
    check_same_rows(a.matrix, "acts_a", b.matrix, "acts_b", what="the two activation sets")
    token_rule = _token_rule(exclude_tokens, token_strings)
    uses_tokens = token_rule is not None or require_same_token
    if uses_tokens:
        for acts, name in ((a, "acts_a"), (b, "acts_b")):
            if (acts.token_ids < 0).any():
                raise ValueError(
                    f"{name} has rows without token ids (-1); token filters need FeatureActivations with token_ids"
                )

    sa, sb = _column_stats(a.matrix), _column_stats(b.matrix)
    k = top_k if mode == "one-to-one" else 1
    common = dict(chunk_size=chunk_size, device=device, n_jobs=n_jobs, method=method, progress=progress)
    ab = _top_correlations(a.matrix, b.matrix, sa, sb, k=k, **common)
    filtered: dict[str, int] = {"dead_a": int(sa.dead.sum()), "dead_b": int(sb.dead.sum())}
    best_b, best_ab = ab.best()
    has_best = best_b >= 0
    if mode == "many-to-one":
        ia = np.flatnonzero(has_best)
        ib = best_b[ia]
        corr = best_ab[ia].astype(np.float64)
    else:
        ba = _top_correlations(b.matrix, a.matrix, sb, sa, k=k, **common)
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

    if threshold is not None:
        keep = corr >= threshold
        filtered["below_threshold"] = int((~keep).sum())
        ia, ib, corr = ia[keep], ib[keep], corr[keep]

    if uses_tokens:
        from featgeom_tda.analyses.interpret import top_token_ids

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
            from featgeom_tda.analyses.interpret import top_tokens_overlap

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
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

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
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
    if ea.size == 0:
        return empty
    # one edge per pair (the two directions agree up to rounding; keep the larger)
    key = ea * nb + eb
    o = np.lexsort((-ec, key))
    key, ea, eb, ec = key[o], ea[o], eb[o], ec[o]
    first = np.ones(key.size, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    ea, eb, ec = ea[first], eb[first], ec[first]
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
        from featgeom_tda.analyses.interpret import excluded_token_mask

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
