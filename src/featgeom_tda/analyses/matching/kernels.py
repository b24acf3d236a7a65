"""The compiled (numba) fused top-k kernel of correlation matching.

For every A feature the kernel accumulates its row of P = A^T B in a per-thread scratch vector, scores
that support, then walks B's features in increasing mu_b / sd_b for the best out-of-support candidates;
parallel over A's features, memory O(n_threads x n_b). :func:`fused_kernel` compiles it once per process
(or loads it from numba's cache); numba is configured by :func:`featgeom_tda.core._numba.configure_numba`
first.
"""

from __future__ import annotations

import functools
import logging
import types as pytypes

import numpy as np
import scipy.sparse as sp

from featgeom_tda.analyses.matching.stats import column_stats, progress_bar, ratio_order, without_zeros

__all__ = ["fused_kernel", "numba_available", "run_fused"]

logger = logging.getLogger(__name__)

# Features of A per compiled-kernel call (progress granularity) when chunk_size is not given.
_FUSED_CHUNK = 4096


# The kernel's body names _prange, _thread_id, _prefetch and _push; fused_kernel() compiles a copy of it
# whose globals bind them to numba's parallel range, thread id, a prefetch intrinsic and the compiled
# _push. The plain-Python bindings below are never compiled; they keep the module importable without numba.
_prange = range


def _thread_id() -> int:
    return 0


def _prefetch(arr, i) -> None:
    return None


def _no_prefetch(arr, i) -> None:  # pragma: no cover - compiled by numba
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
def numba_available() -> bool:
    """Whether numba can be imported."""
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


def _compiled(numba, *, push, prefetch):
    """The fused kernel compiled with its helper names bound (in a private globals dict) to ``push``,
    ``prefetch`` and numba's prange / thread id."""
    env = dict(_fused_topk.__globals__)
    env.update(_prange=numba.prange, _thread_id=numba.get_thread_id, _prefetch=prefetch, _push=push)
    body = pytypes.FunctionType(_fused_topk.__code__, env, _fused_topk.__name__, _fused_topk.__defaults__)
    body.__qualname__ = _fused_topk.__qualname__
    body.__doc__ = _fused_topk.__doc__
    return numba.njit(parallel=True, cache=True, nogil=True)(body)


@functools.lru_cache(maxsize=None)
def fused_kernel():
    """Compile (or load from numba's cache) the fused kernel; without prefetching if that fails to build."""
    from featgeom_tda.core._numba import configure_numba

    numba = configure_numba()
    push = numba.njit(cache=True, nogil=True)(_push)
    try:
        kernel = _compiled(numba, push=push, prefetch=_prefetch_intrinsic())
        _warm_up(kernel)
    except Exception as exc:  # pragma: no cover - depends on the LLVM build
        logger.warning("building the prefetching kernel failed (%s); using the plain one", exc)
        kernel = _compiled(numba, push=push, prefetch=numba.njit(cache=True, nogil=True)(_no_prefetch))
        _warm_up(kernel)
    return kernel


def _warm_up(kernel) -> None:
    """Compile the kernel for the usual argument types (int32 indices, float32 values) on a tiny input."""
    import numba

    m = sp.random(6, 3, density=0.5, format="csr", dtype=np.float32, random_state=0)
    m.data += 0.5
    a_csc, st = m.tocsc(), column_stats(m)
    order, ratio = ratio_order(st)
    n_threads = numba.config.NUMBA_NUM_THREADS
    kernel(
        np.flatnonzero(~st.dead), a_csc.indptr, a_csc.indices, a_csc.data, m.indptr, m.indices, m.data,
        1.0 / 6, st.mean, st.sd, st.mean, st.sd, ~st.dead, order, ratio, 1,
        np.full((3, 1), np.nan), np.full((3, 1), -1, dtype=np.int64), np.zeros((n_threads, 3)),
        np.zeros((n_threads, 4), dtype=np.int64), np.zeros((n_threads, 1)), np.zeros((n_threads, 1), dtype=np.int64),
    )


def run_fused(ma, mb, sa, sb, live_a, k, chunk_size, n_jobs, progress, values, indices) -> None:
    """Fill rows ``live_a`` of values / indices (n_a, k) with the fused kernel."""
    import numba

    kernel = fused_kernel()
    a_csc = without_zeros(ma).tocsc()
    a_csc.sort_indices()
    b_csr = without_zeros(mb)
    nb = mb.shape[1]
    order, ratio = ratio_order(sb)
    n_threads = numba.config.NUMBA_NUM_THREADS
    acc = np.zeros((n_threads, nb), dtype=np.float64)
    touched = np.zeros((n_threads, nb + 1), dtype=np.int64)
    top_v = np.zeros((n_threads, k), dtype=np.float64)
    top_i = np.zeros((n_threads, k), dtype=np.int64)
    step = chunk_size or _FUSED_CHUNK
    previous = numba.get_num_threads()
    numba.set_num_threads(min(n_jobs, n_threads))
    try:
        with progress_bar(live_a.size, progress, "top correlations") as bar, numba.parallel_chunksize(8):
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
