"""TransformerLens hook names: validation and widths, so an SAE always sees the tensor it was trained on."""

from __future__ import annotations

import difflib
import re
from typing import Any

__all__ = [
    "check_hook_name",
    "unknown_hook_message",
    "config_hook_names",
    "hub_hook_names",
    "hook_width",
    "check_sae_matches_hook",
    "sae_hook_name",
]

_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")


def check_hook_name(model: Any, hook_name: str, *, field: str = "hook_name", model_name: str = "this model") -> str:
    """Return ``hook_name`` if ``model`` (a HookedTransformer) has it, else raise (:func:`unknown_hook_message`)."""
    valid = list(getattr(model, "hook_dict", {}).keys())
    if hook_name in valid:
        return hook_name
    raise ValueError(unknown_hook_message(field, hook_name, valid, model_name=model_name))


def unknown_hook_message(field: str, hook_name: Any, valid: list[str], *, model_name: str = "this model") -> str:
    """The refusal of a hook not in ``valid``: the field, the hook, the layer range, the nearest valid names.

    A ``blocks.N.…`` hook past the last layer says how many layers the model has and suggests the same hook
    of the existing layers.
    """
    layers = sorted({int(m.group(1)) for m in map(_BLOCK.fullmatch, valid) if m})
    n_layers = layers[-1] + 1 if layers else 0
    what = f"{model_name} ({n_layers} layer{'s' if n_layers != 1 else ''}: blocks.0 to blocks.{n_layers - 1})" if n_layers else model_name
    text = str(hook_name)
    block = _BLOCK.fullmatch(text)
    close: list[str] = []
    reason = ""
    if block and int(block.group(1)) >= n_layers > 0:
        reason = f": layer {int(block.group(1))} is out of range"
        same = [f"blocks.{i}.{block.group(2)}" for i in (n_layers - 1, 0)]
        close = [h for h in dict.fromkeys(same) if h in valid]
    close = close or difflib.get_close_matches(text, valid, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    shown = ", ".join(valid[:8]) + (f", ... ({len(valid)} in all)" if len(valid) > 8 else "")
    return f"{field} {hook_name!r} does not exist in {what}{reason}.{hint} Valid hook names: {shown}"


def config_hook_names(cfg: Any) -> list[str]:
    """Hook names of a ``HookedTransformer`` with config ``cfg``, read from a copy built on the meta device.

    No weights are allocated, no tokenizer is loaded and no forward pass runs (a 2B-parameter config: 0.1 s).
    """
    import copy
    import warnings

    import torch
    from transformer_lens import HookedTransformer

    cfg = copy.copy(cfg)
    cfg.tokenizer_name = None
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        model = HookedTransformer(cfg, move_to_device=False)
    return list(model.hook_dict)


def hub_hook_names(name: str) -> list[str] | None:
    """Hook names of the TransformerLens model ``name`` when its config is known offline, else None.

    TransformerLens knows some configs by name (Gemma, Llama) and reads the others from the local Hugging
    Face cache; nothing is downloaded. None means: check the hooks when the model is loaded.
    """
    try:
        from transformer_lens.loading_from_pretrained import get_pretrained_model_config

        cfg = get_pretrained_model_config(name, local_files_only=True, device="cpu")
        return config_hook_names(cfg)
    except Exception:  # noqa: BLE001 - unknown, not cached or not convertible: the load-time check decides
        return None


def hook_width(model: Any, hook_name: str, *, flatten_heads: bool = False) -> int:
    """Size of the last dimension of the tensor at ``hook_name`` (one forward pass on one token).

    With ``flatten_heads`` a per-head hook (..., n_heads, d_head), such as ``hook_z``, counts n_heads * d_head.
    """
    import torch

    check_hook_name(model, hook_name)
    seen: dict[str, int] = {}

    def grab(tensor: torch.Tensor, hook: Any) -> None:
        per_head = flatten_heads and tensor.ndim == 4
        seen["width"] = int(tensor.shape[-1] * tensor.shape[-2]) if per_head else int(tensor.shape[-1])

    tokens = torch.zeros((1, 1), dtype=torch.long, device=next(model.parameters()).device)
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[(hook_name, grab)], return_type=None)
    return seen["width"]


def sae_hook_name(sae: Any) -> str | None:
    """The hook an sae_lens SAE says it was trained on, or None when it does not say."""
    meta = getattr(getattr(sae, "cfg", None), "metadata", None)
    name = getattr(meta, "hook_name", None)
    if name is None:
        name = getattr(getattr(sae, "cfg", None), "hook_name", None)
    return name


def check_sae_matches_hook(model: Any, hook_name: str, sae: Any) -> None:
    """Raise if the SAE's d_in differs from the hook's width, or the SAE names another hook."""
    d_in = int(sae.cfg.d_in)
    width = hook_width(model, hook_name)
    if d_in != width and hook_name.endswith("hook_z"):
        width = hook_width(model, hook_name, flatten_heads=True)
    if d_in != width:
        raise ValueError(
            f"sae has d_in={d_in} but hook {hook_name!r} has width {width}; "
            "use the SAE with the hook it was trained on"
        )
    trained_on = sae_hook_name(sae)
    if trained_on is not None and trained_on != hook_name:
        raise ValueError(
            f"sae was trained on hook {trained_on!r} but hook_name is {hook_name!r}; "
            "pass the hook the SAE was trained on"
        )
