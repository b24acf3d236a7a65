"""A randomised-model control: the same architecture with freshly initialised weights.

Any similarity of two trained models' features has to be compared with what an untrained network of the
same shape already gives: random networks have structured activations too (token identity and position flow
through the residual stream), and SAEs trained on them find "features". :func:`reinitialised_copy` gives
that control model, with every parameter re-drawn the way TransformerLens initialises a new model.
"""

from __future__ import annotations

import copy
from typing import Any

from featgeom_tda.core._validation import check_positive_int

__all__ = ["reinitialised_copy"]


def _default_value(name: str) -> float:
    """The value TransformerLens gives a non-``W_`` parameter at construction: 1 for norm gains, else 0."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "w":  # LayerNorm / RMSNorm gains (ln1.w, ln_final.w, q_norm.w ...)
        return 1.0
    if leaf == "b" or leaf.startswith(("b_", "_b_")) or leaf == "sinks":  # biases, attention sinks
        return 0.0
    raise ValueError(
        f"model has a parameter {name!r} whose TransformerLens initialisation is not known (neither a W_ "
        "matrix, a bias nor a norm gain); reinitialised_copy cannot re-draw it"
    )


def reinitialised_copy(model: Any, *, seed: int, model_name: str | None = None) -> Any:
    """A deep copy of ``model`` (a HookedTransformer) with every weight re-drawn by TransformerLens' own init.

    The copy has the same config, architecture, hook names, device and dtype, and shares the original's
    tokenizer object. Its weight matrices (every parameter with ``W_`` in its name: embeddings ``W_E`` and
    ``W_pos``, attention, MLP and unembedding) are drawn by ``HookedTransformer.init_weights`` with the
    model's ``cfg.init_mode`` and ``cfg.initializer_range``; the other parameters are set to what
    TransformerLens gives a new model: norm gains 1, biases 0 (so nothing of the training survives).
    Buffers that depend only on the config (causal mask, rotary tables) are kept. Weight processing
    that ``from_pretrained`` applies (folding LayerNorm, centring) is not re-applied: the copy is what
    ``HookedTransformer(model.cfg)`` builds.

    Args:
        model: a HookedTransformer; it is not modified.
        seed: a non-negative integer; the same seed gives the same weights (on the same device). The global
            torch RNG (CPU and CUDA) is left as it was.
        model_name: ``cfg.model_name`` of the copy; default "<original name>-reinit-seed<seed>", so its
            activations and weights are never labelled as the trained model's. Pass the original name to
            keep it.

    Returns:
        The reinitialised copy, in eval mode.
    """
    import torch
    from transformer_lens import HookedTransformer

    if not isinstance(model, HookedTransformer):
        raise ValueError(f"model must be a transformer_lens HookedTransformer; got {type(model).__name__}")
    seed = check_positive_int(seed, "seed", minimum=0)
    if model_name is not None and (not isinstance(model_name, str) or not model_name):
        raise ValueError(f"model_name must be a non-empty string or None; got {model_name!r}")
    params = list(model.named_parameters())
    defaults = {name: _default_value(name) for name, _ in params if "W_" not in name}  # raises before copying
    devices = {p.device for _, p in params}
    unsupported = sorted(str(d) for d in devices if d.type not in ("cpu", "cuda"))
    if unsupported:
        raise ValueError(f"model has parameters on {', '.join(unsupported)}; reinitialised_copy supports cpu and cuda")
    cuda = sorted({torch.cuda.current_device() if d.index is None else d.index for d in devices if d.type == "cuda"})

    tokenizer = getattr(model, "tokenizer", None)
    memo = {id(tokenizer): tokenizer} if tokenizer is not None else {}
    new = copy.deepcopy(model, memo)
    cfg = new.cfg
    cfg.model_name = model_name if model_name is not None else f"{cfg.model_name}-reinit-seed{seed}"
    cfg_seed = cfg.seed
    with torch.no_grad(), torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        for name, p in new.named_parameters():
            if name in defaults:
                p.fill_(defaults[name])
        cfg.seed = None  # init_weights would otherwise reseed every generator from cfg.seed
        try:
            new.init_weights()
        finally:
            cfg.seed = cfg_seed
    new.eval()
    return new
