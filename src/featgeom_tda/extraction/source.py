"""One model + hook + SAE whose feature activations go to one activation store."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from featgeom_tda.core._cache import Hasher
from featgeom_tda.core._validation import to_torch_device
from featgeom_tda.sources.hooks import check_hook_name, check_sae_matches_hook

__all__ = ["ActivationSource", "weights_fingerprint", "stop_layer", "check_device"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_BLOCK_HOOK_RE = re.compile(r"^blocks\.(\d+)\.")
_EMBED_HOOKS = ("hook_embed", "hook_pos_embed", "hook_tokens")


@dataclass
class ActivationSource:
    """One model + hook + SAE whose feature activations go to the store ``out_dir/<name>/``.

    Attributes:
        name: store directory name (letters, digits, ``_ . -``).
        model: a transformer_lens HookedTransformer.
        hook_name: TransformerLens hook name, e.g. ``blocks.0.hook_resid_post``.
        sae: an sae_lens SAE whose ``d_in`` is the hook's width.
        model_id, sae_id: readable labels for provenance (default: the model's ``cfg.model_name`` and the
            SAE's metadata ``sae_id`` or ``<architecture>-<d_sae>``). Resuming always compares weight hashes.
    """

    name: str
    model: Any
    hook_name: str
    sae: Any
    model_id: str | None = None
    sae_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(
                f"name must be a directory name of letters, digits, '_', '.' or '-' (starting with a letter or "
                f"digit, at most 128 characters); got {self.name!r}"
            )
        if not hasattr(self.model, "hook_dict") or not hasattr(self.model, "run_with_hooks"):
            raise ValueError(f"model must be a transformer_lens HookedTransformer, got {type(self.model).__name__}")
        if not hasattr(self.sae, "encode") or not hasattr(getattr(self.sae, "cfg", None), "d_sae"):
            raise ValueError(
                f"sae must be an sae_lens SAE (with .encode and .cfg.d_sae), got {type(self.sae).__name__}"
            )
        check_hook_name(self.model, self.hook_name)
        check_sae_matches_hook(self.model, self.hook_name, self.sae)

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def model_label(self) -> str:
        if self.model_id:
            return self.model_id
        return str(getattr(getattr(self.model, "cfg", None), "model_name", None) or type(self.model).__name__)

    @property
    def sae_label(self) -> str:
        if self.sae_id:
            return self.sae_id
        meta = getattr(self.sae.cfg, "metadata", None)
        sid = getattr(meta, "sae_id", None) if meta is not None else None
        if sid:
            return str(sid)
        arch = self.sae.cfg.architecture() if hasattr(self.sae.cfg, "architecture") else type(self.sae).__name__
        return f"{arch}-{self.d_sae}"


def weights_fingerprint(module: Any) -> str:
    """sha256 over a torch module's state dict (names, dtypes, shapes, bytes)."""
    import torch

    h = Hasher()
    for key, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update_bytes(json.dumps([key, str(t.dtype), list(t.shape)]).encode())
        if t.numel():
            h.update_bytes(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def stop_layer(hook_name: str) -> int | None:
    """The ``stop_at_layer`` that still runs ``hook_name`` (None: the full forward pass is needed)."""
    m = _BLOCK_HOOK_RE.match(hook_name)
    if m:
        return int(m.group(1)) + 1
    if hook_name in _EMBED_HOOKS:
        return 0
    return None


def _module_device(module: Any):
    import torch

    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def check_device(module: Any, what: str, device: Any) -> None:
    import torch

    want = to_torch_device(device)
    have = _module_device(module)
    same = have.type == want.type and (want.index is None or have.index in (None, want.index))
    if not same:
        raise ValueError(f"{what} is on device {have} but device is {str(want)!r}; move it with .to({str(want)!r})")
