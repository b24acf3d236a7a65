"""Raw units of a model, the baselines SAE features are compared against: MLP neurons and residual dimensions.

"Is the similarity of two models' SAE features more than the similarity of the models themselves?" needs
the same measurements on the model's own units. Two kinds of unit, each a set of directions in the
residual stream (:class:`~featgeom_tda.core.types.FeatureWeights`, one row per unit) with per-token
activations (dense float32 (n_tokens, n_units), the rows kept by the same token mask as
:func:`~featgeom_tda.sources.saes.collect_hook_activations`):

- **MLP neurons** of a layer (:func:`mlp_neuron_units`): the hidden units at ``blocks.L.mlp.hook_post``
  (after the non-linearity), whose directions are the rows of ``W_out[L]`` (d_mlp, d_model): neuron ``i``
  adds ``hook_post[:, i] * W_out[L][i]`` to the residual stream. The element-wise non-linearity makes this
  basis *privileged*: rotating the hidden space changes what the model computes, so individual neurons can
  mean something (and are known to be often polysemantic, which is what SAEs are meant to fix).
- **Residual-stream dimensions** at a hook (:func:`residual_units`): the d_model coordinates of the
  residual stream, whose directions are the identity basis (d_model, d_model). Nothing in a transformer's
  architecture singles out these axes: every layer reads the residual stream through a linear map (after
  LayerNorm, which is rotation-equivariant up to its element-wise gain) and writes to it through one, so an
  orthogonal rotation of the stream absorbed into the weights gives the same model. The residual basis is
  therefore privileged-basis-free, and results stated in it are basis-dependent artefacts of training
  (Adam's per-coordinate updates do create a few outlier dimensions). That makes it a control: a similarity
  or topology measure that finds as much structure in residual dimensions as in SAE features is not
  measuring features; and two models' residual dimensions need not correspond at all even when the models
  represent the same things, so matching them is the floor a feature-level comparison must clear.

Activations are returned dense: neurons and residual coordinates are not sparse (GELU outputs are mostly
non-zero, and negative), so correlation matching on them uses the "dense" method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from featgeom_tda.core._validation import check_positive_int, to_numpy
from featgeom_tda.core.types import FeatureActivations, FeatureWeights, Provenance

__all__ = [
    "RawUnits",
    "UNIT_KINDS",
    "mlp_neuron_directions",
    "mlp_neuron_units",
    "residual_directions",
    "residual_units",
]

UNIT_KINDS = ("mlp_neurons", "residual_dims")


@dataclass
class RawUnits:
    """Directions and per-token activations of a model's raw units at one hook.

    Attributes:
        weights: (n_units, d_model) directions: ``W_out[layer]`` rows for MLP neurons, the identity for
            residual dimensions.
        activations: float32 (n_kept, n_units), one row per kept token position, row-major over
            (row of ``tokens``, position).
        token_ids, doc_index, position: int64 (n_kept,): the token id, the row of ``tokens`` and the position
            in it of each activation row.
        hook_name: the hook the activations were read at.
        kind: "mlp_neurons" or "residual_dims".
        provenance: model, hook and unit kind (``sae_id`` is "<kind>-<n_units>").
    """

    weights: FeatureWeights
    activations: np.ndarray
    token_ids: np.ndarray
    doc_index: np.ndarray
    position: np.ndarray
    hook_name: str
    kind: Literal["mlp_neurons", "residual_dims"]
    provenance: Provenance = field(default_factory=Provenance)

    @property
    def n_units(self) -> int:
        return int(self.activations.shape[1])

    @property
    def n_tokens(self) -> int:
        return int(self.activations.shape[0])

    def to_activations(self) -> FeatureActivations:
        """The activations as :class:`~featgeom_tda.core.types.FeatureActivations` (CSR of a dense matrix)."""
        return FeatureActivations(
            self.activations,
            token_ids=self.token_ids,
            doc_index=self.doc_index,
            position=self.position,
            provenance=self.provenance,
            name="activations",
        )

    def __repr__(self) -> str:
        return (
            f"RawUnits(kind={self.kind!r}, hook_name={self.hook_name!r}, n_units={self.n_units}, "
            f"n_tokens={self.n_tokens})"
        )


def _model_name(model: Any) -> str | None:
    return getattr(getattr(model, "cfg", None), "model_name", None)


def _check_layer(model: Any, layer: Any) -> int:
    n_layers = int(model.cfg.n_layers)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < n_layers:
        raise ValueError(f"layer must be an integer in [0, {n_layers - 1}]; got {layer!r}")
    if getattr(model.cfg, "attn_only", False):
        raise ValueError("model is attention-only and has no MLP neurons; use residual_units instead")
    return int(layer)


def mlp_neuron_directions(model: Any, layer: int) -> FeatureWeights:
    """Output directions of the MLP neurons of ``layer``: ``W_out[layer]`` (d_mlp, d_model), float32.

    Row ``i`` is what neuron ``i`` writes to the residual stream per unit of its activation at
    ``blocks.<layer>.mlp.hook_post``.
    """
    from featgeom_tda.sources.weights import mlp_out_weights

    layer = _check_layer(model, layer)
    d_mlp = int(model.W_out[layer].shape[0])
    prov = _provenance(model, "mlp_neurons", f"blocks.{layer}.mlp.hook_post", d_mlp, layer=layer)
    return mlp_out_weights(model, layer, provenance=prov)


def residual_directions(model: Any, hook_name: str) -> FeatureWeights:
    """The standard basis of the residual stream at ``hook_name``: the (d_model, d_model) identity, float32.

    ``hook_name`` must be a hook of the model whose tensor has width d_model (``blocks.L.hook_resid_pre``,
    ``hook_resid_mid``, ``hook_resid_post``, ``hook_mlp_out``, ``hook_attn_out``, ``hook_embed`` ...). See the
    module docstring for why these directions are a basis-dependent control.
    """
    _check_residual_hook(model, hook_name)
    d = int(model.cfg.d_model)
    return FeatureWeights(np.eye(d, dtype=np.float32), provenance=_provenance(model, "residual_dims", hook_name, d))


def mlp_neuron_units(
    model: Any,
    tokens: Any,
    layer: int,
    *,
    mask: Any = None,
    keep_bos: bool = False,
    batch_size: int = 32,
    progress: bool = False,
) -> RawUnits:
    """The MLP neurons of ``layer``: directions ``W_out[layer]`` and activations at ``blocks.<layer>.mlp.hook_post``.

    Args:
        model: a HookedTransformer (not attention-only).
        tokens: int (n_rows, seq) token ids.
        layer: the block, in [0, n_layers).
        mask: bool (n_rows, seq), True = keep; default
            :func:`~featgeom_tda.sources.saes.default_token_mask` (no padding, no BOS unless ``keep_bos``).
        keep_bos: with the default mask, keep the BOS positions.
        batch_size: rows of ``tokens`` per forward pass.

    Returns:
        :class:`RawUnits` with weights (d_mlp, d_model) and activations float32 (n_kept, d_mlp).
    """
    layer = _check_layer(model, layer)
    weights = mlp_neuron_directions(model, layer)
    hook_name = f"blocks.{layer}.mlp.hook_post"
    units = _collect(model, tokens, hook_name, weights, "mlp_neurons", mask=mask, keep_bos=keep_bos,
                     batch_size=batch_size, progress=progress)
    if units.n_units != weights.n_features:
        raise ValueError(
            f"{hook_name} has {units.n_units} units but W_out[{layer}] has {weights.n_features} rows; "
            "this MLP's hidden activations do not map one-to-one onto W_out rows"
        )
    return units


def residual_units(
    model: Any,
    tokens: Any,
    hook_name: str,
    *,
    mask: Any = None,
    keep_bos: bool = False,
    batch_size: int = 32,
    progress: bool = False,
) -> RawUnits:
    """The residual-stream dimensions at ``hook_name``: the identity basis and the raw activations.

    Arguments as in :func:`mlp_neuron_units`, with a hook of width d_model instead of a layer (see
    :func:`residual_directions`). Returns :class:`RawUnits` with weights (d_model, d_model) (the identity)
    and activations float32 (n_kept, d_model).
    """
    weights = residual_directions(model, hook_name)
    return _collect(model, tokens, hook_name, weights, "residual_dims", mask=mask, keep_bos=keep_bos,
                    batch_size=batch_size, progress=progress)


# --------------------------------------------------------------------------------------------------
def _provenance(model: Any, kind: str, hook_name: str, n_units: int, *, layer: int | None = None) -> Provenance:
    extra: dict[str, Any] = {"units": kind}
    if kind == "mlp_neurons":
        extra.update({"matrix": f"blocks.{layer}.mlp.W_out", "layer": layer})
    else:
        extra.update({"matrix": "identity"})
    return Provenance(model=_model_name(model), hook_name=hook_name, sae_id=f"{kind}-{n_units}", extra=extra)


def _check_residual_hook(model: Any, hook_name: str) -> None:
    from featgeom_tda.sources.hooks import check_hook_name, hook_width

    if not isinstance(hook_name, str):
        raise ValueError(f"hook_name must be a hook name string; got {hook_name!r}")
    check_hook_name(model, hook_name)
    width, d = hook_width(model, hook_name), int(model.cfg.d_model)
    if width != d:
        raise ValueError(
            f"hook_name {hook_name!r} has width {width}, not the residual stream's d_model={d}; use a "
            "residual-stream hook such as blocks.0.hook_resid_post (or mlp_neuron_units for MLP hidden units)"
        )


def _collect(
    model: Any,
    tokens: Any,
    hook_name: str,
    weights: FeatureWeights,
    kind: str,
    *,
    mask: Any,
    keep_bos: bool,
    batch_size: int,
    progress: bool,
) -> RawUnits:
    from featgeom_tda.sources.models import as_token_array
    from featgeom_tda.sources.saes import collect_hook_activations, default_token_mask

    if not isinstance(keep_bos, bool):
        raise ValueError(f"keep_bos must be True or False; got {keep_bos!r}")
    batch_size = check_positive_int(batch_size, "batch_size")
    toks = as_token_array(tokens.detach().cpu().numpy() if hasattr(tokens, "detach") else tokens, "tokens")
    if mask is None:
        keep = default_token_mask(model, toks, keep_bos=keep_bos)
    else:
        keep = to_numpy(mask, "mask")
        if keep.ndim == 1 and toks.shape[0] == 1:
            keep = keep[None, :]
        if keep.shape != toks.shape:
            raise ValueError(f"mask has shape {keep.shape} but tokens has shape {toks.shape}; they must match")
        if keep.dtype != bool:
            raise ValueError(f"mask must be boolean (True = keep the position); got dtype {keep.dtype}")
    acts = collect_hook_activations(model, toks, hook_name, batch_size=batch_size, mask=keep, progress=progress)
    rows, cols = np.nonzero(keep)  # row-major, the order the collected rows come in
    return RawUnits(
        weights=weights,
        activations=np.ascontiguousarray(acts.numpy(), dtype=np.float32),
        token_ids=toks[rows, cols].astype(np.int64),
        doc_index=rows.astype(np.int64),
        position=cols.astype(np.int64),
        hook_name=hook_name,
        kind=kind,  # type: ignore[arg-type]
        provenance=weights.provenance,
    )
