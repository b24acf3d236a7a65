"""Crosscoder vs post-hoc SAE matching on synthetic pairs with known shared and private features.

For each shared fraction, draw a synthetic pair (``--features`` true features per model, that fraction
shared), then
- train one acausal TopK crosscoder on both models' activations (``train_crosscoder``), call a latent
  shared when 0.3 <= r <= 0.7 and exclusive when r < 0.1 or r > 0.9 (r = relative decoder norm);
- train one TopK SAE per model and match them (one-to-one, correlation >= 0.5): a pair predicts a shared
  feature, a live unmatched latent an exclusive one;
and print precision / recall of "shared" and of "exclusive" for both methods (a latent corresponds to a
true feature at decoder cosine >= 0.9). The matching's shared precision / recall are checked against
``check_pipeline``'s Scorecard on the same SAEs. "split" counts crosscoder latents that look exclusive but
correspond to a shared feature; "flagged" those of all exclusive-looking latents that latent scaling says
the other model carries (nu >= 0.5), with how many of them lie on a shared feature.

    python examples/crosscoder_truth.py                 # 5 fractions, seed 0, a few minutes on 2 cores
    python examples/crosscoder_truth.py --seeds 0 1 2   # mean over seeds
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def _fmt(v: float) -> str:
    return "  n/a" if v is None or not math.isfinite(v) else f"{v:5.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--features", type=int, default=24, help="true features per model")
    parser.add_argument("--d-a", type=int, default=32)
    parser.add_argument("--d-b", type=int, default=28)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from featgeom_tda.analyses.crosscoder_truth import crosscoder_truth, matching_truth
    from featgeom_tda.pipeline.selfcheck import check_pipeline
    from featgeom_tda.sources.crosscoders import train_crosscoder
    from featgeom_tda.sources.saes import train_sae
    from featgeom_tda.sources.synthetic import make_synthetic_pair

    torch.set_num_threads(args.threads)
    # the self-check's SAE training: rows with replacement, no warm-up, no input scaling, lr 1e-2
    train = dict(steps=args.steps, batch_size=args.batch_size, lr=1e-2, lr_warm_up_steps=0, normalize=False,
                 init_b_dec_to_mean=False, dead_feature_window=100, feature_sampling_window=args.steps + 1,
                 sampling="replacement", progress=False)  # fmt: skip
    keys = ("precision_shared", "recall_shared", "precision_exclusive", "recall_exclusive")
    header = (f"{'shared':>6} | {'crosscoder P/R shared':>21} | {'P/R exclusive':>13} | {'split':>5} | "
              f"{'flagged':>7} | {'FVU a/b':>9} || {'matching P/R shared':>19} | {'P/R exclusive':>13}")  # fmt: skip
    print(header)
    print("-" * len(header))
    start = time.perf_counter()
    for frac in args.fractions:
        n_shared = int(round(frac * args.features))
        n_private = args.features - n_shared
        rows: dict[str, list] = {"cc": [], "m": [], "split": [], "flag": [], "flag_sh": [], "fvu": []}
        for seed in args.seeds:
            pair = make_synthetic_pair(n_shared=n_shared, n_private_a=n_private, n_private_b=n_private, d_a=args.d_a,
                                       d_b=args.d_b, n_samples=args.samples, seed=seed)  # fmt: skip
            k_cc = int(math.ceil(float(pair.firing_probabilities.sum()))) + 2
            cc = train_crosscoder(pair.acts_a, pair.acts_b, width=pair.n_union, k=k_cc, seed=seed, **train)
            sc = crosscoder_truth(cc, pair)
            saes = []
            for offset, name in enumerate(("a", "b")):
                acts = pair.model(name)[0]
                k = min(int(math.ceil(pair.expected_l0(name))) + 2, acts.shape[1])
                width = pair.n_features_a if name == "a" else pair.n_features_b
                saes.append(train_sae(acts, width=width, architecture="topk", k=k, inference=False,
                                      seed=seed + offset, **train))  # fmt: skip
            mt = matching_truth(pair, saes[0], saes[1])
            card = check_pipeline(pair, saes=(saes[0], saes[1]), seed=seed, n_permutations=10, metrics=("cka",))
            for ours, theirs in ((mt.precision_shared, card.precision), (mt.recall_shared, card.recall)):
                assert (math.isnan(ours) and math.isnan(theirs)) or abs(ours - theirs) < 1e-12, (ours, theirs)
            m = cc.metrics(pair.acts_a, pair.acts_b)
            rows["cc"].append([getattr(sc, key) for key in keys])
            rows["m"].append([getattr(mt, key) for key in keys])
            rows["split"].append(sc.counts["n_exclusive_on_shared_feature"])
            rows["flag"].append(sc.counts["n_flagged_by_scaling"])
            rows["flag_sh"].append(sc.counts["n_flagged_on_shared_feature"])
            rows["fvu"].append([m["fvu_a"], m["fvu_b"]])

        def mean(values: list) -> np.ndarray:
            arr = np.asarray(values, dtype=np.float64)
            with np.errstate(invalid="ignore"):
                return np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in arr.T])

        c, mm, fvu = mean(rows["cc"]), mean(rows["m"]), mean(rows["fvu"])
        flagged = f"{np.mean(rows['flag']):.0f} ({np.mean(rows['flag_sh']):.0f})"
        print(f"{frac:6.2f} | {_fmt(c[0]):>10} / {_fmt(c[1])}   | {_fmt(c[2])} / {_fmt(c[3])} | "
              f"{np.mean(rows['split']):5.1f} | {flagged:>7} | {fvu[0]:.2f}/{fvu[1]:.2f} || "
              f"{_fmt(mm[0]):>8} / {_fmt(mm[1])}     | {_fmt(mm[2])} / {_fmt(mm[3])}", flush=True)  # fmt: skip
    print(f"\n{len(args.fractions)} fractions x {len(args.seeds)} seeds, {args.features} features per model, "
          f"d_a={args.d_a}, d_b={args.d_b}, {args.samples} samples, {args.steps} steps: "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
