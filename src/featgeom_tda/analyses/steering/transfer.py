"""Cross-model transfer: does the matched partner of a feature that steers model A also steer model B?"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from featgeom_tda.core.types import FeatureMatching
from .interventions import decoder_direction, hook_activations
from .measures import alpha_sweep
from .tasks import SteeringTask

__all__ = ["partner_of", "mean_activation_norm", "transfer_comparison"]


def partner_of(matching: FeatureMatching, feature_a: int) -> int:
    """The feature of model B that ``matching`` pairs with ``feature_a`` of model A."""
    hits = np.flatnonzero(np.asarray(matching.index_a) == int(feature_a))
    if hits.size == 0:
        raise ValueError(f"feature_a {feature_a} has no partner in the matching ({len(matching)} pairs)")
    return int(np.asarray(matching.index_b)[hits[0]])


def mean_activation_norm(model: Any, hook_name: str, tokens: Any, *, skip_first: bool = True) -> float:
    """Mean L2 norm of the activation at ``hook_name`` over all positions (skipping position 0 if asked)."""
    norms = []
    for act in hook_activations(model, hook_name, tokens):
        a = act[1:] if skip_first and act.shape[0] > 1 else act
        norms.append(a.double().norm(dim=-1).cpu().numpy())
    return float(np.mean(np.concatenate(norms)))


def transfer_comparison(
    model_a: Any,
    sae_a: Any,
    hook_a: str,
    model_b: Any,
    sae_b: Any,
    hook_b: str,
    feature_a: int,
    partner_b: int,
    task: SteeringTask,
    alphas: Sequence[float],
    *,
    task_b: SteeringTask | None = None,
    positions: Any = None,
    alpha_units: str = "absolute",
    control_seed: int | None = None,
    unrelated_tokens: Any = None,
    unrelated_tokens_b: Any = None,
) -> list[dict[str, Any]]:
    """Steer A with ``feature_a`` and B with its partner ``partner_b`` at the same alphas; rows side by side.

    Directions are unit decoder rows. ``alpha_units="norm"`` multiplies alpha by each model's mean
    activation norm at its hook on the task prompts (models of different scales get comparable pushes).
    ``control_seed``: also steer B with a random other feature of B (chosen with this seed), a baseline
    for how often any push of that size reaches the desired token. ``task_b``: B's version of the task
    when the models' tokenizers differ (default: ``task``), with ``unrelated_tokens_b`` the unrelated prompts
    in B's tokens (default: ``unrelated_tokens``).
    """
    if alpha_units not in ("absolute", "norm"):
        raise ValueError(f"alpha_units must be 'absolute' or 'norm'; got {alpha_units!r}")
    task_b = task if task_b is None else task_b
    unrelated_b = unrelated_tokens if unrelated_tokens_b is None else unrelated_tokens_b
    alphas = [float(a) for a in np.atleast_1d(np.asarray(alphas, dtype=np.float64))]
    scale_a = scale_b = 1.0
    if alpha_units == "norm":
        scale_a = mean_activation_norm(model_a, hook_a, task.prompt_tokens)
        scale_b = mean_activation_norm(model_b, hook_b, task_b.prompt_tokens)
    dir_a = decoder_direction(sae_a, feature_a)
    dir_b = decoder_direction(sae_b, partner_b)
    rows_a = alpha_sweep(model_a, task, dir_a, [a * scale_a for a in alphas], hook_name=hook_a,
                         positions=positions, unrelated_tokens=unrelated_tokens)
    rows_b = alpha_sweep(model_b, task_b, dir_b, [a * scale_b for a in alphas], hook_name=hook_b,
                         positions=positions, unrelated_tokens=unrelated_b)
    rows_c = None
    control = None
    if control_seed is not None:
        rng = np.random.default_rng(control_seed)
        others = np.setdiff1d(np.arange(int(sae_b.cfg.d_sae)), [partner_b])
        control = int(rng.choice(others))
        rows_c = alpha_sweep(model_b, task_b, decoder_direction(sae_b, control), [a * scale_b for a in alphas],
                             hook_name=hook_b, positions=positions)
    out = []
    for i, alpha in enumerate(alphas):
        row: dict[str, Any] = {
            "alpha": alpha,
            "feature_a": int(feature_a),
            "success_a": rows_a[i]["success_rate"],
            "partner_b": int(partner_b),
            "success_b": rows_b[i]["success_rate"],
            "logprob_change_a": rows_a[i]["desired_logprob_change"],
            "logprob_change_b": rows_b[i]["desired_logprob_change"],
        }
        if unrelated_tokens is not None:
            row["kl_a"] = rows_a[i]["kl_unrelated"]
        if unrelated_b is not None:
            row["kl_b"] = rows_b[i]["kl_unrelated"]
        if rows_c is not None:
            row["control_b"] = control
            row["success_b_control"] = rows_c[i]["success_rate"]
        out.append(row)
    return out
