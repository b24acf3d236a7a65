"""Weight matrices as :class:`~featgeom_tda.core.types.FeatureWeights`: SAE decoder rows and MLP output rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.core.types import FeatureWeights, Provenance

__all__ = ["decoder_weights", "mlp_out_weights", "load_weight_file"]


def decoder_weights(sae: Any, *, provenance: Provenance | None = None) -> FeatureWeights:
    """The SAE's decoder, one row per feature: ``W_dec`` of shape (d_sae, d_in).

    Provenance defaults to the hook and model the SAE's config metadata records, with
    ``sae_id`` "<architecture>-<d_sae>".
    """
    w_dec = getattr(sae, "W_dec", None)
    if w_dec is None or getattr(w_dec, "ndim", 0) != 2:
        raise ValueError(f"sae must be an SAE with a 2-D W_dec (d_sae, d_in); got {type(sae).__name__}")
    if provenance is None:
        from featgeom_tda.sources.hooks import sae_hook_name

        cfg = getattr(sae, "cfg", None)
        meta = getattr(cfg, "metadata", None)
        arch = cfg.architecture() if cfg is not None and hasattr(cfg, "architecture") else "sae"
        provenance = Provenance(
            model=getattr(meta, "model_name", None),
            hook_name=sae_hook_name(sae),
            sae_id=f"{arch}-{int(w_dec.shape[0])}",
            seed=getattr(meta, "featgeom_seed", None),
            extra={"matrix": "W_dec"},
        )
    return FeatureWeights(w_dec.detach().cpu().float().numpy(), provenance=provenance, name="sae.W_dec")


def mlp_out_weights(model: Any, layer: int, *, provenance: Provenance | None = None) -> FeatureWeights:
    """Output weights of MLP ``layer``, one row per neuron: ``W_out[layer]`` of shape (d_mlp, d_model)."""
    n_layers = int(model.cfg.n_layers)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise ValueError(f"layer must be an integer in [0, {n_layers - 1}]; got {layer!r}")
    if getattr(model.cfg, "attn_only", False):
        raise ValueError("model is attention-only and has no MLP weights")
    w_out = model.W_out[layer]
    if provenance is None:
        provenance = Provenance(
            model=getattr(model.cfg, "model_name", None),
            hook_name=f"blocks.{layer}.mlp.hook_post",
            extra={"matrix": f"blocks.{layer}.mlp.W_out", "layer": layer},
        )
    return FeatureWeights(w_out.detach().cpu().float().numpy(), provenance=provenance, name="W_out")


def load_weight_file(path: str | Path, *, key: str | None = None) -> FeatureWeights:
    """One (n_rows, d) matrix from a ``.npy`` file (no pickle) or a ``.safetensors`` file.

    A directory is read as a saved SAE: its ``sae_weights.safetensors``. In a safetensors file ``key``
    names the tensor; without it the only tensor is taken, else ``W_dec`` (an SAE's decoder rows).
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "sae_weights.safetensors").is_file():
            raise FileNotFoundError(f"{path} is a directory without sae_weights.safetensors, so not a saved SAE")
        path = path / "sae_weights.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".npy":
        if key is not None:
            raise ValueError(f"key={key!r} applies to safetensors files; {path.name} is a .npy file")
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path} is not a plain numeric .npy array (pickled objects are refused): {exc}") from None
        except (EOFError, OSError) as exc:
            raise ValueError(f"{path} is not a readable .npy file (empty or truncated): {exc}") from None
        name = path.name
    elif path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                keys = list(f.keys())
                if key is None:
                    key = keys[0] if len(keys) == 1 else ("W_dec" if "W_dec" in keys else None)
                if key is None or key not in keys:
                    raise ValueError(f"key must name one of the tensors in {path.name}: {', '.join(keys) or 'none'}")
                arr = f.get_tensor(key)
        except (SafetensorError, TypeError) as exc:  # TypeError: a dtype numpy lacks, such as bfloat16
            raise ValueError(f"{path} could not be read as numpy arrays: {exc}") from None
        name = f"{path.name}:{key}"
    else:
        raise ValueError(f"weights file must end in .npy or .safetensors (or be an SAE directory); got {path.name}")
    return FeatureWeights(arr, provenance=Provenance(extra={"file": str(path), "matrix": key or "array"}), name=name)
