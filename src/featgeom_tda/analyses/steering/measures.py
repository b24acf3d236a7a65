"""What an intervention does: log-prob changes, top-k predictions, side effects (KL), task success, sweeps.

An ``intervention`` is a zero-argument callable that returns a context manager, e.g.
``functools.partial(steer, model, hook, direction, alpha=4.0)`` or the object ``steer(...)`` returns;
``None`` means no intervention. Next-token quantities are read at each prompt's last position. Prompts of
different lengths are run in groups of equal length (no padding), so positions mean the same thing in
every prompt of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from featgeom_tda.core._validation import check_choice, check_positive_int
from featgeom_tda.sources.hooks import check_hook_name, check_sae_matches_hook
from ._common import as_index_list, group_by_length, model_device, open_intervention, token_sequences
from .interventions import steer
from .tasks import SteeringTask

__all__ = [
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
]

Intervention = Callable[[], Any]


def _seqs(model: Any, tokens: Any, name: str, tokenizer: Any) -> list[list[int]]:
    if isinstance(tokens, SteeringTask):
        tokens = tokens.prompt_tokens
    return token_sequences(tokens, name, tokenizer=tokenizer, d_vocab=int(model.cfg.d_vocab))


def _run_groups(model: Any, seqs: list[list[int]], intervention: Intervention | None, fn: Callable) -> None:
    """Call ``fn(indices, logits (n_group, pos, vocab))`` for each equal-length group, under the intervention."""
    import torch

    ctx = open_intervention(intervention)
    with torch.no_grad(), ctx:
        for idx, batch in group_by_length(seqs):
            logits = model(torch.as_tensor(batch, device=model_device(model)), return_type="logits")
            fn(idx, logits)


def next_token_logprobs(
    model: Any, tokens: Any, *, intervention: Intervention | None = None, tokenizer: Any = None
) -> np.ndarray:
    """Log-probabilities of the next token after each prompt, float64 (n_prompts, d_vocab)."""
    import torch

    seqs = _seqs(model, tokens, "tokens", tokenizer)
    out = np.empty((len(seqs), int(model.cfg.d_vocab)))

    def keep(idx: np.ndarray, logits: Any) -> None:
        out[idx] = torch.log_softmax(logits[:, -1].double(), dim=-1).cpu().numpy()

    _run_groups(model, seqs, intervention, keep)
    return out


def logprob_change(
    model: Any, tokens: Any, target_token_ids: Any, intervention: Intervention | None, *, tokenizer: Any = None
) -> np.ndarray:
    """``log p_after(target) - log p_before(target)`` of the next token per prompt, float64 (n_prompts,).

    ``target_token_ids``: one id for every prompt or one id per prompt.
    """
    seqs = _seqs(model, tokens, "tokens", tokenizer)
    targets = as_index_list(target_token_ids, len(seqs), "target_token_ids")
    bad = [t for t in targets if not 0 <= t < int(model.cfg.d_vocab)]
    if bad:
        raise ValueError(f"target_token_ids has id {bad[0]} outside the vocabulary [0, {int(model.cfg.d_vocab)})")
    rows = np.arange(len(seqs))
    before = next_token_logprobs(model, seqs)[rows, targets]
    after = next_token_logprobs(model, seqs, intervention=intervention)[rows, targets]
    return after - before


def top_k_next(
    model: Any, tokens: Any, k: int, *, intervention: Intervention | None = None, tokenizer: Any = None
) -> list[list[tuple[int, float]]]:
    """The ``k`` most likely next tokens of each prompt as (token id, probability), most likely first.

    Call it with and without ``intervention`` to compare before and after.
    """
    k = check_positive_int(k, "k")
    if k > int(model.cfg.d_vocab):
        raise ValueError(f"k must be at most the vocabulary size {int(model.cfg.d_vocab)}; got {k}")
    logp = next_token_logprobs(model, tokens, intervention=intervention, tokenizer=tokenizer)
    order = np.argsort(-logp, axis=1, kind="stable")[:, :k]
    return [[(int(t), float(np.exp(row[t]))) for t in top] for row, top in zip(logp, order)]


def kl_side_effects(
    model: Any,
    unrelated_tokens: Any,
    intervention: Intervention | None,
    *,
    positions: str = "last",
    tokenizer: Any = None,
) -> float:
    """Mean KL(before || after) of the next-token distribution on prompts unrelated to the task.

    ``positions="last"``: the prediction after each prompt; ``"all"``: every position of every prompt,
    each weighted equally. KL is in nats, computed in float64.
    """
    import torch

    check_choice(positions, "positions", ("last", "all"))
    seqs = _seqs(model, unrelated_tokens, "unrelated_tokens", tokenizer)
    chunks: dict[str, list[Any]] = {"before": [], "after": []}

    def grab(key: str) -> Callable:
        def keep(idx: np.ndarray, logits: Any) -> None:
            sel = logits[:, -1:] if positions == "last" else logits
            chunks[key].append(torch.log_softmax(sel.double(), dim=-1).reshape(-1, sel.shape[-1]))

        return keep

    _run_groups(model, seqs, None, grab("before"))
    _run_groups(model, seqs, intervention, grab("after"))
    total, count = 0.0, 0
    for p, q in zip(chunks["before"], chunks["after"]):
        kl = (p.exp() * (p - q)).sum(dim=-1)
        total += float(kl.sum())
        count += int(kl.shape[0])
    return total / count


def task_predictions(model: Any, task: SteeringTask, intervention: Intervention | None = None) -> np.ndarray:
    """The most likely next token after each task prompt, int64 (n_prompts,)."""
    if not isinstance(task, SteeringTask):
        raise ValueError(f"task must be a SteeringTask, got {type(task).__name__}")
    logp = next_token_logprobs(model, task.prompt_tokens, intervention=intervention)
    return np.argmax(logp, axis=1).astype(np.int64)


def success_rate(model: Any, task: SteeringTask, intervention: Intervention | None) -> float:
    """Fraction of task prompts whose most likely next token is the desired token."""
    return float(np.mean(task_predictions(model, task, intervention) == task.desired_id))


def baseline_rate(model: Any, task: SteeringTask) -> float:
    """Fraction of task prompts whose unsteered most likely next token is the prompt's baseline token."""
    return float(np.mean(task_predictions(model, task) == np.asarray(task.baseline_ids)))


def restrict_to_baseline(model: Any, task: SteeringTask) -> SteeringTask:
    """The task's prompts on which the unsteered model predicts the baseline token (raise if none)."""
    keep = task_predictions(model, task) == np.asarray(task.baseline_ids)
    if not keep.any():
        raise ValueError(f"task {task.name!r}: the model predicts the baseline token on none of its {len(task)} prompts")
    return task.subset(keep)


def alpha_sweep(
    model: Any,
    task: SteeringTask,
    direction: Any,
    alphas: Sequence[float],
    *,
    hook_name: str,
    positions: Any = None,
    unrelated_tokens: Any = None,
    tokenizer: Any = None,
) -> list[dict[str, Any]]:
    """Steer with ``alpha * direction`` at ``hook_name`` for each alpha; one table row per alpha.

    Row keys: alpha, success_rate, desired_prob (mean next-token probability of the desired token),
    desired_logprob_change and baseline_logprob_change (means over prompts), and kl_unrelated (mean KL on
    ``unrelated_tokens``, None when not given).
    """
    if not isinstance(task, SteeringTask):
        raise ValueError(f"task must be a SteeringTask, got {type(task).__name__}")
    alphas = [float(a) for a in np.atleast_1d(np.asarray(alphas, dtype=np.float64))]
    if not alphas:
        raise ValueError("alphas must hold at least one value")
    rows_idx = np.arange(len(task))
    before = next_token_logprobs(model, task.prompt_tokens)
    out = []
    for alpha in alphas:
        interv = steer(model, hook_name, direction, alpha=alpha, positions=positions)
        after = next_token_logprobs(model, task.prompt_tokens, intervention=interv)
        kl = None
        if unrelated_tokens is not None:
            kl = kl_side_effects(model, unrelated_tokens, interv, tokenizer=tokenizer)
        out.append(
            {
                "alpha": alpha,
                "success_rate": float(np.mean(np.argmax(after, axis=1) == task.desired_id)),
                "desired_prob": float(np.mean(np.exp(after[:, task.desired_id]))),
                "desired_logprob_change": float(np.mean(after[:, task.desired_id] - before[:, task.desired_id])),
                "baseline_logprob_change": float(
                    np.mean(after[rows_idx, task.baseline_ids] - before[rows_idx, task.baseline_ids])
                ),
                "kl_unrelated": kl,
            }
        )
    return out


# ------------------------------------------------------------------------------ feature activation change


@dataclass
class FeatureChange:
    """SAE feature activations at ``hook_name`` before and after an intervention, for the top features.

    ``features`` (top_n,): the features whose activation changed most (max |after - before| over positions);
    ``before`` / ``after`` (pos, top_n): activations averaged over the prompts; ``token_ids`` (pos,): the
    first prompt's tokens, for labels.
    """

    hook_name: str
    features: np.ndarray
    before: np.ndarray
    after: np.ndarray
    token_ids: np.ndarray
    total_abs_change: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def delta(self) -> np.ndarray:
        return self.after - self.before

    def to_dict(self) -> dict[str, Any]:
        return {
            "hook_name": self.hook_name,
            "features": self.features.tolist(),
            "before": self.before.tolist(),
            "after": self.after.tolist(),
            "token_ids": self.token_ids.tolist(),
            "total_abs_change": self.total_abs_change,
            "config": dict(self.config),
        }


def feature_activation_change(
    model: Any,
    hook_name: str,
    sae: Any,
    tokens: Any,
    intervention: Intervention | None,
    *,
    top_n: int = 10,
    tokenizer: Any = None,
) -> FeatureChange:
    """Features of ``sae`` (read at ``hook_name``) whose activations the intervention changes most.

    ``tokens``: prompts of one length. The SAE is read after the intervention's own hooks, so it can sit
    at the intervention's hook (seeing the edited activation) or at any later hook.
    """
    import torch

    check_hook_name(model, hook_name)
    check_sae_matches_hook(model, hook_name, sae)
    top_n = check_positive_int(top_n, "top_n")
    seqs = _seqs(model, tokens, "tokens", tokenizer)
    if len({len(s) for s in seqs}) != 1:
        raise ValueError("tokens must be prompts of one length; feature changes are compared position by position")
    toks = torch.as_tensor(np.asarray(seqs, dtype=np.int64), device=model_device(model))

    def run(interv: Intervention | None) -> np.ndarray:
        seen: dict[str, Any] = {}

        def grab(act: Any, hook: Any) -> None:
            seen["act"] = act.detach()

        with torch.no_grad(), open_intervention(interv):
            model.run_with_hooks(toks, fwd_hooks=[(hook_name, grab)], return_type=None)
            feats = sae.encode(seen["act"]).double().mean(dim=0)
        return feats.cpu().numpy()

    before = run(None)
    after = run(intervention)
    change = np.abs(after - before).max(axis=0)
    top_n = min(top_n, change.shape[0])
    order = np.argsort(-change, kind="stable")[:top_n]
    return FeatureChange(
        hook_name=hook_name,
        features=order.astype(np.int64),
        before=before[:, order],
        after=after[:, order],
        token_ids=np.asarray(seqs[0], dtype=np.int64),
        total_abs_change=float(np.abs(after - before).sum()),
        config={"top_n": top_n, "n_prompts": len(seqs)},
    )


def rows_to_markdown(rows: Sequence[dict[str, Any]], *, digits: int = 3) -> str:
    """A markdown table of dict rows (keys of the first row as columns)."""
    if not rows:
        raise ValueError("rows must hold at least one row")
    cols = list(rows[0])

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
