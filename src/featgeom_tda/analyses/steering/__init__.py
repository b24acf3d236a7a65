"""Steering, ablation and patching with SAE features on TransformerLens models, and their measurements.

- interventions: ``steer``, ``ablate``, ``patch`` (context managers; hooks always removed), and the
  pitfall demonstration ``naive_clamp_with_error``.
- measures: log-prob change, top-k next tokens, KL side effects, success rate, alpha sweeps, feature
  activation change.
- tasks: pronoun / month / number steering tasks built from the concept groups.
- selection: ``find_steering_feature``; transfer: ``transfer_comparison``. Figures: :mod:`featgeom_tda.viz.steering`.
"""

from __future__ import annotations

from ._common import encode_text, token_label, word_token_id
from .interventions import (
    HookIntervention,
    ablate,
    decoder_direction,
    feature_means,
    hook_activations,
    mean_difference,
    naive_clamp_with_error,
    patch,
    steer,
)
from .measures import (
    FeatureChange,
    alpha_sweep,
    baseline_rate,
    feature_activation_change,
    kl_side_effects,
    logprob_change,
    next_token_logprobs,
    restrict_to_baseline,
    rows_to_markdown,
    success_rate,
    task_predictions,
    top_k_next,
)
from .selection import SteeringFeature, activation_scores, find_steering_feature, logit_scores
from .tasks import SteeringTask, make_task, month_task, number_task, pronoun_task
from .transfer import mean_activation_norm, partner_of, transfer_comparison

__all__ = [
    "HookIntervention",
    "steer",
    "ablate",
    "patch",
    "naive_clamp_with_error",
    "mean_difference",
    "decoder_direction",
    "feature_means",
    "hook_activations",
    "next_token_logprobs",
    "logprob_change",
    "top_k_next",
    "kl_side_effects",
    "task_predictions",
    "success_rate",
    "baseline_rate",
    "restrict_to_baseline",
    "alpha_sweep",
    "FeatureChange",
    "feature_activation_change",
    "rows_to_markdown",
    "SteeringTask",
    "make_task",
    "pronoun_task",
    "month_task",
    "number_task",
    "SteeringFeature",
    "find_steering_feature",
    "logit_scores",
    "activation_scores",
    "partner_of",
    "mean_activation_norm",
    "transfer_comparison",
    "encode_text",
    "word_token_id",
    "token_label",
]
