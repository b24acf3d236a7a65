"""Build (or load from the cache) the embedded default and print its numbers.

    python examples/build_embedded.py                  # full default, cached in ./featgeom_cache
    python examples/build_embedded.py --small          # tiny variant, seconds
    python examples/build_embedded.py --threads 1      # one torch thread (faster on a busy machine)
"""

from __future__ import annotations

import argparse
import logging
import time

from featgeom_tda.sources.embedded import MODEL_NAMES, build_embedded_default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", default="featgeom_cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-stories", type=int, default=None)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    emb = build_embedded_default(
        args.cache_dir, seed=args.seed, n_stories=args.n_stories, small=args.small, progress=not args.no_progress
    )
    wall = time.perf_counter() - start
    r = emb.report
    c = r["corpus"]
    print(f"\ncache: {emb.paths['root']}")
    print(f"corpus: {c['n_stories']} stories, {c['n_words']} words, {c['n_tokens']} tokens "
          f"({c['n_token_rows']} rows of {emb.config.n_ctx}); vocabulary {r['tokenizer']['vocab_size']}")
    print(f"unigram entropy (nats): {r['unigram_entropy']:.3f}\n")

    print("| model | layers | params | steps | s/step | train s | first loss | final train loss | eval loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in MODEL_NAMES:
        m = r["models"][name]
        print(f"| {name} | {m['n_layers']} | {m['n_params']} | {m['steps']} | {m['seconds_per_step']:.3f} | "
              f"{m['train_seconds']:.1f} | {m['first_loss']:.3f} | {m['final_train_loss']:.3f} | {m['eval_loss']:.3f} |")

    print("\n| SAE | hook | width | k | steps | s/step | train s | FVU (eval) | L0 | dead fraction |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in MODEL_NAMES:
        s = r["saes"][name]
        print(f"| {name} | {s['hook_name']} | {s['width']} | {s['k']} | {s['steps']} | {s['seconds_per_step']:.4f} | "
              f"{s['train_seconds']:.1f} | {s['fvu']:.4f} | {s['l0']:.2f} | {s['dead_fraction']:.4f} |")

    print("\n| stage | seconds (when built) |")
    print("|---|---|")
    for stage, sec in r["build_timings"].items():
        print(f"| {stage} | {sec:.1f} |")
    print(f"| total build | {r['build_seconds']:.1f} |")
    print(f"\nthis call: {wall:.1f} s (stages taken from the cache: "
          f"{', '.join(k for k, v in r['cached'].items() if v) or 'none'})")


if __name__ == "__main__":
    main()
