"""Choose the SAE feature to steer a task with.

Two scores, both "higher = promotes the desired token over the baseline":

- ``method="logit"`` (direct logit attribution): unit decoder row ``u_f`` against
  ``W_U[:, desired] - mean_prompts W_U[:, baseline]``. The final norm is linearised: with LayerNorm the
  row is centred and ``W_U`` rows are scaled by ``ln_final.w`` (RMSNorm: scaled only); the norm's
  1/scale is the same for every feature, so it does not change the ranking. Later layers are ignored,
  so it is exact for the last residual stream and a first-order guess earlier.
- ``method="activation"``: how much more the feature fires on the desired word than on the baseline
  word. With ``acts`` (FeatureActivations with ``token_ids``, e.g. from the corpus) it is the mean
  activation on rows whose token is the desired token minus the mean on rows whose token is a baseline
  token; without, each task prompt is completed with the desired and with its baseline token and the
  SAE is read at that last position of the two runs.

``verify_top > 0`` re-ranks the best ``verify_top`` candidates by actually steering with ``alpha`` (one
strength or several): best success rate over the alphas first, then the best mean log-prob change of the
desired token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from featgeom_tda.core._validation import check_choice, check_positive_int
from featgeom_tda.sources.hooks import check_sae_matches_hook
from featgeom_tda.core.types import FeatureActivations
from .interventions import decoder_direction, hook_activations
from .measures import alpha_sweep
from .tasks import SteeringTask

__all__ = ["SteeringFeature", "find_steering_feature", "logit_scores", "activation_scores"]


@dataclass
class SteeringFeature:
    """The chosen feature, its score, and the ``ranking`` of the best candidates as (feature, score)."""

    feature: int
    score: float
    method: str
    ranking: list[tuple[int, float]]
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "score": self.score, "method": self.method,
                "ranking": [[int(f), float(s)] for f, s in self.ranking], "config": dict(self.config)}


def logit_scores(model: Any, sae: Any, task: SteeringTask) -> np.ndarray:
    """Direct-logit score of every feature for the task, float64 (d_sae,)."""
    W_dec = sae.W_dec.detach().cpu().double().numpy()
    norms = np.linalg.norm(W_dec, axis=1, keepdims=True)
    U = W_dec / np.where(norms > 0, norms, 1.0)
    W_U = model.W_U.detach().cpu().double().numpy()  # (d_model, d_vocab)
    if U.shape[1] != W_U.shape[0]:
        raise ValueError(f"sae has d_in={U.shape[1]} but the model's residual stream has width {W_U.shape[0]}")
    target = W_U[:, task.desired_id] - W_U[:, task.baseline_ids].mean(axis=1)
    norm_type = getattr(model.cfg, "normalization_type", None)
    ln = getattr(model, "ln_final", None)
    w = getattr(ln, "w", None)
    if w is not None:
        target = target * w.detach().cpu().double().numpy()
    if norm_type in ("LN", "LNPre"):
        U = U - U.mean(axis=1, keepdims=True)
    return U @ target


def activation_scores(
    model: Any, hook_name: str, sae: Any, task: SteeringTask, *, acts: FeatureActivations | None = None
) -> np.ndarray:
    """Activation-contrast score of every feature (desired word minus baseline word), float64 (d_sae,)."""
    import torch

    d_sae = int(sae.cfg.d_sae)
    if acts is not None:
        if not isinstance(acts, FeatureActivations) or bool((np.asarray(acts.token_ids) < 0).all()):
            raise ValueError("acts must be FeatureActivations with known token_ids to score features by activation")
        if acts.n_features != d_sae:
            raise ValueError(f"acts has {acts.n_features} features but the sae has {d_sae}")
        tok = np.asarray(acts.token_ids)
        on = tok == task.desired_id
        off = np.isin(tok, np.unique(task.baseline_ids))
        if not on.any() or not off.any():
            missing = "desired" if not on.any() else "baseline"
            raise ValueError(f"acts has no row whose token is the {missing} token; use more text or method='logit'")
        m = acts.to_scipy()
        return np.asarray(m[on].mean(axis=0)).ravel().astype(np.float64) - np.asarray(
            m[off].mean(axis=0)
        ).ravel().astype(np.float64)
    with_desired = [list(t) + [task.desired_id] for t in task.prompt_tokens]
    with_base = [list(t) + [b] for t, b in zip(task.prompt_tokens, task.baseline_ids)]
    diff = np.zeros(d_sae)
    with torch.no_grad():
        for a, b in zip(hook_activations(model, hook_name, with_desired), hook_activations(model, hook_name, with_base)):
            diff += (sae.encode(a[-1:]) - sae.encode(b[-1:]))[0].double().cpu().numpy()
    return diff / len(task)


def find_steering_feature(
    model: Any,
    hook_name: str,
    sae: Any,
    task: SteeringTask,
    *,
    method: str = "logit",
    acts: FeatureActivations | None = None,
    top_n: int = 10,
    verify_top: int = 0,
    alpha: float | Sequence[float] | None = None,
    positions: Any = None,
) -> SteeringFeature:
    """The SAE feature whose decoder direction best promotes ``task.desired`` (see the module notes)."""
    check_choice(method, "method", ("logit", "activation"))
    if not isinstance(task, SteeringTask):
        raise ValueError(f"task must be a SteeringTask, got {type(task).__name__}")
    check_sae_matches_hook(model, hook_name, sae)
    top_n = check_positive_int(top_n, "top_n")
    if method == "logit":
        if acts is not None:
            raise ValueError("acts is only used with method='activation'")
        scores = logit_scores(model, sae, task)
    else:
        scores = activation_scores(model, hook_name, sae, task, acts=acts)
    order = np.argsort(-scores, kind="stable")
    ranking = [(int(f), float(scores[f])) for f in order[: max(top_n, verify_top)]]
    config: dict[str, Any] = {"hook_name": hook_name, "top_n": top_n, "verify_top": verify_top}
    if verify_top:
        check_positive_int(verify_top, "verify_top")
        if alpha is None:
            raise ValueError("alpha is required when verify_top > 0 (the steering strength(s) used to verify)")
        alphas = [float(a) for a in np.atleast_1d(np.asarray(alpha, dtype=np.float64))]
        measured = []
        for f, s in ranking[:verify_top]:
            rows = alpha_sweep(model, task, decoder_direction(sae, f), alphas, hook_name=hook_name, positions=positions)
            best_success = max(r["success_rate"] for r in rows)
            best_change = max(r["desired_logprob_change"] for r in rows)
            measured.append((best_success, best_change, f, s))
        measured.sort(key=lambda r: (-r[0], -r[1]))
        config.update(alpha=alphas, verified=[{"feature": f, "success_rate": sr, "desired_logprob_change": lp}
                                              for sr, lp, f, _ in measured])
        best = measured[0]
        return SteeringFeature(feature=best[2], score=best[3], method=method, ranking=ranking[:top_n], config=config)
    return SteeringFeature(feature=ranking[0][0], score=ranking[0][1], method=method, ranking=ranking[:top_n],
                           config=config)
