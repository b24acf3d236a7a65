"""Interventions on a TransformerLens model: steer along a direction, ablate or patch SAE features.

Every intervention is a context manager. Its hooks are added on entry and removed on exit, also when
the body raises, through ``model.hooks`` (which removes exactly the hooks of its own context level, so
interventions nest). An intervention object is also a zero-argument callable that returns itself, so it
can be passed wherever the measurements expect ``intervention`` (as can ``functools.partial(steer, ...)``).

SAE edits use the difference method: with ``x`` the hook activation, ``f = encode(x)`` and ``f'`` the
edited features, the hook returns ``x + decode(f') - decode(f)``. The SAE's reconstruction error
``x - decode(f)`` is kept and only the edit reaches the model. ``naive_clamp_with_error`` shows the
well-known pitfall of recomputing the error term after the edit, which cancels the edit exactly.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from featgeom_tda.core._validation import check_choice, check_finite, describe, to_numpy
from featgeom_tda.sources.hooks import check_hook_name, check_sae_matches_hook
from featgeom_tda.core.types import FeatureWeights
from ._common import check_features, check_positions, model_device, resolve_positions, token_sequences

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
]


class HookIntervention:
    """Forward hooks that are active only inside ``with``; calling the object returns itself."""

    def __init__(self, model: Any, fwd_hooks: list[tuple[str, Callable]], *, label: str) -> None:
        self.model = model
        self.fwd_hooks = list(fwd_hooks)
        self.label = label
        self._ctx: Any = None

    def __call__(self) -> "HookIntervention":
        return self

    def __enter__(self) -> "HookIntervention":
        if self._ctx is not None:
            raise ValueError(f"intervention {self.label} is already active; nest a second intervention instead")
        ctx = self.model.hooks(fwd_hooks=self.fwd_hooks)
        ctx.__enter__()
        self._ctx = ctx
        return self

    def __exit__(self, *exc: Any) -> Any:
        ctx, self._ctx = self._ctx, None
        return ctx.__exit__(*exc)

    def __repr__(self) -> str:
        return f"HookIntervention({self.label})"


# ------------------------------------------------------------------------------------------ activations


def hook_activations(model: Any, hook_name: str, tokens: Any, *, tokenizer: Any = None) -> list[Any]:
    """Activations at ``hook_name`` for each prompt: list of float tensors (pos, ...) (grouped runs)."""
    import torch

    from ._common import group_by_length

    check_hook_name(model, hook_name)
    seqs = token_sequences(tokens, "tokens", tokenizer=tokenizer, d_vocab=model.cfg.d_vocab)
    out: list[Any] = [None] * len(seqs)
    store: dict[str, Any] = {}

    def grab(act: Any, hook: Any) -> None:
        store["act"] = act.detach()

    with torch.no_grad():
        for idx, batch in group_by_length(seqs):
            toks = torch.as_tensor(batch, device=model_device(model))
            model.run_with_hooks(toks, fwd_hooks=[(hook_name, grab)], return_type=None)
            for j, i in enumerate(idx):
                out[i] = store["act"][j]
    return out


def _hook_shape(model: Any, hook_name: str) -> tuple[int, ...]:
    """Shape of the hook's tensor on one prompt of one token (batch 1)."""
    import torch

    check_hook_name(model, hook_name)
    seen: dict[str, tuple[int, ...]] = {}

    def grab(act: Any, hook: Any) -> None:
        seen["shape"] = tuple(act.shape)

    with torch.no_grad():
        toks = torch.zeros((1, 1), dtype=torch.long, device=model_device(model))
        model.run_with_hooks(toks, fwd_hooks=[(hook_name, grab)], return_type=None)
    return seen["shape"]


def _check_stream_hook(model: Any, hook_name: str, what: str) -> int:
    """Width of a (batch, pos, d) hook; raise for hooks of other layouts (heads, attention patterns)."""
    shape = _hook_shape(model, hook_name)
    if len(shape) != 3:
        raise ValueError(
            f"hook_name {hook_name!r} carries a tensor of shape {shape} on one token; {what} needs a "
            "(batch, pos, d) hook such as blocks.L.hook_resid_post, hook_mlp_out or hook_attn_out"
        )
    return int(shape[-1])


# ------------------------------------------------------------------------------------------- directions


def as_direction(direction: Any, width: int, *, hook_name: str = "", name: str = "direction") -> np.ndarray:
    """A finite float64 vector of length ``width`` from a vector, a (1, d) array or a one-row FeatureWeights."""
    if isinstance(direction, FeatureWeights):
        if direction.n_features != 1:
            raise ValueError(
                f"{name} is FeatureWeights with {direction.n_features} rows; select one row, "
                "e.g. weights.select([i]) or weights.weights[i]"
            )
        direction = direction.weights[0]
    arr = to_numpy(direction, name)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a 1-D real vector, got {describe(arr)}")
    arr = arr.astype(np.float64)
    check_finite(arr, name)
    if arr.shape[0] != width:
        where = f" at hook {hook_name!r}" if hook_name else ""
        raise ValueError(f"{name} has width {arr.shape[0]} but the activation{where} has expected width {width}")
    return arr


def mean_difference(acts_a: Any, acts_b: Any) -> np.ndarray:
    """Difference of means ``mean(acts_a) - mean(acts_b)`` over all leading axes, shape (d,), float64."""
    a = to_numpy(acts_a, "acts_a").astype(np.float64)
    b = to_numpy(acts_b, "acts_b").astype(np.float64)
    for arr, nm in ((a, "acts_a"), (b, "acts_b")):
        if arr.ndim < 2 or arr.size == 0:
            raise ValueError(f"{nm} must be a non-empty (n, d) or (..., d) array, got {describe(arr)}")
        check_finite(arr, nm)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"acts_a has width {a.shape[-1]} but acts_b has width {b.shape[-1]}; they need the same d")
    return a.reshape(-1, a.shape[-1]).mean(axis=0) - b.reshape(-1, b.shape[-1]).mean(axis=0)


def decoder_direction(sae: Any, feature: int, *, normalize: bool = True) -> np.ndarray:
    """Decoder row of ``feature`` (float64, shape (d_in,)), scaled to unit norm when ``normalize``."""
    n = int(sae.cfg.d_sae)
    (f,) = check_features(feature, n, "feature")
    row = sae.W_dec[f].detach().cpu().double().numpy().copy()
    if normalize:
        norm = float(np.linalg.norm(row))
        if norm == 0:
            raise ValueError(f"feature {f} has a zero decoder row; it has no direction to steer along")
        row /= norm
    return row


def feature_means(model: Any, hook_name: str, sae: Any, tokens: Any, *, tokenizer: Any = None) -> np.ndarray:
    """Mean SAE activation of every feature over all positions of ``tokens``, shape (d_sae,), float64."""
    import torch

    check_sae_matches_hook(model, hook_name, sae)
    total = np.zeros(int(sae.cfg.d_sae))
    count = 0
    with torch.no_grad():
        for act in hook_activations(model, hook_name, tokens, tokenizer=tokenizer):
            f = sae.encode(act)
            total += f.double().sum(dim=0).cpu().numpy()
            count += int(f.shape[0])
    return total / count


# ---------------------------------------------------------------------------------------------- steering


def steer(model: Any, hook_name: str, direction: Any, *, alpha: float, positions: Any = None) -> HookIntervention:
    """Add ``alpha * direction`` to the activation at ``hook_name`` at ``positions`` (None = every position).

    ``direction``: shape (d,) numpy / torch vector, a one-row FeatureWeights, a (1, d) array, a decoder row
    (``decoder_direction``) or a difference of means (``mean_difference``). ``positions``: None, an int, a
    slice or a sequence of ints; negative ints count from each prompt's end.
    """
    import torch

    check_hook_name(model, hook_name)
    width = _check_stream_hook(model, hook_name, "steer")
    vec = as_direction(direction, width, hook_name=hook_name)
    if isinstance(alpha, bool):
        raise ValueError(f"alpha must be a real number, got {alpha!r}")
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a real number, got {alpha!r}") from None
    if not np.isfinite(alpha):
        raise ValueError(f"alpha must be finite, got {alpha}")
    positions = check_positions(positions)
    delta = torch.as_tensor(alpha * vec)

    def hook(act: Any, hook: Any) -> Any:
        idx = resolve_positions(positions, act.shape[1])
        out = act.clone()
        out[:, idx] = act[:, idx] + delta.to(device=act.device, dtype=act.dtype)
        return out

    return HookIntervention(model, [(hook_name, hook)], label=f"steer {hook_name} alpha={alpha:g}")


# ----------------------------------------------------------------------------------------- SAE editing


def _sae_edit(
    model: Any,
    hook_name: str,
    sae: Any,
    positions: Any,
    edit: Callable[[Any, list[int], int], Any],
    *,
    label: str,
) -> HookIntervention:
    """Hook that returns ``x + decode(edit(f, idx, seq_len)) - decode(f)`` at the chosen positions."""
    import torch

    positions = check_positions(positions)

    def hook(act: Any, hook: Any) -> Any:
        idx = resolve_positions(positions, act.shape[1])
        with torch.no_grad():
            x = act[:, idx]
            f = sae.encode(x)
            f_new = edit(f.clone(), idx, int(act.shape[1]))
            diff = sae.decode(f_new) - sae.decode(f)
        out = act.clone()
        out[:, idx] = x + diff.to(dtype=act.dtype)
        return out

    return HookIntervention(model, [(hook_name, hook)], label=label)


def _check_sae_hook(model: Any, hook_name: str, sae: Any, what: str) -> None:
    check_hook_name(model, hook_name)
    _check_stream_hook(model, hook_name, what)
    check_sae_matches_hook(model, hook_name, sae)


def ablate(
    model: Any,
    hook_name: str,
    sae: Any,
    features: Any,
    *,
    mode: str = "zero",
    means: Any = None,
    positions: Any = None,
) -> HookIntervention:
    """Set SAE ``features`` to zero (``mode="zero"``) or to their mean (``mode="mean"``) at ``positions``.

    The activation becomes ``x + decode(f') - decode(f)``: the error term is kept and the edit takes effect.
    ``means``: shape (d_sae,) (e.g. ``feature_means``) or one value per feature in ``features``.
    """
    import torch

    _check_sae_hook(model, hook_name, sae, "ablate")
    check_choice(mode, "mode", ("zero", "mean"))
    feats = check_features(features, int(sae.cfg.d_sae))
    if mode == "mean":
        if means is None:
            raise ValueError("means is required when mode='mean'; compute them with feature_means(...)")
        m = to_numpy(means, "means").astype(np.float64).reshape(-1)
        check_finite(m, "means")
        if m.shape[0] == int(sae.cfg.d_sae):
            m = m[feats]
        elif m.shape[0] != len(feats):
            raise ValueError(
                f"means has {m.shape[0]} values; expected d_sae={int(sae.cfg.d_sae)} or one per feature ({len(feats)})"
            )
        values = torch.as_tensor(m)
    elif means is not None:
        raise ValueError("means is only used with mode='mean'; got means with mode='zero'")
    else:
        values = torch.zeros(len(feats), dtype=torch.float64)

    def edit(f: Any, idx: list[int], seq_len: int) -> Any:
        f[..., feats] = values.to(dtype=f.dtype, device=f.device)
        return f

    return _sae_edit(model, hook_name, sae, positions, edit, label=f"ablate {hook_name} {mode} {feats}")


def naive_clamp_with_error(
    model: Any, hook_name: str, sae: Any, features: Any, *, value: float = 0.0, positions: Any = None
) -> HookIntervention:
    """PITFALL DEMONSTRATION, not an intervention to use: clamp features, then add back an error term.

    The hook computes ``x_hat' = decode(f')`` with the features clamped to ``value`` and returns
    ``x_hat' + (x - x_hat')``, the error term taken *after* the clamp. That is ``x`` again (up to float
    rounding), so the clamp has no effect at all. It exists to show why ``ablate`` adds the difference of
    decodings instead; the error term must come from the unedited reconstruction.
    """
    import torch

    _check_sae_hook(model, hook_name, sae, "naive_clamp_with_error")
    feats = check_features(features, int(sae.cfg.d_sae))
    positions = check_positions(positions)
    value = float(value)

    def hook(act: Any, hook: Any) -> Any:
        idx = resolve_positions(positions, act.shape[1])
        with torch.no_grad():
            x = act[:, idx]
            f = sae.encode(x)
            f[..., feats] = value
            x_hat = sae.decode(f).to(dtype=act.dtype)
            error = x - x_hat
        out = act.clone()
        out[:, idx] = x_hat + error
        return out

    return HookIntervention(model, [(hook_name, hook)], label=f"naive clamp {hook_name} {feats}")


def patch(
    model: Any,
    hook_name: str,
    sae: Any,
    features: Any,
    *,
    source_tokens: Any,
    positions: Any = None,
    tokenizer: Any = None,
) -> HookIntervention:
    """Copy SAE ``features`` from a run on ``source_tokens`` into the target run (difference method).

    Source activations are recorded when ``patch`` is called. Positions are aligned by index:
    non-negative positions name the same index in source and target, negative ones count from each
    prompt's own end (so ``positions=-1`` patches last token into last token of prompts of different
    lengths). With ``positions=None`` source and target must have the same length. ``source_tokens``:
    one prompt (broadcast over the target batch) or as many prompts as the target batch, of one length.
    """
    import torch

    _check_sae_hook(model, hook_name, sae, "patch")
    feats = check_features(features, int(sae.cfg.d_sae))
    positions = check_positions(positions)
    seqs = token_sequences(source_tokens, "source_tokens", tokenizer=tokenizer, d_vocab=model.cfg.d_vocab)
    if len({len(s) for s in seqs}) != 1:
        raise ValueError("source_tokens must be prompts of one length; patch each length separately")
    with torch.no_grad():
        src_acts = torch.stack(hook_activations(model, hook_name, seqs))
        src_feats = sae.encode(src_acts)[..., feats]  # (n_src, src_len, n_feats)
    src_len = src_feats.shape[1]

    def edit(f: Any, idx: list[int], tgt_len: int) -> Any:
        if positions is None and tgt_len != src_len:
            raise ValueError(
                f"source_tokens has {src_len} positions but the target prompt has {tgt_len}; "
                "pass positions= to align them (negative positions count from each end)"
            )
        src_idx = resolve_positions(positions, src_len, "positions (in source_tokens)")
        if len(src_idx) != len(idx):
            raise ValueError(
                f"positions {positions!r} select {len(src_idx)} source positions but {len(idx)} target positions; "
                "use ints (negative ones count from each end) so that they align"
            )
        if src_feats.shape[0] not in (1, f.shape[0]):
            raise ValueError(
                f"source_tokens has {src_feats.shape[0]} prompts but the target batch has {f.shape[0]}; "
                "give one source prompt or one per target prompt"
            )
        vals = src_feats[:, src_idx].to(dtype=f.dtype, device=f.device)
        f[..., feats] = vals.expand(f.shape[0], -1, -1)
        return f

    return _sae_edit(model, hook_name, sae, positions, edit, label=f"patch {hook_name} {feats}")
