"""Benchmark of the Ray engine for correlation matching: 1 vs 2 workers on this machine, and a scaling model.

Data: the synthetic SAE-like pairs of ``benchmarks/matching.py`` (L0 = 64 per token, Zipf-like feature
frequencies, B sharing half of each row's features with A). For each size, ``ray_top_correlations`` (k=1, the
fused kernel, one thread per task) runs on a local Ray cluster with 1 and with 2 workers (blocks = workers);
the result is checked identical to the local ``top_correlations``. Columns: wall seconds (after a warm-up call that
loads the package and the compiled kernel in every worker), speed-up over 1
worker, peak RSS of the driver and of each Ray worker, with its idle RSS after the warm-up (a worker's RSS counts the object-store pages of B it
maps, which all workers on a node share), and the scaling model's predictions. "worker CPU s / wall s" is the
CPU time the workers got per second of the run: 2 workers on 2 idle cores give ~2; on this machine other jobs
share the 2 cores, so it says how much parallelism the run actually had (the speed-up cannot exceed it).

Scaling model (one direction of top_correlations, fused kernel; tasks = blocks of A's features)
----------------------------------------------------------------------------------------------
Notation: n tokens, F_a / F_b features, L0 active features per token, N workers, k kept per A feature,
bytes(X) = nnz * 8 + (n + 1) * 8 for a float32/int32 CSR (nnz = n * L0).

- Work: every A feature a walks the B rows of the tokens where a is active, so the total is
  W = sum_tokens L0_a * L0_b = n * L0^2 multiply-adds (random reads of B rows; independent of F), plus an
  O(F_a * k * log) scan of the presorted out-of-support order. With blocks of equal work,
  time(N) = W / (N * r) + t_put + t_merge, where r is the rate of one worker (measured below) and
  t_put = (bytes(A) + bytes(B)) / bandwidth (A and B sent once per node; zero-copy between workers of a node).
  The serial part on the driver is the column statistics of A and B (one numba pass, ~0.3 s per 64M entries)
  and the two puts; each task cuts its own block out of A, so the driver does no per-block work.
- Memory per worker: bytes(A) + bytes(B) (mapped from the object store, shared by the workers of a node) +
  2 * bytes(A) / N (its block as a CSR slice, and as CSC inside the kernel) + F_a / N * k * 12 (its result) +
  threads * F_b * 16 (scratch of the fused kernel). The driver holds A, B and the (F_a, k) result. Checked
  here (table below): 1M x 65k x 65k, 1 worker 1,975 MB over idle measured vs 1,985 predicted; 2 workers
  1,499 vs 1,475. Time: calibrated at 200k tokens, the 1M run took 25 s against 17 s predicted (1 worker; the
  wider B rows miss the cache more).
- 10M tokens x 1M x 1M features, L0 = 64: W = 4.1e10; bytes(A) = bytes(B) = 5.2 GB. With r measured here
  (see the output, ~2e8 multiply-adds/s for one CPU thread), 1 CPU worker needs W / r ~ 3 minutes a
  direction; N workers: ~3/N minutes + broadcast. Memory per worker: 10.4 GB (A and B, once per node) +
  2 * 5.2/N GB (A block) + 12/N MB (k=1) + 16 MB scratch a thread: 20.8 GB at N = 1, 11.7 GB at N = 8,
  10.7 GB at N = 32 (a node's object store holds A and B once, whatever its number of workers).
- On N GPU workers (``device="cuda"``, ``num_gpus_per_task=1``) the torch path runs the sparse products on the
  device and then scans dense (chunk x F_b) float32 blocks: the scan is F_a * F_b / N = 1e12 / N elements per
  direction (at ~5e11 elements/s on one H200-class GPU: ~2 s / N), and device memory is bytes(B) +
  bytes(A) / N + chunk * F_b * 4 bytes (chunk 1024: 4.2 GB), so ~10 GB at N = 8. That GPU rate is an
  assumption, not measured here (no GPU and no Ray on the device machine of this project).
- Not modelled: skew. Blocks are contiguous feature ranges of equal size; with Zipf-like frequencies the work
  per feature varies by orders of magnitude, so the first block (the most frequent features, if A is sorted
  by frequency) can dominate. The synthetic data here permutes the frequency ranks, so equal blocks carry
  about equal work; for sorted features use more blocks than workers (``n_blocks=4 * N``).

Usage:
    python benchmarks/distributed.py                   # 200,000 x 16,384 x 16,384 and 1,000,000 x 65,536 x 65,536
    python benchmarks/distributed.py --sizes 100000x8192x8192
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from matching import synthetic_pair  # noqa: E402

DEFAULT_SIZES = "200000x16384x16384,1000000x65536x65536"
L0 = 64


def csr_bytes(n: int, nnz: int) -> int:
    return nnz * 8 + (n + 1) * 8


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _ray_workers() -> list[int]:
    """Pids of this user's Ray worker processes (their command line starts with ``ray::``)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as fh:
                    if fh.read(5) == b"ray::":
                        pids.append(int(d))
            except OSError:
                pass
    return pids


class PeakSampler:
    """Peak RSS (MB) of the driver and of every Ray worker, sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peaks: dict[int, int] = {}
        self.cpu_first: dict[int, float] = {}
        self.cpu_last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in [os.getpid(), *_ray_workers()]:
                self.peaks[pid] = max(self.peaks.get(pid, 0), _rss_kb(pid))
                cpu = _cpu_s(pid)
                self.cpu_first.setdefault(pid, cpu)
                self.cpu_last[pid] = cpu
            self._stop.wait(0.2)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def worker_cpu_s(self) -> float:
        """CPU seconds the Ray workers used while sampling."""
        return sum(self.cpu_last[p] - self.cpu_first[p] for p in self.cpu_last if p != os.getpid())

    def driver_mb(self) -> float:
        return self.peaks.get(os.getpid(), 0) / 1024

    def worker_mb(self) -> float:
        vals = [v for p, v in self.peaks.items() if p != os.getpid()]
        return max(vals) / 1024 if vals else 0.0


def _warm_up(a, b) -> None:
    """Import the package and compile the kernel in this worker, then stay busy for 2 s (so that the other
    warm-up tasks, submitted at the same time, land on the other worker processes)."""
    from featgeom_tda.analyses.matching import top_correlations

    top_correlations(a, b, k=1, n_jobs=1)
    time.sleep(2.0)


def run_size(n: int, na: int, nb: int, rate: float | None, check: bool) -> tuple[list[dict], float]:
    import ray

    from featgeom_tda.analyses.matching import top_correlations
    from featgeom_tda.distributed import ray_top_correlations

    t0 = time.perf_counter()
    a, b = synthetic_pair(n, na, nb, l0=L0, seed=0)
    gen = time.perf_counter() - t0
    work = float(np.diff(a.indptr).astype(np.float64) @ np.diff(b.indptr).astype(np.float64))
    print(f"\n{n:,} tokens x {na:,} x {nb:,} features: data {gen:.0f} s, nnz {a.nnz:,} / {b.nnz:,}, "
          f"W = {work:.3g} multiply-adds, CSR {csr_bytes(n, a.nnz) / 2**30:.2f} + {csr_bytes(n, b.nnz) / 2**30:.2f} GiB",
          flush=True)
    rows = []
    results = {}
    for workers in (1, 2):
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            # warm-up: every worker imports the package and loads the compiled kernel before the timing. The
            # tasks wait for each other, so that each of the `workers` processes runs one (a quick task could
            # otherwise leave a process cold, and the timed run would pay its imports)
            wa, wb = synthetic_pair(2000, 256, 256, l0=8, seed=1)
            warm_up = ray.remote(num_cpus=1)(_warm_up)
            ray.get([warm_up.remote(wa, wb) for _ in range(workers)])
            base = max([_rss_kb(p) for p in _ray_workers()] or [0]) / 1024
            with PeakSampler() as peaks:
                t = time.perf_counter()
                results[workers] = ray_top_correlations(a, b, k=1, n_blocks=workers)
                wall = time.perf_counter() - t
        finally:
            ray.shutdown()
        rows.append({"workers": workers, "wall": wall, "driver_mb": peaks.driver_mb(), "worker_mb": peaks.worker_mb(),
                     "base_mb": base, "cpu": peaks.worker_cpu_s()})
        print(f"  {workers} worker(s): {wall:.1f} s", flush=True)
    same = np.array_equal(results[1].indices, results[2].indices) and np.array_equal(
        results[1].values, results[2].values, equal_nan=True)
    if check:
        local = top_correlations(a, b, k=1, n_jobs=2)
        same = same and np.array_equal(local.indices, results[2].indices) and np.array_equal(
            local.values, results[2].values, equal_nan=True)
    measured_rate = work / rows[0]["wall"]
    r = rate or measured_rate
    for row in rows:
        w = row["workers"]
        row.update(size=f"{n}x{na}x{nb}", speedup=rows[0]["wall"] / row["wall"], identical=same,
                   pred_s=work / (w * r),
                   pred_worker_mb=(csr_bytes(n, a.nnz) + csr_bytes(n, b.nnz) + 2 * csr_bytes(n, a.nnz) / w + na / w * 12
                                   + nb * 16) / 2**20)
    return rows, measured_rate


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated n_tokens x n_a x n_b")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with the local path")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    table, rate = [], None
    for n, na, nb in sizes:
        rows, measured = run_size(n, na, nb, rate, check=not args.no_check)
        if rate is None:
            rate = measured  # calibrate on the first size, predict the others
            print(f"  calibrated rate r = {rate:.3g} multiply-adds/s per worker", flush=True)
        table += rows
    print("\n| size (tokens x A x B) | workers | wall s | speed-up | worker CPU s / wall s | identical | predicted s | driver peak MB "
          "| worker peak MB (idle) | predicted worker MB over idle |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['size']} | {r['workers']} | {r['wall']:.1f} | {r['speedup']:.2f}x | {r['cpu'] / r['wall']:.2f} | {r['identical']} "
              f"| {r['pred_s']:.1f} | {r['driver_mb']:.0f} | {r['worker_mb']:.0f} ({r['base_mb']:.0f}) | {r['pred_worker_mb']:.0f} |")
    n, f = 10_000_000, 1_000_000
    work = n * L0 * L0
    gb = csr_bytes(n, n * L0) / 1e9
    print(f"\nscaling model, 10M tokens x 1M x 1M features (L0={L0}, k=1, one direction, r = {rate:.3g}/s a worker):")
    print("| workers N | time (CPU workers) | memory a worker |")
    print("|---|---|---|")
    for w in (1, 2, 8, 32, 128):
        mem = 2 * gb + 2 * gb / w + f / w * 12 / 1e9 + f * 16 / 1e9
        print(f"| {w} | {work / (w * rate) / 60:.1f} min | {mem:.1f} GB |")


if __name__ == "__main__":
    main()
