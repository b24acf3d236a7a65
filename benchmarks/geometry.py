"""Benchmark of the geometry permutation tests: fast paths against the naive recompute-everything loop.

Data: paired synthetic "decoder rows". A latent matrix L (n x d) with column scales sigma_j; X = L R_x and
Y = (L + 0.5 E) R_y with random orthogonal R_x, R_y and Gaussian noise E. Two spectra:

- ``decay``: sigma_j = j^-1 (a power-law spectrum; SVCCA at variance 0.99 keeps ~60-90 components);
- ``flat``: sigma_j = 1 (isotropic; SVCCA keeps almost all d components, the worst case).

The SVCCA permutation cost is one (k_x x n) @ (n x k_y) product and a k_x x k_y SVD per permutation, so it
grows with the kept components; the ``kept`` column says how many there were.

Every case runs in its own subprocess so that its peak memory (resource.getrusage maxrss, the whole
process, read from /proc/self/status VmHWM) is its own; ``base+data MB`` is the process before the metric
runs (Python, numpy and the two input matrices). Timings include setup (SVDs, RDMs, ranking); ``fast cpu s`` is
the process CPU time, a steadier number than wall time on a shared machine. The naive loop recomputes the metric from scratch for every permutation; where
running it for every permutation would take too long it runs ``naive perms`` of them and its time is scaled
to the full count (marked ``~``). speed-up = naive time / fast time for the same number of permutations.
The fast and naive nulls are compared on the permutations both ran (``max diff``, the largest absolute difference).

BLAS threads are limited with threadpoolctl (default 1: the machine is shared, and oversubscribed LAPACK
threads were several times slower than one thread here).

Usage:
    python benchmarks/geometry.py             # SVCCA at 8,000 x 768 (1,000 perms), RSA at 8,000 (100 perms)
    python benchmarks/geometry.py --quick     # small sizes, a smoke run
    python benchmarks/geometry.py --threads 2 --flat-perms 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def paired_data(n: int, d: int, kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sigma = np.arange(1, d + 1, dtype=np.float64) ** -1.0 if kind == "decay" else np.ones(d)
    L = rng.standard_normal((n, d)) * sigma
    Y = L + 0.5 * sigma * rng.standard_normal((n, d))
    Rx = np.linalg.qr(rng.standard_normal((d, d)))[0]
    Ry = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return L @ Rx, Y @ Ry


def peak_mb() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it is not inherited from the parent)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_case(spec: dict) -> dict:
    """Run one case in this process and return its measurements."""
    from threadpoolctl import threadpool_limits

    from featgeom_tda.analyses.geometry import permutation_test, rsa, svcca_result

    threadpool_limits(spec["threads"])
    base = peak_mb()
    X, Y = paired_data(spec["n"], spec["d"], spec["spectrum"])
    metric, options = spec["metric"], spec["options"]
    out: dict = {"base_mb": base, "data_mb": (X.nbytes + Y.nbytes) / 2**20}
    wall, cpu = time.perf_counter(), time.process_time()
    if spec["mode"] == "single":
        out["score"] = rsa(X, Y, **options)
    else:
        res = permutation_test(metric, X, Y, n_permutations=spec["perms"], seed=0, method=spec["mode"], **options)
        out["null"] = res.null.tolist()
        out["score"] = res.score
        out["p_value"] = res.p_value
    out["time"] = time.perf_counter() - wall
    out["cpu"] = time.process_time() - cpu
    out["peak_mb"] = peak_mb()
    if metric == "svcca" and spec["mode"] == "fast":
        r = svcca_result(X, Y, **options)
        out["kept"] = f"{r.n_components_x}/{r.n_components_y}"
    return out


def in_subprocess(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--case", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def row(label: str, metric: str, n: int, d: int, kind: str, perms: int, naive_perms: int, options: dict,
        threads: int, target: str) -> dict:
    base = {"metric": metric, "n": n, "d": d, "spectrum": kind, "options": options, "threads": threads}
    fast = in_subprocess({**base, "mode": "fast", "perms": perms})
    naive = in_subprocess({**base, "mode": "naive", "perms": naive_perms})
    scale = perms / naive_perms
    naive_time = naive["time"] * scale
    diff = float(np.max(np.abs(np.asarray(fast["null"][:naive_perms]) - np.asarray(naive["null"]))))
    return {
        "case": label,
        "n": n,
        "d": d,
        "kept": fast.get("kept", ""),
        "perms": perms,
        "fast s": f"{fast['time']:.2f}",
        "fast cpu s": f"{fast['cpu']:.2f}",
        "peak MB": f"{fast['peak_mb']:.0f}",
        "base+data MB": f"{fast['base_mb'] + fast['data_mb']:.0f}",
        "naive perms": naive_perms,
        "naive s": f"{'~' if scale != 1 else ''}{naive_time:.1f}",
        "naive peak MB": f"{naive['peak_mb']:.0f}",
        "speed-up": f"{'~' if scale != 1 else ''}{naive_time / fast['time']:.1f}x",
        "max diff": f"{diff:.1e}",
        "p": f"{fast['p_value']:.4f}",
        "target": target,
    }


def single_row(label: str, n: int, d: int, options: dict, threads: int, target: str) -> dict:
    res = in_subprocess({"metric": "rsa", "n": n, "d": d, "spectrum": "decay", "options": options,
                         "threads": threads, "mode": "single", "perms": 0})
    return {"case": label, "n": n, "d": d, "kept": "", "perms": 0, "fast s": f"{res['time']:.1f}",
            "fast cpu s": f"{res['cpu']:.1f}", "peak MB": f"{res['peak_mb']:.0f}",
            "base+data MB": f"{res['base_mb'] + res['data_mb']:.0f}", "naive perms": "",
            "naive s": "", "naive peak MB": "", "speed-up": "", "max diff": "", "p": "", "target": target}


def markdown(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads per case (default 1)")
    parser.add_argument("--flat-perms", type=int, default=30,
                        help="permutations for the flat-spectrum SVCCA case (1000 takes ~10 min here)")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return

    t = args.threads
    svcca_opts = {"variance": 0.99}
    rsa_opts = {"rdm": "correlation", "compare": "spearman"}
    rows = []
    if args.quick:
        n, d, n_mid, d_mid = 1000, 64, 500, 32
        rows.append(row("svcca decay", "svcca", n, d, "decay", 200, 10, svcca_opts, t, ""))
        rows.append(row("rsa spearman", "rsa", n, d, "decay", 20, 2, rsa_opts, t, ""))
        rows.append(row("rsa spearman", "rsa", n_mid, d_mid, "decay", 20, 20, rsa_opts, t, ""))
    else:
        n, d = 8000, 768
        rows.append(row("svcca decay", "svcca", n, d, "decay", 1000, 5, svcca_opts, t, "<= 10 s"))
        rows.append(row("svcca flat", "svcca", n, d, "flat", args.flat_perms, 3, svcca_opts, t, "(worst case)"))
        rows.append(row("svcca decay", "svcca", 2000, 128, "decay", 1000, 100, svcca_opts, t, ""))
        rows.append(row("rsa spearman", "rsa", n, d, "decay", 100, 2, rsa_opts, t, "<= 60 s, <= 2 GB"))
        rows.append(row("rsa spearman", "rsa", 2000, d, "decay", 100, 100, rsa_opts, t, ""))
        rows.append(single_row("rsa single call", 10000, d, rsa_opts, t, "memory-bounded"))
    print(markdown(rows))
    print(f"\nBLAS threads: {t}. '~': naive time scaled from 'naive perms' permutations to 'perms'.")


if __name__ == "__main__":
    main()
