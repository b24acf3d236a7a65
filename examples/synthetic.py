"""Self-check of matching and geometry on two synthetic models with known shared features.

Two synthetic "models" share a known set of sparse features (same firing rows, own rotation, own
magnitudes) and each has private ones. SAEs are trained on both, their latents matched by activation
correlation, and the matching and the similarity of shared vs private subspaces scored against the truth.
Prints one scorecard, then the sweeps over the shared fraction and the SAE width.

Usage:
    python examples/synthetic.py [--n-features 40] [--shared-fraction 0.75] [--no-sweep]
"""

from __future__ import annotations

import argparse

import torch

from featgeom_tda.pipeline.selfcheck_sweep import run_synthetic_check


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-features", type=int, default=40, help="true features per model")
    parser.add_argument("--shared-fraction", type=float, default=0.75)
    parser.add_argument("--d-a", type=int, default=24)
    parser.add_argument("--d-b", type=int, default=20)
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--width-multiple", type=float, default=1.0)
    parser.add_argument("--architecture", choices=("topk", "standard"), default="topk")
    parser.add_argument("--threshold", type=float, default=0.5, help="correlation threshold of the matching")
    parser.add_argument("--n-permutations", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sweep", action="store_true", help="only the single scorecard")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # the SAEs are tiny; extra threads only contend
    print(
        run_synthetic_check(
            n_features=args.n_features,
            shared_fraction=args.shared_fraction,
            d_a=args.d_a,
            d_b=args.d_b,
            n_samples=args.n_samples,
            width_multiple=args.width_multiple,
            architecture=args.architecture,
            threshold=args.threshold,
            n_permutations=args.n_permutations,
            steps=args.steps,
            seed=args.seed,
            sweep=not args.no_sweep,
            progress=args.progress,
        )
    )


if __name__ == "__main__":
    main()
