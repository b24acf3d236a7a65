"""Benchmark of correlation matching on synthetic SAE-like activations.

Activations: n_tokens rows, L0 active features per row drawn with Zipf-like (1 / (rank + 20)) frequencies,
non-negative exponential values. B shares half of each row's features with A through a fixed random map
(so there are real correlations to find) and draws the rest afresh.

Every case runs in its own subprocess, so that its peak memory (VmHWM from /proc/self/status, which
counts memory scipy / numba / torch allocate outside Python) is its own. Rows:

- top_correlations fused k=1 / k=5: the default method (compiled sparse kernel), one direction.
- top_correlations scipy k=1: chunked scipy sparse products with a vectorised sparse scan (the fallback
  when numba is missing).
- match_features one-to-one: both directions (k=5) plus the assignment.
- dense torch baseline: z-score dense chunks of A and the dense z-scored B, matmul, row max (float32,
  the original approach); run where it finishes within --dense-max-flops.

max err: the largest |difference| of the best correlation value against an independent float64
computation on sampled A features; agree: fraction of those features whose best B index agrees.
speed-up: dense baseline time / this time, measured in the same run on the same data. CPU: process CPU
time over all threads (less sensitive than wall time to other work on a shared machine).

Usage:
    python benchmarks/matching.py            # sizes up to 100,000 tokens x 32,768 x 32,768
    python benchmarks/matching.py --quick    # small sizes
    python benchmarks/matching.py --sizes 20000x8192x8192,100000x32768x32768 --dense-max-flops 3e12
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

DEFAULT_SIZES = "10000x4096x4096,20000x8192x8192,50000x16384x16384,100000x32768x32768"
QUICK_SIZES = "5000x2048x2048,10000x4096x4096"
CASES = ("fused_k1", "fused_k5", "scipy_k1", "match_one_to_one", "dense_torch")


# ------------------------------------------------------------------------------------------------------
# synthetic data
# ------------------------------------------------------------------------------------------------------
def zipf_columns(rng, n_rows, n_features, l0, perm, extra=16):
    """(n_rows, l0) distinct feature ids per row, Zipf-like frequencies; -1 where a row got fewer."""
    p = 1.0 / (np.arange(n_features) + 20.0)
    p /= p.sum()
    draws = perm[rng.choice(n_features, size=(n_rows, l0 + extra), p=p)]
    return first_unique(draws, l0)


def first_unique(draws, l0):
    """Keep the first l0 distinct values of each row (vectorised); pad with -1."""
    order = np.argsort(draws, axis=1, kind="stable")
    s = np.take_along_axis(draws, order, axis=1)
    dup = np.zeros(s.shape, dtype=bool)
    dup[:, 1:] = s[:, 1:] == s[:, :-1]
    uniq = np.empty_like(dup)
    np.put_along_axis(uniq, order, ~dup, axis=1)
    uniq &= draws >= 0
    keep = uniq & (np.cumsum(uniq, axis=1) <= l0)
    out = np.full((draws.shape[0], l0), -1, dtype=np.int64)
    slot = np.cumsum(keep, axis=1) - 1
    r, c = np.nonzero(keep)
    out[r, slot[r, c]] = draws[r, c]
    return out


def to_csr(cols, values, n_features):
    n_rows = cols.shape[0]
    ok = cols >= 0
    rows = np.broadcast_to(np.arange(n_rows)[:, None], cols.shape)[ok]
    return sp.csr_matrix((values[ok].astype(np.float32), (rows, cols[ok])), shape=(n_rows, n_features))


def synthetic_pair(n_rows, n_a, n_b, *, l0=64, seed=0):
    rng = np.random.default_rng(seed)
    cols_a = zipf_columns(rng, n_rows, n_a, l0, rng.permutation(n_a))
    vals_a = rng.exponential(1.0, cols_a.shape) + 0.01
    a = to_csr(cols_a, vals_a, n_a)
    # B: half of each row's features come from A's through a fixed random map, the rest are fresh
    fmap = rng.integers(0, n_b, n_a)
    fresh = zipf_columns(rng, n_rows, n_b, l0, rng.permutation(n_b))
    shared = rng.uniform(size=cols_a.shape) < 0.5
    cols_b = np.where(shared & (cols_a >= 0), fmap[np.maximum(cols_a, 0)], fresh)
    cols_b = first_unique(np.concatenate([cols_b, fresh], axis=1), l0)
    vals_b = rng.exponential(1.0, cols_b.shape) + 0.01
    b = to_csr(cols_b, vals_b, n_b)
    return a, b


# ------------------------------------------------------------------------------------------------------
# one case (child process)
# ------------------------------------------------------------------------------------------------------
def maxrss_mb() -> float:
    """Peak resident memory of this process in MB.

    Linux: VmHWM of /proc/self/status (reset by exec; ru_maxrss is not, so a child would inherit the
    parent's peak). Elsewhere: getrusage maxrss.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def exact_best(a, b, feats):
    """Independent float64 best correlation (value, index) of the A features ``feats`` against all of B."""
    n = a.shape[0]
    bd = b.astype(np.float64).tocsc()
    mu_b = np.asarray(bd.sum(axis=0)).ravel() / n
    var_b = np.asarray(bd.multiply(bd).sum(axis=0)).ravel() / n - mu_b**2
    live_b = var_b > 1e-12
    bt = bd.T.tocsr()
    values, index = [], []
    for f in feats:
        col = a[:, f].toarray().ravel().astype(np.float64)
        mu, sd = col.mean(), col.std()
        cov = bt @ col / n - mu * mu_b
        corr = np.where(live_b, cov / (sd * np.sqrt(np.where(live_b, var_b, 1.0))), -np.inf)
        j = int(np.argmax(corr))
        values.append(corr[j])
        index.append(j)
    return np.array(values), np.array(index)


def dense_torch_best(a, b, chunk):
    """The original approach: dense z-scored chunks and matmul (float32), best B per A feature."""
    import torch

    n = a.shape[0]

    def zscore(m):
        x = torch.from_numpy(m.toarray())
        x = x - x.mean(dim=0)
        sd = x.std(dim=0, unbiased=False)
        return x / torch.where(sd > 0, sd, torch.ones_like(sd))

    zb = zscore(b)
    best_v = np.empty(a.shape[1], dtype=np.float32)
    best_i = np.empty(a.shape[1], dtype=np.int64)
    a_csc = a.tocsc()
    for s in range(0, a.shape[1], chunk):
        za = zscore(a_csc[:, s : s + chunk])
        c = za.T @ zb / n
        v, i = c.max(dim=1)
        best_v[s : s + chunk] = v.numpy()
        best_i[s : s + chunk] = i.numpy()
    return best_v, best_i


def save_csr(path: Path, name: str, m: sp.csr_matrix) -> None:
    for part in ("data", "indices", "indptr"):
        np.save(path / f"{name}_{part}.npy", getattr(m, part))
    np.save(path / f"{name}_shape.npy", np.array(m.shape))


def load_csr(path: Path, name: str) -> sp.csr_matrix:
    parts = [np.load(path / f"{name}_{part}.npy") for part in ("data", "indices", "indptr")]
    return sp.csr_matrix(tuple(parts), shape=tuple(np.load(path / f"{name}_shape.npy")))


def run_child(spec: dict) -> dict:
    case, path = spec["case"], Path(spec["path"])
    a = load_csr(path, "a")
    b = load_csr(path, "b")
    rss_inputs = maxrss_mb()
    n_jobs = spec["n_jobs"]
    warm = 0.0
    if case == "dense_torch":
        import torch

        torch.set_num_threads(n_jobs)
        t0, c0 = time.perf_counter(), time.process_time()
        best_v, best_i = dense_torch_best(a, b, spec["dense_chunk"])
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    else:
        from featgeom_tda.analyses.matching import match_features, top_correlations

        tiny = sp.random(50, 8, density=0.3, format="csr", random_state=0, dtype=np.float32)
        t0 = time.perf_counter()
        method = "scipy" if case == "scipy_k1" else "fused"
        top_correlations(tiny, tiny, k=5 if case != "scipy_k1" else 1, method=method)  # compile / load kernel
        warm = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        if case == "match_one_to_one":
            m = match_features(a, b, mode="one-to-one", top_k=5, n_jobs=n_jobs)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            best_v = best_i = None
            extra = {"pairs": len(m)}
        else:
            k = 5 if case == "fused_k5" else 1
            r = top_correlations(a, b, k=k, method=method, n_jobs=n_jobs)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            best_i, best_v = r.best()
    peak = maxrss_mb()
    out = {"case": case, "time_s": elapsed, "cpu_s": cpu, "warm_s": warm, "peak_mb": peak, "inputs_mb": rss_inputs}
    if case == "match_one_to_one":
        out.update(extra)
    if best_v is not None:
        rng = np.random.default_rng(0)
        feats = rng.choice(a.shape[1], size=min(40, a.shape[1]), replace=False)
        ev, ei = exact_best(a, b, feats)
        out["max_err"] = float(np.nanmax(np.abs(best_v[feats].astype(np.float64) - ev)))
        out["agree"] = float(np.mean(best_i[feats] == ei))
    return out


# ------------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------------
def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    sizes = []
    for item in text.split(","):
        parts = item.lower().split("x")
        if len(parts) != 3:
            raise SystemExit(f"--sizes items must look like 20000x8192x8192; got {item!r}")
        sizes.append(tuple(int(p) for p in parts))
    return sizes


def run_case(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"case": spec["case"], "error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"case": spec["case"], "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=None, help=f"comma-separated NxFAxFB (default {DEFAULT_SIZES})")
    ap.add_argument("--quick", action="store_true", help=f"small sizes only ({QUICK_SIZES})")
    ap.add_argument("--l0", type=int, default=64, help="active features per token (default 64)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--dense-max-flops", type=float, default=3e13,
                    help="run the dense baseline only where 2 N FA FB is at most this (default 3e13)")
    ap.add_argument("--scipy-max-tokens", type=int, default=100_000, help="largest N for the scipy case")
    ap.add_argument("--n-jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_child(json.loads(args.child))))
        return
    sizes = parse_sizes(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES))
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"--cases: unknown {sorted(unknown)}; choose from {CASES}")

    print(f"machine: {os.cpu_count()} cores; n_jobs={args.n_jobs}; L0={args.l0}\n", flush=True)
    header = ("| tokens | features A x B | case | time (s) | CPU (s) | peak RSS (MB) | inputs RSS (MB) | max err "
              "| agree | speed-up vs dense |")
    rows = []
    for n, fa, fb in sizes:
        with tempfile.TemporaryDirectory(prefix="featgeom_bench_") as tmp:
            t0 = time.perf_counter()
            a, b = synthetic_pair(n, fa, fb, l0=args.l0, seed=args.seed)
            save_csr(Path(tmp), "a", a)
            save_csr(Path(tmp), "b", b)
            print(f"data {n}x{fa}x{fb}: nnz/row A {a.nnz / n:.1f}, B {b.nnz / n:.1f}, "
                  f"top feature frequency {np.bincount(a.indices).max() / n:.2f} "
                  f"({time.perf_counter() - t0:.1f} s to generate)", flush=True)
            del a, b
            results = {}
            for case in cases:
                if case == "dense_torch" and 2.0 * n * fa * fb > args.dense_max_flops:
                    continue
                if case == "scipy_k1" and n > args.scipy_max_tokens:
                    continue
                spec = {"case": case, "path": tmp, "n_jobs": args.n_jobs,
                        "dense_chunk": max(1, (1 << 28) // (4 * fb))}
                res = run_case(spec, args.timeout)
                results[case] = res
                print(f"  {case}: {json.dumps(res)}", flush=True)
            dense_t = results.get("dense_torch", {}).get("time_s")
            for case, res in results.items():
                if "error" in res:
                    rows.append(f"| {n:,} | {fa:,} x {fb:,} | {case} | {res['error']} | | | | | | |")
                    continue
                speed = f"{dense_t / res['time_s']:.0f}x" if dense_t and case != "dense_torch" else ""
                err = f"{res['max_err']:.1e}" if "max_err" in res else ""
                agree = f"{res['agree']:.2f}" if "agree" in res else ""
                rows.append(
                    f"| {n:,} | {fa:,} x {fb:,} | {case} | {res['time_s']:.2f} | {res['cpu_s']:.2f} "
                    f"| {res['peak_mb']:.0f} "
                    f"| {res['inputs_mb']:.0f} | {err} | {agree} | {speed} |"
                )
    print()
    print(header)
    print("|" + "---|" * 10)
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
