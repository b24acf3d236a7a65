"""Sparse autoencoders with sae_lens: collect hook activations, train, save/load, measure.

:func:`train_sae` drives sae_lens' ``SAETrainer`` on any (n, d_in) tensor or iterator of [batch, d_in]
tensors and returns an inference ``sae_lens.SAE`` whose decoder rows have unit norm and whose config
metadata records the hook it was trained on (so ``sources.hooks.sae_hook_name(sae)`` returns it).
SAEs are saved in the sae_lens format (``cfg.json`` + ``sae_weights.safetensors``).
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from featgeom_tda.core._validation import check_choice, check_positive_int, describe
from featgeom_tda.sources.hooks import check_hook_name, hook_width

__all__ = [
    "default_width",
    "collect_hook_activations",
    "collect_activations_at",
    "sae_ce_loss",
    "default_token_mask",
    "train_sae",
    "save_sae",
    "load_sae",
    "load_pretrained_sae",
    "sae_metrics",
]

log = logging.getLogger(__name__)

_ARCHITECTURES = ("topk", "standard")
_SAMPLINGS = ("epochs", "replacement")


def default_width(d_model: int, multiple: int = 8) -> int:
    """SAE width as ``multiple`` x ``d_model`` (an expansion factor)."""
    return check_positive_int(d_model, "d_model") * check_positive_int(multiple, "multiple")


# --------------------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------------------
def _as_tokens(tokens: Any) -> Any:
    import torch

    from featgeom_tda.sources.models import as_token_array

    if isinstance(tokens, torch.Tensor):
        tokens = tokens.detach().cpu().numpy()
    return torch.from_numpy(np.ascontiguousarray(as_token_array(tokens)))


def default_token_mask(model: Any, tokens: Any, *, keep_bos: bool = False) -> np.ndarray:
    """Boolean (n_rows, seq) mask of the positions whose activations count.

    Padding is dropped (when the tokenizer's pad id is not also its BOS/EOS id), and so is BOS unless
    ``keep_bos`` (its residual stream is an outlier that no feature of the text explains).
    """
    arr = _as_tokens(tokens).numpy()
    keep = np.ones(arr.shape, dtype=bool)
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return keep
    bos, eos, pad = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    if pad is not None and pad not in (bos, eos):
        keep &= arr != pad
    if not keep_bos and bos is not None:
        keep &= arr != bos
    return keep


def _stop_layer(model: Any, hook_name: str) -> int | None:
    m = re.match(r"blocks\.(\d+)\.", hook_name)
    if m is None:
        return None
    layer = int(m.group(1)) + 1
    return layer if layer < model.cfg.n_layers else None


def collect_hook_activations(
    model: Any,
    tokens: Any,
    hook_name: str,
    *,
    batch_size: int = 32,
    mask: Any = None,
    keep_bos: bool = False,
    progress: bool = False,
) -> Any:
    """Activations at ``hook_name`` for the kept positions: float32 tensor (n_kept, d).

    Args:
        model: a HookedTransformer.
        tokens: int (n_rows, seq) token ids.
        hook_name: a TransformerLens hook name of the model (else ValueError listing the valid ones).
        mask: bool (n_rows, seq), True = keep; default :func:`default_token_mask` (no padding, no BOS).
        keep_bos: with the default mask, keep the BOS positions.
    Rows are kept in order: row-major over (row, position) of ``mask``.
    """
    return collect_activations_at(
        model, tokens, [hook_name], batch_size=batch_size, mask=mask, keep_bos=keep_bos, progress=progress
    )[hook_name]


def collect_activations_at(
    model: Any,
    tokens: Any,
    hook_names: list[str],
    *,
    batch_size: int = 32,
    mask: Any = None,
    keep_bos: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """:func:`collect_hook_activations` for several hooks in one forward pass: hook -> (n_kept, d) float32."""
    import torch
    from tqdm.auto import tqdm

    if isinstance(hook_names, str) or not hook_names:
        raise ValueError(f"hook_names must be a non-empty list of hook names, got {hook_names!r}")
    for hook_name in hook_names:
        check_hook_name(model, hook_name)
    batch_size = check_positive_int(batch_size, "batch_size")
    toks = _as_tokens(tokens)
    if mask is None:
        keep = torch.from_numpy(default_token_mask(model, toks, keep_bos=keep_bos))
    else:
        from featgeom_tda.core._validation import to_numpy

        m = to_numpy(mask, "mask")
        if m.shape != tuple(toks.shape):
            raise ValueError(f"mask has shape {m.shape} but tokens has shape {tuple(toks.shape)}; they must match")
        keep = torch.from_numpy(m.astype(bool))
    if toks.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"tokens rows have {toks.shape[1]} positions but the model's n_ctx is {model.cfg.n_ctx}")
    device = next(model.parameters()).device
    stops = [_stop_layer(model, h) for h in hook_names]
    stop = None if None in stops else max(stops)
    out: dict[str, list[Any]] = {h: [] for h in hook_names}
    seen: dict[str, Any] = {}

    def grab(tensor: Any, hook: Any) -> None:
        seen[hook.name] = tensor.detach()

    label = hook_names[0] if len(hook_names) == 1 else f"{len(hook_names)} hooks"
    with torch.no_grad():
        for start in tqdm(range(0, toks.shape[0], batch_size), desc=f"collect {label}",
                          disable=not progress, leave=False):
            batch = toks[start:start + batch_size].to(device)
            model.run_with_hooks(batch, fwd_hooks=[(h, grab) for h in hook_names], return_type=None,
                                 stop_at_layer=stop)
            rows = keep[start:start + batch_size].to(device)
            for hook_name in hook_names:
                acts = seen.pop(hook_name)
                if acts.ndim < 3 or tuple(acts.shape[:2]) != tuple(batch.shape):
                    raise ValueError(
                        f"hook {hook_name!r} gives a tensor of shape {tuple(acts.shape)}, not (batch, pos, ...); "
                        "use a hook with one vector per token"
                    )
                acts = acts.reshape(acts.shape[0], acts.shape[1], -1)
                out[hook_name].append(acts[rows].float().cpu())
    return {h: torch.cat(parts, dim=0) for h, parts in out.items()}


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------
def _batches_from_tensor(acts: Any, batch_size: int, seed: int) -> Iterator[Any]:
    import torch

    rng = np.random.default_rng(seed)
    n = acts.shape[0]
    while True:
        order = torch.from_numpy(rng.permutation(n))
        for start in range(0, n - batch_size + 1, batch_size):
            yield acts[order[start:start + batch_size]]


def _batches_with_replacement(acts: Any, batch_size: int, seed: int) -> Iterator[Any]:
    """Rows drawn uniformly with replacement, from a seeded torch generator of their own."""
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    while True:
        yield acts[torch.randint(0, acts.shape[0], (batch_size,), generator=generator)]


def _checked_batches(batches: Iterator[Any], d_in: int) -> Iterator[Any]:
    import torch

    for i, b in enumerate(batches):
        if not isinstance(b, torch.Tensor) or b.ndim != 2 or b.shape[1] != d_in:
            raise ValueError(f"activation batch {i} must be a [batch, d_in={d_in}] tensor; got {describe(b)}")
        yield b.float()


def train_sae(
    activations: Any,
    *,
    d_in: int | None = None,
    width: int | None = None,
    architecture: str = "topk",
    k: int = 16,
    l1_coefficient: float = 5.0,
    hook_name: str | None = None,
    model_name: str | None = None,
    model: Any = None,
    steps: int | None = None,
    training_tokens: int | None = None,
    batch_size: int = 1024,
    lr: float = 3e-3,
    lr_end: float | None = None,
    lr_warm_up_steps: int | None = None,
    normalize: bool = True,
    init_b_dec_to_mean: bool = True,
    dead_feature_window: int | None = None,
    feature_sampling_window: int | None = None,
    sampling: Literal["epochs", "replacement"] = "epochs",
    inference: bool = True,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> Any:
    """Train an SAE with sae_lens' ``SAETrainer``; return an inference ``sae_lens.SAE``.

    Args:
        activations: float tensor / array (n, d_in), or an iterator of [batch, d_in] tensors.
        d_in: input width (default: the last dimension of ``activations``; required for an iterator).
        width: number of features (``d_sae``; default ``default_width(d_in, 8)``).
        architecture: "topk" (exactly ``k`` active features per token) or "standard" (ReLU + L1 with
            ``l1_coefficient``).
        hook_name, model_name: recorded in the SAE's config metadata.
        model: optional HookedTransformer; if given, ``hook_name`` must exist in it and have width ``d_in``.
        steps / training_tokens: training length (one of them; default 2,000 steps).
        batch_size, lr, lr_end (default lr / 10), lr_warm_up_steps (default 5% of steps): Adam with
            cosine annealing, as in sae_lens.
        normalize: scale inputs to mean norm sqrt(d_in) while training; the scale is folded into the
            weights at the end, so the returned SAE takes raw activations.
        init_b_dec_to_mean: start the decoder bias at the mean activation (fewer dead features).
        dead_feature_window: steps without firing after which a feature counts as dead (TopK's auxiliary
            loss then trains it on the residual); default steps / 10, between 10 and 1000.
        feature_sampling_window: steps per window of firing statistics; default steps / 2, between 10 and
            2000 (a window longer than the run never resets them).
        sampling: for a tensor, "epochs" (shuffled passes without replacement) or "replacement" (rows drawn
            uniformly with replacement; the tensor may then have fewer rows than ``batch_size``).
        inference: return an inference ``sae_lens.SAE`` (unit decoder rows); False returns the trained
            training SAE itself, in eval mode.
        seed: fixes the initial weights and the batch order; torch's global generator is left as it was.
    """
    import torch
    from sae_lens import SAE
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer
    from tqdm.auto import tqdm

    check_choice(architecture, "architecture", _ARCHITECTURES)
    check_choice(sampling, "sampling", _SAMPLINGS)
    batch_size = check_positive_int(batch_size, "batch_size")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number; got {lr!r}")
    if lr_end is not None and not (isinstance(lr_end, (int, float)) and 0 <= lr_end <= lr):
        raise ValueError(f"lr_end must be a number in [0, lr={lr}]; got {lr_end!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer; got {seed!r}")

    tensor = None
    if isinstance(activations, (torch.Tensor, np.ndarray)):
        tensor = torch.as_tensor(activations).float()
        if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
            raise ValueError(f"activations must be a non-empty 2-D (n, d_in) tensor; got {describe(activations)}")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError("activations contain NaN or inf values; expected only finite numbers")
        if d_in is not None and d_in != tensor.shape[1]:
            raise ValueError(f"d_in={d_in} but activations have {tensor.shape[1]} columns")
        d_in = int(tensor.shape[1])
        if sampling == "epochs" and tensor.shape[0] < batch_size:
            raise ValueError(f"activations have {tensor.shape[0]} rows, fewer than batch_size={batch_size}")
    elif isinstance(activations, Iterable) and not isinstance(activations, (str, bytes)):
        if d_in is None:
            raise ValueError("d_in is required when activations is an iterator of batches")
    else:
        raise ValueError(f"activations must be a (n, d_in) tensor or an iterator of batches; got {describe(activations)}")
    d_in = check_positive_int(d_in, "d_in")
    width = default_width(d_in, 8) if width is None else check_positive_int(width, "width")
    if architecture == "topk":
        k = check_positive_int(k, "k")
        if k > width:
            raise ValueError(f"k={k} must be at most width={width}")
    elif not (isinstance(l1_coefficient, (int, float)) and l1_coefficient > 0):
        raise ValueError(f"l1_coefficient must be a positive number; got {l1_coefficient!r}")
    if steps is not None and training_tokens is not None:
        raise ValueError("give steps or training_tokens, not both")
    if training_tokens is not None:
        steps = max(1, check_positive_int(training_tokens, "training_tokens") // batch_size)
    steps = 2000 if steps is None else check_positive_int(steps, "steps")
    if model is not None:
        if hook_name is None:
            raise ValueError("hook_name is required when model is given")
        check_hook_name(model, hook_name)
        width_at_hook = hook_width(model, hook_name)
        if width_at_hook != d_in:
            raise ValueError(f"hook {hook_name!r} has width {width_at_hook} but the activations have d_in={d_in}")
        model_name = model_name or getattr(model.cfg, "model_name", None)

    if tensor is None:
        source = iter(activations)
    elif sampling == "replacement":
        source = _batches_with_replacement(tensor, batch_size, int(seed))
    else:
        source = _batches_from_tensor(tensor, batch_size, int(seed))
    batches = _checked_batches(source, d_in)

    meta = SAEMetadata(hook_name=hook_name, model_name=model_name, featgeom_seed=int(seed))
    common = dict(d_in=d_in, d_sae=width, device=device, normalize_activations="none", metadata=meta)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if architecture == "topk":
            sae = TopKTrainingSAE(TopKTrainingSAEConfig(k=k, **common))
        else:
            sae = StandardTrainingSAE(StandardTrainingSAEConfig(l1_coefficient=float(l1_coefficient), **common))

        warm = (max(1, steps // 20) if lr_warm_up_steps is None
                else check_positive_int(lr_warm_up_steps, "lr_warm_up_steps", minimum=0))
        sampling_window = (max(10, min(2000, steps // 2)) if feature_sampling_window is None
                           else check_positive_int(feature_sampling_window, "feature_sampling_window"))
        trainer_cfg = SAETrainerConfig(
            total_training_samples=steps * batch_size,
            train_batch_size_samples=batch_size,
            lr=float(lr),
            lr_end=float(lr) / 10 if lr_end is None else float(lr_end),
            lr_scheduler_name="cosineannealing",
            lr_warm_up_steps=min(warm, max(0, steps - 1)),
            device=device,
            dead_feature_window=(max(10, min(1000, steps // 10)) if dead_feature_window is None
                                 else check_positive_int(dead_feature_window, "dead_feature_window")),
            feature_sampling_window=sampling_window,
            logger=LoggingConfig(log_to_wandb=False),
        )
        trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=batches)
        if normalize:
            trainer.activation_scaler.scaling_factor = _norm_scaling_factor(tensor, batches, d_in)
        if init_b_dec_to_mean:
            mean = _mean_activation(tensor, batches)
            with torch.no_grad():
                sae.b_dec.data.copy_((mean * (trainer.activation_scaler.scaling_factor or 1.0)).to(sae.b_dec))
        bar = tqdm(total=steps, desc=f"train {architecture} SAE ({width})", disable=not progress, leave=False)
        sae.to(device)
        while trainer.n_training_samples < trainer_cfg.total_training_samples:
            trainer.maybe_reset_sparsity()
            out = trainer.step(next(batches))
            trainer.n_training_steps += 1
            bar.update(1)
            if trainer.n_training_steps % 50 == 0:
                mse = float(out.losses["mse_loss"].detach())
                if not math.isfinite(mse):
                    raise ValueError(f"SAE training diverged at step {trainer.n_training_steps}; lower lr (got {lr})")
                bar.set_postfix(mse=f"{mse:.4g}")
        bar.close()
        if trainer.activation_scaler.scaling_factor is not None:
            sae.fold_activation_norm_scaling_factor(trainer.activation_scaler.scaling_factor)
            trainer.activation_scaler.scaling_factor = None
        trainer.set_final_sae_metadata()

    if not inference:
        sae.eval()
        return sae
    with tempfile.TemporaryDirectory() as tmp:
        sae.save_inference_model(tmp)
        inference = SAE.load_from_disk(tmp, device=device)
    if architecture == "standard" or inference.cfg.rescale_acts_by_decoder_norm:
        inference.fold_W_dec_norm()  # unit-norm decoder rows; outputs and reconstructions unchanged
    inference.cfg.metadata.featgeom_training_steps = steps
    inference.cfg.metadata.featgeom_batch_size = batch_size
    inference.eval()
    return inference


def _mean_activation(tensor: Any, batches: Iterator[Any]) -> Any:
    """Mean activation vector (from the tensor, or the first 20 batches)."""
    import torch

    if tensor is not None:
        return tensor[: min(tensor.shape[0], 200_000)].mean(dim=0)
    return torch.cat([next(batches) for _ in range(20)]).mean(dim=0)


def _norm_scaling_factor(tensor: Any, batches: Iterator[Any], d_in: int) -> float:
    """sqrt(d_in) / mean L2 norm of the activations (from the tensor, or the first 20 batches)."""
    import torch

    if tensor is not None:
        sample = tensor[: min(tensor.shape[0], 200_000)]
        mean_norm = float(sample.norm(dim=-1).mean())
    else:
        norms = [next(batches).norm(dim=-1) for _ in range(20)]
        mean_norm = float(torch.cat(norms).mean())
    if not mean_norm > 0:
        raise ValueError("activations are all zero; an SAE cannot be trained on them")
    return math.sqrt(d_in) / mean_norm


# --------------------------------------------------------------------------------------------------
# save / load / metrics
# --------------------------------------------------------------------------------------------------
def save_sae(sae: Any, directory: str | Path) -> Path:
    """Write ``sae`` in the sae_lens format (``cfg.json`` + ``sae_weights.safetensors``)."""
    if not hasattr(sae, "save_model"):
        raise ValueError(f"sae must be a sae_lens SAE; got {type(sae).__name__}")
    directory = Path(directory)
    sae.save_model(str(directory))
    return directory


def load_sae(directory: str | Path, *, device: str = "cpu", model: Any = None, hook_name: str | None = None) -> Any:
    """Load an SAE saved by :func:`save_sae` (``SAE.load_from_disk``).

    With ``model`` (and ``hook_name``, default the hook the SAE records), check that the SAE fits that hook.
    """
    from sae_lens import SAE

    from featgeom_tda.sources.hooks import check_sae_matches_hook, sae_hook_name

    directory = Path(directory)
    if not (directory / "cfg.json").exists():
        raise ValueError(f"directory {str(directory)!r} holds no cfg.json; expected an SAE written by save_sae")
    sae = SAE.load_from_disk(str(directory), device=device)
    if model is not None:
        hook = hook_name or sae_hook_name(sae)
        if hook is None:
            raise ValueError("hook_name is required: the SAE does not record the hook it was trained on")
        check_sae_matches_hook(model, hook, sae)
    return sae


def load_pretrained_sae(release: str, sae_id: str, device: str = "cpu", **kwargs: Any) -> Any:
    """A released SAE through ``sae_lens.SAE.from_pretrained(release, sae_id, device=device, **kwargs)``.

    Needs the SAE's files (a network or a local hub cache); the embedded default does not use it.
    """
    from sae_lens import SAE

    for name, value in (("release", release), ("sae_id", sae_id)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string; got {value!r}")
    return SAE.from_pretrained(release, sae_id, device=device, **kwargs)


def sae_metrics(sae: Any, activations: Any, *, batch_size: int = 4096) -> dict[str, float]:
    """Reconstruction and sparsity of ``sae`` on ``activations`` (n, d_in).

    Returns fvu (sum of squared errors / total variance about the mean), l0 (mean number of active
    features per token), dead_fraction (features that never fire here), n_tokens, d_sae.
    """
    import torch

    acts = torch.as_tensor(activations)
    d_in = int(sae.cfg.d_in)
    if acts.ndim != 2 or acts.shape[0] < 2 or acts.shape[1] != d_in:
        raise ValueError(f"activations must be (n >= 2, d_in={d_in}); got {describe(activations)}")
    batch_size = check_positive_int(batch_size, "batch_size")
    acts = acts.float()
    mean = acts.double().mean(dim=0)
    sse = 0.0
    sst = 0.0
    active = 0.0
    fired = torch.zeros(int(sae.cfg.d_sae), dtype=torch.bool)
    device = next(sae.parameters()).device
    with torch.no_grad():
        for start in range(0, acts.shape[0], batch_size):
            x = acts[start:start + batch_size].to(device)
            f = sae.encode(x)
            x_hat = sae.decode(f)
            sse += float((x_hat.double() - x.double()).pow(2).sum())
            sst += float((x.double() - mean.to(device)).pow(2).sum())
            nz = (f != 0).cpu()
            active += float(nz.sum())
            fired |= nz.any(dim=0)
    n = acts.shape[0]
    return {
        "fvu": sse / sst if sst > 0 else float("nan"),
        "l0": active / n,
        "dead_fraction": float((~fired).float().mean()),
        "n_tokens": int(n),
        "d_sae": int(sae.cfg.d_sae),
    }


def sae_ce_loss(
    model: Any, sae: Any, tokens: Any, *, hook_name: str, mask: Any = None, batch_size: int = 8
) -> dict[str, float]:
    """Next-token cross-entropy (nats) with the SAE's reconstruction spliced in at ``hook_name``.

    Three forward passes per batch: clean; the hook's activation replaced by ``decode(encode(x))``; the
    activation replaced by zeros (zero-ablation). The replacement and the loss cover the ``mask`` positions
    only (default :func:`default_token_mask`: no padding, no BOS), so an outlier position such as 0 keeps its
    clean activation and is never scored; the last position of a row has no next token and is not scored.

    Returns ce_clean, ce_spliced, ce_zero_ablation, ce_loss_increase (spliced - clean), ce_recovered
    ((zero - spliced) / (zero - clean): 1 = as good as clean, 0 = as bad as zero-ablation), n_scored.
    """
    import torch
    import torch.nn.functional as F

    check_hook_name(model, hook_name)
    batch_size = check_positive_int(batch_size, "batch_size")
    toks = _as_tokens(tokens)
    if mask is None:
        keep = torch.from_numpy(default_token_mask(model, toks))
    else:
        from featgeom_tda.core._validation import to_numpy

        m = to_numpy(mask, "mask")
        if m.shape != tuple(toks.shape):
            raise ValueError(f"mask has shape {m.shape} but tokens has shape {tuple(toks.shape)}; they must match")
        keep = torch.from_numpy(m.astype(bool))
    if toks.shape[1] < 2:
        raise ValueError("tokens rows need at least 2 positions to score a next token")
    device = next(model.parameters()).device
    totals = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    n_scored = 0

    def replace_with(kind: str, rows: Any):
        def hook(act: Any, hook: Any) -> Any:
            out = act.clone()
            if kind == "spliced":
                x = act[rows]
                with torch.no_grad():
                    recon = sae.decode(sae.encode(x.to(sae.W_dec.dtype)))
                out[rows] = recon.to(act.dtype)
            else:
                out[rows] = 0
            return out

        return hook

    with torch.no_grad():
        for start in range(0, toks.shape[0], batch_size):
            batch = toks[start:start + batch_size].to(device)
            rows = keep[start:start + batch_size].to(device)
            scored = rows[:, :-1]  # predictions at kept positions that have a next token
            if not bool(scored.any()):
                continue
            targets = batch[:, 1:][scored]
            for kind in totals:
                hooks = [] if kind == "clean" else [(hook_name, replace_with(kind, rows))]
                logits = model.run_with_hooks(batch, fwd_hooks=hooks, return_type="logits")
                logp = F.log_softmax(logits[:, :-1][scored].double(), dim=-1)
                totals[kind] += float(-logp.gather(1, targets[:, None]).sum())
            n_scored += int(scored.sum())
    if n_scored == 0:
        raise ValueError("no position is scored: the mask keeps no position that has a next token")
    clean, spliced, zero = (totals[k] / n_scored for k in ("clean", "spliced", "zero"))
    gap = zero - clean
    return {
        "ce_clean": clean,
        "ce_spliced": spliced,
        "ce_zero_ablation": zero,
        "ce_loss_increase": spliced - clean,
        "ce_recovered": (zero - spliced) / gap if gap > 0 else float("nan"),
        "n_scored": n_scored,
    }
