"""TransformerLens hook names: validation and widths, so an SAE always sees the tensor it was trained on."""

from __future__ import annotations

import difflib
from typing import Any

__all__ = ["check_hook_name", "hook_width", "check_sae_matches_hook", "sae_hook_name"]


def check_hook_name(model: Any, hook_name: str) -> str:
    """Return ``hook_name`` if ``model`` (a HookedTransformer) has it, else raise listing valid names."""
    valid = list(getattr(model, "hook_dict", {}).keys())
    if hook_name in valid:
        return hook_name
    close = difflib.get_close_matches(str(hook_name), valid, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"hook_name {hook_name!r} does not exist in this model.{hint} Valid hook names: {', '.join(valid)}"
    )


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
