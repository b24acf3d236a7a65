"""Steering with SAE features on the embedded default models, and transfer from one model to the other.

For a pronoun task ("The king smiled, and then" -> "she" instead of "he") and a month task
("March, April, May," -> "July"):

1. choose the SAE feature of model A that best promotes the desired token (direct logit attribution,
   the best few verified by steering),
   on the prompts where model A predicts the baseline token,
2. sweep the steering strength alpha (in units of the mean activation norm at the hook) and report the
   success rate, the log-prob change and the KL side effects on unrelated text,
3. steer model B with the partner of that feature from an activation-correlation matching, next to a
   random feature of B (control) and B's own best feature (what B can reach at all),
4. plot the SAE features before and after steering one prompt.

Usage:
    python examples/steering.py --cache-dir ~/.cache/featgeom --out-dir steering_out [--small]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from featgeom_tda.analyses.matching import match_features
from featgeom_tda.extraction.activations import (
    ActivationSource,
    extract_activations,
    load_activations,
    tokenize_documents,
)
from featgeom_tda.sources.corpus import generate_corpus
from featgeom_tda.sources.embedded import build_embedded_default
from featgeom_tda.analyses.steering import (
    alpha_sweep,
    baseline_rate,
    decoder_direction,
    feature_activation_change,
    find_steering_feature,
    mean_activation_norm,
    month_task,
    partner_of,
    pronoun_task,
    restrict_to_baseline,
    rows_to_markdown,
    steer,
    token_label,
    transfer_comparison,
)
from featgeom_tda.viz.steering import plot_alpha_sweep, plot_before_after

ALPHAS = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]  # in units of the mean activation norm at the hook
HELD_OUT_SEED = 7_001  # unrelated prompts and matching text: a corpus seed the models were not trained on


def unrelated_prompts(tokenizer, n: int = 24, n_tokens: int = 16) -> list[list[int]]:
    """Openings of held-out stories, ``n_tokens`` tokens each (BOS included)."""
    stories = generate_corpus(n_stories=n, seed=HELD_OUT_SEED)
    return [tokenizer.encode(s)[:n_tokens] for s in stories]


def feature_matching(emb, name_a: str, name_b: str, workdir: Path, n_docs: int):
    """Every live feature of A paired with its most correlated feature of B, on held-out text."""
    texts = generate_corpus(n_stories=n_docs, seed=HELD_OUT_SEED + 1)
    n_ctx = min(emb.models[name_a].cfg.n_ctx, emb.models[name_b].cfg.n_ctx)
    data = tokenize_documents(emb.tokenizer, texts, max_length=min(128, n_ctx))
    sources = [
        ActivationSource(name="a", model=emb.models[name_a], hook_name=emb.hooks[name_a], sae=emb.saes[name_a]),
        ActivationSource(name="b", model=emb.models[name_b], hook_name=emb.hooks[name_b], sae=emb.saes[name_b]),
    ]
    extract_activations(sources, data, workdir, progress=False)
    return match_features(load_activations(workdir, "a"), load_activations(workdir, "b"), mode="many-to-one")


def run_task(task, emb, name_a, name_b, matching, unrelated, out_dir: Path) -> dict:
    model_a, hook_a, sae_a = emb.models[name_a], emb.hooks[name_a], emb.saes[name_a]
    model_b, hook_b, sae_b = emb.models[name_b], emb.hooks[name_b], emb.saes[name_b]
    slug = task.name.split()[0]
    n_generated = len(task)
    try:  # keep the prompts on which model A predicts the baseline token
        task = restrict_to_baseline(model_a, task)
        restricted = True
    except ValueError:  # the model never predicts it: keep them all
        restricted = False
    norm_a = mean_activation_norm(model_a, hook_a, task.prompt_tokens)
    chosen = find_steering_feature(model_a, hook_a, sae_a, task, verify_top=8, alpha=[0.5 * norm_a, norm_a, 2 * norm_a])
    feature = chosen.feature
    sweep = alpha_sweep(model_a, task, decoder_direction(sae_a, feature), [a * norm_a for a in ALPHAS],
                        hook_name=hook_a, unrelated_tokens=unrelated)
    for row, a in zip(sweep, ALPHAS):
        row["alpha_units_of_norm"] = a
    plot_alpha_sweep(sweep, out_dir / f"{slug}_sweep.png", title=f"{task.name}: model {name_a}, feature {feature}")

    result = {
        "task": task.name,
        "n_prompts": len(task),
        "n_generated": n_generated,
        "restricted_to_baseline": restricted,
        "baseline_rate": {name_a: baseline_rate(model_a, task), name_b: baseline_rate(model_b, task)},
        "feature_a": feature,
        "feature_choice": chosen.to_dict(),
        "sweep_a": sweep,
    }
    try:
        partner = partner_of(matching, feature)
    except ValueError as exc:
        result["transfer"] = f"no transfer: {exc}"
    else:
        result["partner_b"] = partner
        pair = int(np.flatnonzero(np.asarray(matching.index_a) == feature)[0])
        result["partner_correlation"] = float(np.asarray(matching.correlation)[pair])
        rows = transfer_comparison(
            model_a, sae_a, hook_a, model_b, sae_b, hook_b, feature, partner, task, ALPHAS,
            alpha_units="norm", control_seed=0, unrelated_tokens=unrelated,
        )
        # what B's own best feature reaches: can B be steered this way at all?
        norm_b = mean_activation_norm(model_b, hook_b, task.prompt_tokens)
        own = find_steering_feature(model_b, hook_b, sae_b, task, verify_top=8,
                                    alpha=[0.5 * norm_b, norm_b, 2 * norm_b]).feature
        own_rows = alpha_sweep(model_b, task, decoder_direction(sae_b, own), [a * norm_b for a in ALPHAS],
                               hook_name=hook_b)
        for row, own_row in zip(rows, own_rows):
            row["own_b"] = own
            row["success_b_own"] = own_row["success_rate"]
        result["transfer"] = rows

    prompt = task.prompt_tokens[0]
    best = next((r["alpha"] for r in sweep if r["success_rate"] >= 0.5), sweep[-1]["alpha"])
    change = feature_activation_change(
        model_a, hook_a, sae_a, [prompt], steer(model_a, hook_a, decoder_direction(sae_a, feature), alpha=best),
        top_n=12,
    )
    labels = [token_label(emb.tokenizer, t) for t in prompt]
    result["before_after_plot"] = str(plot_before_after(change, out_dir / f"{slug}_before_after.png", token_labels=labels,
                                                        title=f"{task.prompts[0]!r} steered with feature {feature}"))
    result["top_changed_features"] = change.features.tolist()
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "featgeom")
    parser.add_argument("--out-dir", type=Path, default=Path("steering_out"))
    parser.add_argument("--small", action="store_true", help="use the small embedded default (fast)")
    parser.add_argument("--target-month", default="July")
    parser.add_argument("--matching-docs", type=int, default=400)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    emb = build_embedded_default(args.cache_dir, small=args.small)
    name_a, name_b = "tiny-1L", "tiny-2L"
    matching = getattr(emb, "matching", None)
    if matching is None:
        with tempfile.TemporaryDirectory() as tmp:
            matching = feature_matching(emb, name_a, name_b, Path(tmp), args.matching_docs)
    unrelated = unrelated_prompts(emb.tokenizer)

    tasks = [pronoun_task(emb.tokenizer), month_task(emb.tokenizer, args.target_month)]
    results = [run_task(t, emb, name_a, name_b, matching, unrelated, args.out_dir) for t in tasks]

    for res in results:
        which = (f"those where {name_a} predicts the baseline token" if res["restricted_to_baseline"]
                 else f"{name_a} predicts the baseline token on none")
        print(f"\n## {res['task']} ({res['n_prompts']} of {res['n_generated']} prompts: {which})")
        print(f"unsteered top-1 = baseline token: {res['baseline_rate']}")
        print(f"feature of {name_a}: {res['feature_a']} (score {res['feature_choice']['score']:.3f})\n")
        print(rows_to_markdown(res["sweep_a"]))
        if isinstance(res["transfer"], str):
            print("\n" + res["transfer"])
        else:
            print(f"\ntransfer to {name_b}: partner feature {res['partner_b']} (correlation "
                  f"{res['partner_correlation']:.3f}); alpha in units of each hook's mean norm\n")
            print(rows_to_markdown(res["transfer"]))
        print(f"\nbefore/after plot: {res['before_after_plot']}")
    (args.out_dir / "steering_results.json").write_text(json.dumps(results, indent=2, default=_jsonable))
    return {"results": results}


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x).__name__)


if __name__ == "__main__":
    main()
