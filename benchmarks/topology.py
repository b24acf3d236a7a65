"""Benchmark of persistent homology and Mapper on decoder-like rows.

Decoder-like rows are unit vectors in R^d (cosine distance 1 - cos) of two kinds:

- structured (default): 80% of rows share a rank-32 subspace (x = 0.3 z W + noise, z ~ N(0, I_32),
  W ~ N(0, 1)^(32 x d)), so cosines spread over about [-0.3, 0.6]; 20% are split features: small
  perturbations of a random bulk row (cosine ~0.9 to it).
- isotropic: the same split features, but the bulk is isotropic noise: every bulk cosine is within ~0.1
  of 0, like the decoder of an SAE whose features are spread over the whole residual space. All distances are
  nearly equal, the hardest case for Vietoris-Rips (thousands of short H1 bars); the exact H1 is then
  only affordable on a few hundred points, so the table shows it on --n-iso rows and via landmarks.

Every case runs in its own subprocess, so its peak memory (getrusage maxrss: everything the process
allocated, C++ engines and the input data included) is its own. Rows:

- PH small: H0-H1 on --small structured rows in R^512: ``persistence`` (giotto-ph, certified auto
  threshold) against plain ``ripser.ripser(x, metric="cosine")`` on the full filtration.
- PH: H0-H1 on --n-ph structured rows in R^512: ours (engine "auto"); the giotto-ph and the ripser engines
  at the same certified threshold (engine ratios); plain ripser on the full filtration with a time limit (--plain-timeout, "> limit" when
  stopped).
- PH isotropic: --n-iso isotropic rows, ours against plain ripser.
- PH landmarks: --n-big rows (structured and isotropic) in R^512 through max-min landmarks (--landmarks,
  --landmarks-iso); the memory estimate of a run without landmarks is shown (refused at the default
  4 GB budget). Ratio: the ripser engine on the same landmarks at the same threshold.
- Mapper: graph (PCA lens, 10 x 10 cubes, overlap 0.3, DBSCAN cosine, eps chosen) + self-contained HTML of
  --n-big structured rows in R^768. Ratio: kmapper's stock pipeline on the same lens, clusterer and eps
  (``KeplerMapper.map`` with its default GraphNerve, then its ``visualize``, whose page needs network for
  d3); ours includes choosing eps, the baseline is handed it.

ratio = baseline time / our time, both measured in the same run (the machine is shared and noisy).

Usage:
    python benchmarks/topology.py                 # the sizes above
    python benchmarks/topology.py --quick         # small sizes
    python benchmarks/topology.py --cases ph,mapper
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = ("ph_small", "ph", "ph_iso", "ph_landmarks", "mapper")


def decoder_like_rows(n: int, d: int, seed: int = 0, kind: str = "structured") -> np.ndarray:
    """(n, d) float32 unit rows, ``kind`` "structured" or "isotropic" (see module notes)."""
    rng = np.random.default_rng(seed)
    n_fam = n // 5
    bulk = n - n_fam
    x_bulk = rng.standard_normal((bulk, d)).astype(np.float32)
    if kind == "structured":
        z = rng.standard_normal((bulk, 32)).astype(np.float32)
        x_bulk += 0.3 * z @ rng.standard_normal((32, d)).astype(np.float32)
    x_bulk /= np.linalg.norm(x_bulk, axis=1, keepdims=True)
    parents = x_bulk[rng.integers(0, bulk, size=n_fam)]
    x_fam = parents + (0.5 / np.sqrt(d)) * rng.standard_normal((n_fam, d)).astype(np.float32)
    x = np.vstack([x_bulk, x_fam])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[rng.permutation(n)]


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


# ------------------------------------------------------------------------------------------------------
# cases (each in a subprocess)
# ------------------------------------------------------------------------------------------------------
def case_ours_ph(n: int, d: int, n_landmarks: int | None, data: str = "structured") -> dict:
    from featgeom_tda.analyses.topology import persistence

    x = decoder_like_rows(n, d, kind=data)
    t = time.perf_counter()
    dg = persistence(x, maxdim=1, metric="cosine", n_landmarks=n_landmarks, seed=0)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "threshold": dg.threshold, "exact": dg.exact, "bars": dg.n_bars(), "engine": dg.engine,
            "peak_gb": _peak_gb()}


def case_engine(n: int, d: int, n_landmarks: int | None, threshold: float, engine: str,
                data: str = "structured") -> dict:
    from featgeom_tda.analyses.topology import persistence

    x = decoder_like_rows(n, d, kind=data)
    t = time.perf_counter()
    dg = persistence(x, maxdim=1, metric="cosine", n_landmarks=n_landmarks, seed=0, engine=engine,
                     threshold=threshold)
    return {"seconds": time.perf_counter() - t, "bars": dg.n_bars(), "peak_gb": _peak_gb()}


def case_plain_ripser(n: int, d: int, data: str = "structured") -> dict:
    import ripser

    x = decoder_like_rows(n, d, kind=data).astype(np.float64)
    t = time.perf_counter()
    out = ripser.ripser(x, maxdim=1, metric="cosine")
    return {"seconds": time.perf_counter() - t, "bars": {k: int(len(v)) for k, v in enumerate(out["dgms"])},
            "peak_gb": _peak_gb()}


def case_mapper(n: int, d: int, out_dir: str) -> dict:
    from featgeom_tda.analyses.topology import mapper_graph
    from featgeom_tda.viz.mapper_html import save_mapper_html

    x = decoder_like_rows(n, d)
    t = time.perf_counter()
    g = mapper_graph(x, lens="pca", n_cubes=10, overlap=0.3, metric="cosine", seed=0)
    t_graph = time.perf_counter() - t
    t = time.perf_counter()
    path = save_mapper_html(g, Path(out_dir) / "mapper.html", title=f"Mapper of {n} decoder-like rows")
    t_html = time.perf_counter() - t
    s = g.statistics()
    return {"seconds": t_graph + t_html, "graph_seconds": t_graph, "html_seconds": t_html, "eps": g.config["eps"],
            "nodes": s["n_nodes"], "edges": s["n_edges"], "components": s["n_components"],
            "html_mb": path.stat().st_size / 1e6, "peak_gb": _peak_gb()}


def case_kmapper_stock(n: int, d: int, eps: float, out_dir: str) -> dict:
    import kmapper as km
    from sklearn.cluster import DBSCAN

    from featgeom_tda.analyses.projection import pca_projection

    from featgeom_tda.analyses.topology import choose_eps

    x = decoder_like_rows(n, d)
    t = time.perf_counter()
    choose_eps(x, metric="cosine", min_samples=5, quantile=0.9, seed=0)
    t_eps = time.perf_counter() - t  # reported, not counted: the baseline is handed our eps
    t = time.perf_counter()
    lens = pca_projection(x, n_components=2, metric="cosine").coords
    mapper = km.KeplerMapper(verbose=0)
    graph = mapper.map(lens, x, clusterer=DBSCAN(eps=eps, min_samples=5, metric="cosine", algorithm="brute"),
                       cover=km.Cover(n_cubes=10, perc_overlap=0.3))
    t_graph = time.perf_counter() - t
    t = time.perf_counter()
    mapper.visualize(graph, path_html=str(Path(out_dir) / "kmapper.html"), color_values=lens[:, 0],
                     color_function_name="lens 0")
    t_html = time.perf_counter() - t
    return {"seconds": t_graph + t_html, "graph_seconds": t_graph, "html_seconds": t_html, "eps_seconds": t_eps,
            "nodes": len(graph["nodes"]), "peak_gb": _peak_gb()}


def run_case(spec: dict, timeout: float | None = None) -> dict:
    """Run one case in a fresh interpreter; returns its JSON result, or {'timeout': limit}."""
    cmd = [sys.executable, __file__, "--run-case", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    if proc.returncode != 0:
        raise RuntimeError(f"case {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _dispatch(spec: dict) -> dict:
    kind = spec.pop("kind")
    return {
        "ours_ph": case_ours_ph,
        "engine": case_engine,
        "plain_ripser": case_plain_ripser,
        "mapper": case_mapper,
        "kmapper_stock": case_kmapper_stock,
    }[kind](**spec)


# ------------------------------------------------------------------------------------------------------
# table
# ------------------------------------------------------------------------------------------------------
def _fmt_s(r: dict) -> str:
    return f"> {r['timeout']:.0f} s (stopped)" if "timeout" in r else f"{r['seconds']:.1f} s"


def _ratio(base: dict, ours: dict) -> str:
    if "timeout" in base:
        return f"> {base['timeout'] / ours['seconds']:.1f}x"
    return f"{base['seconds'] / ours['seconds']:.2f}x"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-case", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="small sizes")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--n-ph", type=int, default=5000)
    ap.add_argument("--n-big", type=int, default=32768)
    ap.add_argument("--n-iso", type=int, default=400)
    ap.add_argument("--landmarks", type=int, default=1000)
    ap.add_argument("--landmarks-iso", type=int, default=300)
    ap.add_argument("--plain-timeout", type=float, default=300.0)
    ap.add_argument("--ours-timeout", type=float, default=1200.0)
    args = ap.parse_args(argv)
    if args.run_case:
        print(json.dumps(_dispatch(json.loads(args.run_case)), default=float))
        return
    if args.quick:
        args.small, args.n_ph, args.n_iso, args.n_big = 300, 800, 150, 4000
        args.landmarks, args.landmarks_iso, args.plain_timeout = 300, 150, 60.0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown cases {sorted(unknown)}; choose among {CASES}")

    rows = ["| case | rows x d | ours | peak memory | baseline (same run) | baseline time | ratio | notes |",
            "|---|---|---|---|---|---|---|---|"]

    def emit(*lines: str) -> None:
        rows.extend(lines)
        print("\n".join(lines), flush=True)

    def ph_note(r: dict) -> str:
        if "timeout" in r:
            return ""
        thr = "full filtration" if r["threshold"] == float("inf") else f"threshold {r['threshold']:.4g}"
        return f"{thr}, exact {r['exact']}, engine {r['engine']}, bars {r['bars']}"

    def mem(r: dict) -> str:
        return "" if "timeout" in r else f"{r['peak_gb']:.2f} GB"

    if "ph_small" in cases:
        n = args.small
        ours = run_case({"kind": "ours_ph", "n": n, "d": 512, "n_landmarks": None}, timeout=args.ours_timeout)
        plain = run_case({"kind": "plain_ripser", "n": n, "d": 512}, timeout=args.plain_timeout)
        emit(f"| PH H0-H1, structured | {n} x 512 | {_fmt_s(ours)} | {mem(ours)} | plain ripser, full filtration "
             f"| {_fmt_s(plain)} | {_ratio(plain, ours)} | {ph_note(ours)} |")
    if "ph" in cases:
        n = args.n_ph
        ours = run_case({"kind": "ours_ph", "n": n, "d": 512, "n_landmarks": None}, timeout=args.ours_timeout)
        lines = []
        if "timeout" not in ours:
            for engine, name in (("giotto", "giotto-ph"), ("ripser", "ripser")):
                eng = run_case({"kind": "engine", "n": n, "d": 512, "n_landmarks": None, "engine": engine,
                                "threshold": ours["threshold"]}, timeout=args.ours_timeout)
                lines.append(f"| PH H0-H1, structured | {n} x 512 | {_fmt_s(ours)} | {mem(ours)} | {name} engine, "
                             f"same threshold | {_fmt_s(eng)} | {_ratio(eng, ours)} | {ph_note(ours)} |")
        plain = run_case({"kind": "plain_ripser", "n": n, "d": 512}, timeout=args.plain_timeout)
        lines.append(f"| PH H0-H1, structured | {n} x 512 | {_fmt_s(ours)} | {mem(ours)} | plain ripser, full "
                     f"filtration | {_fmt_s(plain)} | {_ratio(plain, ours)} | |")
        emit(*lines)
    if "ph_iso" in cases:
        n = args.n_iso
        ours = run_case({"kind": "ours_ph", "n": n, "d": 512, "n_landmarks": None, "data": "isotropic"},
                        timeout=args.ours_timeout)
        plain = run_case({"kind": "plain_ripser", "n": n, "d": 512, "data": "isotropic"}, timeout=args.plain_timeout)
        emit(f"| PH H0-H1, isotropic | {n} x 512 | {_fmt_s(ours)} | {mem(ours)} | plain ripser, full filtration "
             f"| {_fmt_s(plain)} | {_ratio(plain, ours)} | {ph_note(ours)} |")
    if "ph_landmarks" in cases:
        from featgeom_tda.analyses.topology import estimate_memory_bytes

        n = args.n_big
        full_gb = estimate_memory_bytes(n, maxdim=1) / 1e9
        for data, m in (("structured", args.landmarks), ("isotropic", args.landmarks_iso)):
            ours = run_case({"kind": "ours_ph", "n": n, "d": 512, "n_landmarks": m, "data": data},
                            timeout=args.ours_timeout)
            eng = run_case({"kind": "engine", "n": n, "d": 512, "n_landmarks": m, "data": data, "engine": "ripser",
                            "threshold": ours["threshold"]}, timeout=args.ours_timeout)
            emit(f"| PH H0-H1 via {m} landmarks, {data} | {n} x 512 | {_fmt_s(ours)} | {mem(ours)} | ripser engine, "
                 f"same landmarks + threshold | {_fmt_s(eng)} | {_ratio(eng, ours)} | without landmarks: estimate "
                 f"{full_gb:.1f} GB (refused at 4 GB); {ph_note(ours)} |")
    if "mapper" in cases:
        n = args.n_big
        with tempfile.TemporaryDirectory() as tmp:
            ours = run_case({"kind": "mapper", "n": n, "d": 768, "out_dir": tmp})
            stock = run_case({"kind": "kmapper_stock", "n": n, "d": 768, "eps": ours["eps"], "out_dir": tmp},
                             timeout=args.plain_timeout)
        emit(f"| Mapper + HTML, structured | {n} x 768 | {_fmt_s(ours)} (graph {ours['graph_seconds']:.1f} s, HTML "
             f"{ours['html_seconds']:.1f} s) | {mem(ours)} | kmapper stock (GraphNerve + visualize) | {_fmt_s(stock)} "
             f"| {_ratio(stock, ours)} | {ours['nodes']} nodes, {ours['edges']} edges, {ours['components']} "
             f"components, eps {ours['eps']:.3g} (choosing it: {stock.get('eps_seconds', float('nan')):.1f} s, in ours "
             f"only), HTML {ours['html_mb']:.1f} MB self-contained |")
    print()
    print("\n".join(rows))


if __name__ == "__main__":
    main()
