"""Stage ``steering``: steer model A with its best feature per task and model B with that feature's partner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import Layer, main_pair
from featgeom_tda.pipeline.recipe import SteeringSpec
from featgeom_tda.results import SteeringResult, SteeringRow, SteeringTaskResult


def run(ctx: RunContext) -> SteeringResult:
    spec = ctx.recipe.steering
    if not spec.enabled:
        return SteeringResult(skipped="steering is switched off in the recipe")
    from featgeom_tda.analyses.matching import top_correlations

    a, b = main_pair(ctx.recipe)
    result = SteeringResult()
    if spec.steer == "b":  # the main pair's second layer is steered with its own feature, the first with the partner
        a, b = b, a
        result.notes.append(f"steering.steer is 'b': {a.label} is steered with its own feature, {b.label} with its "
                            "partner (columns A / B below in that order)")
    acts = ctx.activations()
    # B's partner of an A feature: its most correlated B feature over the compared tokens (many-to-one)
    partners = top_correlations(acts[a.key], acts[b.key], k=1)
    unrelated = {layer.model: _unrelated_prompts(ctx, layer.model) for layer in (a, b)}
    for name in spec.tasks:
        _run_task(ctx, name, a, b, partners, unrelated, result)
    return result


def _tokenizer(ctx: RunContext, model: str) -> Any:
    """The model's own tokenizer (the two differ when the rows are aligned units)."""
    return ctx.sources.tokenizers.get(model, ctx.sources.tokenizer)


def _unrelated_prompts(ctx: RunContext, model: str) -> list:
    spec = ctx.recipe.steering
    tok = _tokenizer(ctx, model)
    return [tok.encode(t)[: spec.unrelated_prompt_tokens] for t in ctx.sources.texts[: spec.n_unrelated_prompts]]


def make_task(name: str, tokenizer: Any, spec: SteeringSpec) -> Any:
    """The steering task ``name`` with the recipe's words."""
    from featgeom_tda.analyses.steering import month_task, number_task, pronoun_task

    if name == "pronoun":
        return pronoun_task(tokenizer, desired=spec.pronoun_desired, baseline=spec.pronoun_baseline)
    if name == "month":
        return month_task(tokenizer, spec.month)
    return number_task(tokenizer, spec.number)


def _run_task(ctx: RunContext, name: str, a: Layer, b: Layer, partners: Any, unrelated: dict, result: SteeringResult) -> None:
    from featgeom_tda.analyses.steering import mean_activation_norm, restrict_to_baseline, transfer_comparison

    spec, src = ctx.recipe.steering, ctx.sources
    model_a, sae_a = src.models[a.model], src.saes[a.key]
    try:
        task = make_task(name, _tokenizer(ctx, a.model), spec)
        task_b = make_task(name, _tokenizer(ctx, b.model), spec) if ctx.rows_are_units() else None
    except ValueError as exc:  # e.g. a task word that is not one token of a model's tokenizer
        result.notes.append(f"{name}: not run: {exc}")
        return
    try:  # keep the prompts where model A predicts the baseline token, so success means a change
        task = restrict_to_baseline(model_a, task)
    except ValueError as exc:
        result.notes.append(f"{name}: {exc}; all prompts kept")
    if task_b is not None:  # the tokenizers differ: B reads the same prompts in its own tokens
        try:
            task_b = restrict_to_baseline(src.models[b.model], task_b)
        except ValueError as exc:
            result.notes.append(f"{name} (model B): {exc}; all prompts kept")
    norm_a = mean_activation_norm(model_a, a.hook, task.prompt_tokens)
    live = ~partners.dead_a & (partners.indices[:, 0] >= 0)
    feature = best_live_feature(model_a, a.hook, sae_a, task, live=live,
                                alphas=[float(x) * norm_a for x in spec.alphas if x > 0], n_verify=spec.n_candidates)
    partner, corr = int(partners.indices[feature, 0]), float(partners.values[feature, 0])
    if partner < 0:
        result.notes.append(f"{name}: feature {feature} of A is dead on the compared tokens; no partner in B")
        return
    rows = transfer_comparison(
        model_a, sae_a, a.hook, src.models[b.model], src.saes[b.key], b.hook, feature, partner, task, spec.alphas,
        alpha_units="norm", control_seed=ctx.recipe.seed, unrelated_tokens=unrelated[a.model], task_b=task_b,
        unrelated_tokens_b=unrelated[b.model],
    )
    _task_figures(ctx, name, task, a, feature, rows, float(spec.alphas[-1]) * norm_a, result)
    result.tasks.append(SteeringTaskResult(
        name=name, desired=task.desired, n_prompts=len(task), feature_a=feature, feature_b=partner,
        partner_correlation=corr, alpha_units="mean activation norm at the hook",
        rows=[SteeringRow(alpha=r["alpha"], success_rate_a=r["success_a"], success_rate_b=r["success_b"],
                          success_rate_b_random_feature=r.get("success_b_control"), kl_a=r.get("kl_a"), kl_b=r.get("kl_b"))
              for r in rows],
    ))


def _task_figures(ctx: RunContext, name: str, task: Any, a: Layer, feature: int, rows: list, alpha_top: float,
                  result: SteeringResult) -> None:
    from featgeom_tda.analyses.steering import decoder_direction, feature_activation_change, steer
    from featgeom_tda.viz.steering import plot_alpha_sweep, plot_before_after

    out: Path = ctx.stage_dir("steering")
    model_a, sae_a = ctx.sources.models[a.model], ctx.sources.saes[a.key]
    sweep_png = out / f"{name}_sweep.png"
    plot_alpha_sweep(
        [{"alpha": r["alpha"], "success_rate": r["success_a"], "kl_unrelated": r.get("kl_a")} for r in rows],
        sweep_png, title=f"{task.name}: {a.label}, feature {feature}",
    )
    change = feature_activation_change(
        model_a, a.hook, sae_a, task.prompt_tokens[0],
        lambda: steer(model_a, a.hook, decoder_direction(sae_a, feature), alpha=alpha_top),
        top_n=ctx.recipe.steering.n_changed_features,
    )
    change_png = out / f"{name}_before_after.png"
    plot_before_after(change, change_png)
    result.figures[f"{name}: success rate and side effects vs alpha (model A)"] = str(sweep_png)
    result.figures[f"{name}: SAE features most changed by steering (model A, one prompt)"] = str(change_png)


def best_live_feature(model: Any, hook: str, sae: Any, task: Any, *, live: np.ndarray, alphas: Any,
                      n_verify: int = 8) -> int:
    """Among features that fire on the compared tokens (so they have a partner), the one whose decoder
    direction best promotes the desired token: rank by direct logit attribution, then keep the candidate with
    the highest steering success at its best alpha of ``alphas`` (a real model's late layers flip to the desired
    token at a small alpha and break at a large one; ties: the higher logit score)."""
    from featgeom_tda.analyses.steering import decoder_direction, logit_scores, steer, success_rate

    alphas = [float(x) for x in np.atleast_1d(alphas)]
    if not alphas:
        raise ValueError("alphas must hold at least one positive steering strength")
    scores = np.where(live, logit_scores(model, sae, task), -np.inf)
    candidates = [int(f) for f in np.argsort(-scores, kind="stable")[:n_verify] if np.isfinite(scores[f])]
    if not candidates:
        raise ValueError("no live SAE feature to steer with: every feature is dead on the compared tokens")
    rates = [max(success_rate(model, task, lambda f=f, x=x: steer(model, hook, decoder_direction(sae, f), alpha=x))
                 for x in alphas)
             for f in candidates]
    return candidates[int(np.argmax(rates))]
