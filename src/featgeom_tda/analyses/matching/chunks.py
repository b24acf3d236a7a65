"""Chunked products for correlation matching: scipy sparse ("scipy") or dense ("dense") scans, and torch.

Each chunk of A's features gets its rows of P = A^T B from a sparse product; the "scipy" scan scores the
support and takes the best out-of-support candidates from the presorted order of B (non-negative data),
the dense scan materialises the (chunk x n_b) block (any sign). Memory is bounded by a chunk.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from featgeom_tda.analyses.matching.stats import Stats, progress_bar, ratio_order, without_zeros
from featgeom_tda.core._validation import to_torch_device

__all__ = ["run_chunks", "run_torch"]

# Budget of one dense (chunk x n_b) float64 block, in bytes, when chunk_size is not given.
_DENSE_CHUNK_BYTES = 1 << 26
# Budget of multiply-adds of one sparse product chunk (scipy method) when chunk_size is not given.
_SPARSE_CHUNK_FLOPS = 30_000_000


def _feature_chunks(live_a: np.ndarray, cost: np.ndarray, budget: float, fixed: int | None) -> list[np.ndarray]:
    """Split ``live_a`` into consecutive chunks of ``fixed`` features, or of about ``budget`` total cost."""
    if fixed is not None:
        return [live_a[i : i + fixed] for i in range(0, live_a.size, fixed)]
    csum = np.cumsum(cost[live_a], dtype=np.float64)
    cuts = np.searchsorted(csum, np.arange(budget, csum[-1] if csum.size else 0, budget), side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [live_a.size]]))
    return [live_a[s:e] for s, e in zip(bounds[:-1], bounds[1:]) if e > s]


def run_chunks(ma, mb, sa, sb, live_a, k, chunk_size, n_jobs, progress, values, indices, how) -> None:
    """Fill rows ``live_a`` of values / indices (n_a, k) by chunked scipy products (``how``: "scipy" or "dense")."""
    n = ma.shape[0]
    nb = mb.shape[1]
    a_t = ma.T.tocsr().astype(np.float64)  # (n_a, n_tokens)
    b64 = mb.astype(np.float64)
    if how == "scipy":
        a_t = without_zeros(a_t)
        b64 = without_zeros(b64)
        row_len_b = np.diff(b64.indptr)
        cost = np.asarray(a_t @ row_len_b.astype(np.float64)).ravel() + 1.0
        chunks = _feature_chunks(live_a, cost, _SPARSE_CHUNK_FLOPS, chunk_size)
        order, ratio = ratio_order(sb)
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

    with progress_bar(live_a.size, progress, "top correlations") as bar:
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
def run_torch(ma, mb, sa, sb, live_a, k, chunk_size, device, progress, values, indices) -> None:
    """Fill rows ``live_a`` of values / indices (n_a, k) with a dense scan in torch on ``device``."""
    import torch

    dev = to_torch_device(device)
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
    with progress_bar(live_a.size, progress, "top correlations") as bar:
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
