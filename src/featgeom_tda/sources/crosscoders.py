"""Acausal crosscoders (Lindsey et al. 2024) as sae_lens SAEs on concatenated activations of two models.

A crosscoder reads the activations of two models on the same rows and writes a reconstruction of both
through one shared set of latents. An SAE trained on the concatenation ``[a / s_a, b / s_b]`` is exactly an
acausal crosscoder: its encoder ``W_enc`` splits into per-model encoders whose contributions are summed
(``W_enc = [[W_enc_a], [W_enc_b]]``, so ``x @ W_enc = a' @ W_enc_a + b' @ W_enc_b``), and each decoder row
splits into a block per model (``W_dec[:, :d_a]`` writes model A, ``W_dec[:, d_a:]`` model B).

Each part is divided by its root mean squared norm (``s = sqrt(mean ||a||^2)``) so both models carry
the same weight in the loss, whatever their widths and units. Training is
:func:`featgeom_tda.sources.saes.train_sae` with a TopK activation (no L1 penalty, so the penalty
does not push decoder blocks to zero and make shared features look exclusive to one model, which is the
artifact that Minder et al. 2025 found with L1 crosscoders). sae_lens also has BatchTopK, but
``train_sae`` only builds TopK and standard SAEs.

Saved as a folder: the SAE in the sae_lens format (``cfg.json`` + ``sae_weights.safetensors``) plus
``crosscoder.json`` (scales, widths, training options); no pickle.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._validation import (
    as_float_matrix,
    check_choice,
    check_positive_int,
    check_same_rows,
    describe,
)

__all__ = ["Crosscoder", "train_crosscoder", "load_crosscoder", "CROSSCODER_JSON"]

CROSSCODER_JSON = "crosscoder.json"
_FORMAT = "featgeom-crosscoder-1"
Units = Literal["original", "normalized"]


def _pair_matrices(acts_a: Any, acts_b: Any, *, min_rows: int = 1) -> tuple[np.ndarray, np.ndarray]:
    a = as_float_matrix(acts_a, "acts_a", dtype=np.float32, min_rows=min_rows)
    b = as_float_matrix(acts_b, "acts_b", dtype=np.float32, min_rows=min_rows)
    check_same_rows(a, "acts_a", b, "acts_b", what="the two models' activations (the same rows)")
    return a, b


def _rms_norm(x: np.ndarray, name: str) -> float:
    """sqrt(mean over rows of ||x_i||^2), computed in float64; refuses all-zero input."""
    value = math.sqrt(float(np.einsum("ij,ij->", x, x, dtype=np.float64)) / x.shape[0])
    if not value > 0:
        raise ValueError(f"{name} is all zeros; a crosscoder cannot be trained on it")
    return value


@dataclass
class Crosscoder:
    """An acausal crosscoder of two models: an SAE on ``[acts_a / scale_a, acts_b / scale_b]``.

    Attributes:
        sae: inference ``sae_lens.SAE`` with ``d_in = d_a + d_b``, in normalised units.
        scale_a, scale_b: root mean squared norm of each model's training activations; model M's
            normalised activations are ``acts_M / scale_M``.
        d_a, d_b: the two models' widths.
        config: training options and provenance (JSON-safe).
    """

    sae: Any
    scale_a: float
    scale_b: float
    d_a: int
    d_b: int
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.d_a = check_positive_int(self.d_a, "d_a")
        self.d_b = check_positive_int(self.d_b, "d_b")
        for name in ("scale_a", "scale_b"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not (
                math.isfinite(float(value)) and float(value) > 0
            ):
                raise ValueError(f"{name} must be a positive finite number; got {value!r}")
            setattr(self, name, float(value))
        d_in = int(self.sae.cfg.d_in)
        if d_in != self.d_a + self.d_b:
            raise ValueError(f"sae has d_in={d_in} but d_a + d_b = {self.d_a} + {self.d_b} = {self.d_a + self.d_b}")

    def __repr__(self) -> str:
        return (f"Crosscoder(width={self.width}, d_a={self.d_a}, d_b={self.d_b}, "
                f"scale_a={self.scale_a:.4g}, scale_b={self.scale_b:.4g})")  # fmt: skip

    @property
    def width(self) -> int:
        """Number of latents."""
        return int(self.sae.cfg.d_sae)

    # ------------------------------------------------------------------------------------------
    def normalize(self, acts_a: Any, acts_b: Any) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``(acts_a / scale_a, acts_b / scale_b)`` after checking widths and rows."""
        a, b = self._checked(acts_a, acts_b)
        return (a / np.float32(self.scale_a)).astype(np.float32), (b / np.float32(self.scale_b)).astype(np.float32)

    def _checked(self, acts_a: Any, acts_b: Any) -> tuple[np.ndarray, np.ndarray]:
        a, b = _pair_matrices(acts_a, acts_b)
        if a.shape[1] != self.d_a:
            raise ValueError(f"acts_a has {a.shape[1]} columns but the crosscoder's model A has d_a={self.d_a}")
        if b.shape[1] != self.d_b:
            raise ValueError(f"acts_b has {b.shape[1]} columns but the crosscoder's model B has d_b={self.d_b}")
        return a, b

    def encode(self, acts_a: Any, acts_b: Any, *, batch_size: int = 8192) -> sp.csr_matrix:
        """Latent activations: float32 CSR (n_rows, width) of the rows of both models (raw units in)."""
        import torch

        batch_size = check_positive_int(batch_size, "batch_size")
        a, b = self.normalize(acts_a, acts_b)
        x = np.concatenate([a, b], axis=1)
        blocks = []
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                z = self.sae.encode(torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size])))
                if z.is_sparse:
                    z = z.to_dense()
                blocks.append(sp.csr_matrix(z.float().cpu().numpy()))
        out = sp.vstack(blocks, format="csr").astype(np.float32)
        out.eliminate_zeros()
        return out

    def decode(self, latents: Any, *, units: Units = "original") -> tuple[np.ndarray, np.ndarray]:
        """``(recon_a, recon_b)`` float32 from (n_rows, width) latent activations (dense or sparse)."""
        check_choice(units, "units", ("original", "normalized"))
        z = latents.toarray() if sp.issparse(latents) else as_float_matrix(latents, "latents", dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.width:
            raise ValueError(f"latents must be (n_rows, width={self.width}); got {describe(latents)}")
        w = self.sae.W_dec.detach().cpu().double().numpy()
        bias = self.sae.b_dec.detach().cpu().double().numpy()
        x = z.astype(np.float64) @ w + bias
        ra, rb = x[:, : self.d_a], x[:, self.d_a:]
        if units == "original":
            ra, rb = ra * self.scale_a, rb * self.scale_b
        return ra.astype(np.float32), rb.astype(np.float32)

    def reconstruct(self, acts_a: Any, acts_b: Any, *, units: Units = "original") -> tuple[np.ndarray, np.ndarray]:
        """``decode(encode(acts_a, acts_b))``: both models' reconstructions, in ``units``."""
        return self.decode(self.encode(acts_a, acts_b), units=units)

    def decoder_blocks(self, *, units: Units = "original") -> tuple[np.ndarray, np.ndarray]:
        """``(W_dec_a (width, d_a), W_dec_b (width, d_b))`` float64.

        ``units="original"``: in the models' own units (latent j adds ``f_j * W_dec_a[j]`` to model A's
        activation); ``"normalized"``: in the training units, where the two models have the same total
        scale, which is the scale in which relative decoder norms compare the models.
        """
        check_choice(units, "units", ("original", "normalized"))
        w = self.sae.W_dec.detach().cpu().double().numpy()
        wa, wb = w[:, : self.d_a].copy(), w[:, self.d_a:].copy()
        if units == "original":
            wa *= self.scale_a
            wb *= self.scale_b
        return wa, wb

    def decoder_bias(self, *, units: Units = "original") -> tuple[np.ndarray, np.ndarray]:
        """``(b_dec_a (d_a,), b_dec_b (d_b,))`` float64, in ``units``."""
        check_choice(units, "units", ("original", "normalized"))
        bias = self.sae.b_dec.detach().cpu().double().numpy()
        ba, bb = bias[: self.d_a].copy(), bias[self.d_a:].copy()
        if units == "original":
            ba *= self.scale_a
            bb *= self.scale_b
        return ba, bb

    def metrics(self, acts_a: Any, acts_b: Any, *, exclusive_threshold: float = 0.1) -> dict[str, float]:
        """Reconstruction and sparsity on rows of both models.

        Returns fvu_a, fvu_b (each model's sum of squared errors / its total variance about the mean,
        scale-free), fvu (the same over the concatenated normalised activations), l0 (active latents per
        row), l0_a / l0_b (active latents per row that write to that model: relative decoder norm
        ``r = ||d_B|| / (||d_A|| + ||d_B||)`` below ``1 - exclusive_threshold`` for A, above
        ``exclusive_threshold`` for B), dead_fraction (latents that never fire on these rows),
        n_tokens, width.
        """
        from featgeom_tda.core._validation import check_number

        t = check_number(exclusive_threshold, "exclusive_threshold", low=0.0, high=0.5)
        a, b = self._checked(acts_a, acts_b)
        if a.shape[0] < 2:
            raise ValueError(f"acts_a and acts_b need at least 2 rows for a variance; got {a.shape[0]}")
        z = self.encode(a, b)
        ra, rb = self.decode(z, units="original")
        out: dict[str, float] = {}
        sse_sum = sst_sum = 0.0
        for name, x, r, s in (("a", a, ra, self.scale_a), ("b", b, rb, self.scale_b)):
            x64 = x.astype(np.float64)
            sse = float(((x64 - r) ** 2).sum())
            sst = float(((x64 - x64.mean(axis=0)) ** 2).sum())
            out[f"fvu_{name}"] = sse / sst if sst > 0 else float("nan")
            sse_sum += sse / s**2
            sst_sum += sst / s**2
        out["fvu"] = sse_sum / sst_sum if sst_sum > 0 else float("nan")
        wa, wb = self.decoder_blocks(units="normalized")
        na, nb = np.linalg.norm(wa, axis=1), np.linalg.norm(wb, axis=1)
        total = na + nb
        r = np.divide(nb, total, out=np.full_like(total, np.nan), where=total > 0)
        writes_a = (r < 1 - t) & np.isfinite(r)
        writes_b = (r > t) & np.isfinite(r)
        n = a.shape[0]
        active_per_latent = np.bincount(z.indices, minlength=self.width)
        out["l0"] = float(z.nnz / n)
        out["l0_a"] = float(active_per_latent[writes_a].sum() / n)
        out["l0_b"] = float(active_per_latent[writes_b].sum() / n)
        out["dead_fraction"] = float((active_per_latent == 0).mean())
        out["n_tokens"] = int(n)
        out["width"] = self.width
        return out

    # ------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the SAE (sae_lens format) and ``crosscoder.json`` into ``directory``."""
        from featgeom_tda.sources.saes import save_sae

        directory = Path(directory)
        save_sae(self.sae, directory)
        meta = {"format": _FORMAT, "scale_a": self.scale_a, "scale_b": self.scale_b, "d_a": self.d_a,
                "d_b": self.d_b, "config": self.config}  # fmt: skip
        (directory / CROSSCODER_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "cpu") -> "Crosscoder":
        """Read a crosscoder written by :meth:`save`."""
        return load_crosscoder(directory, device=device)


def load_crosscoder(directory: str | Path, *, device: str = "cpu") -> Crosscoder:
    """Read a crosscoder written by :meth:`Crosscoder.save` (``cfg.json``, weights, ``crosscoder.json``)."""
    from featgeom_tda.sources.saes import load_sae

    directory = Path(directory)
    path = directory / CROSSCODER_JSON
    if not path.exists():
        raise ValueError(f"directory {str(directory)!r} holds no {CROSSCODER_JSON}; expected a saved Crosscoder")
    meta = json.loads(path.read_text())
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a crosscoder file of format {_FORMAT!r}")
    unknown = set(meta) - {"format", "scale_a", "scale_b", "d_a", "d_b", "config"}
    if unknown:
        raise ValueError(f"{path} has unknown keys {sorted(unknown)}")
    sae = load_sae(directory, device=device)
    sae.eval()
    return Crosscoder(sae=sae, scale_a=meta["scale_a"], scale_b=meta["scale_b"], d_a=meta["d_a"], d_b=meta["d_b"],
                      config=dict(meta.get("config") or {}))  # fmt: skip


def train_crosscoder(
    acts_a: Any,
    acts_b: Any,
    *,
    width: int,
    k: int,
    steps: int | None = None,
    training_tokens: int | None = None,
    seed: int = 0,
    batch_size: int = 1024,
    lr: float = 3e-3,
    lr_end: float | None = None,
    lr_warm_up_steps: int | None = None,
    normalize: bool = True,
    init_b_dec_to_mean: bool = True,
    dead_feature_window: int | None = None,
    feature_sampling_window: int | None = None,
    sampling: Literal["epochs", "replacement"] = "epochs",
    model_names: tuple[str | None, str | None] = (None, None),
    hook_names: tuple[str | None, str | None] = (None, None),
    device: str = "cpu",
    progress: bool = False,
) -> Crosscoder:
    """Train an acausal TopK crosscoder on two models' activations over the same rows.

    Args:
        acts_a, acts_b: (n, d_a) and (n, d_b) activations; row i of both is the same token.
        width: number of latents; k: active latents per row (TopK).
        steps / training_tokens: training length (one of them; default 2,000 steps).
        seed: initial weights and batch order.
        batch_size, lr, lr_end, lr_warm_up_steps, normalize, init_b_dec_to_mean, dead_feature_window,
            feature_sampling_window, sampling, device, progress: passed to
            :func:`featgeom_tda.sources.saes.train_sae` (``normalize`` rescales the concatenated input by
            one global factor while training, which leaves the two models' relative weight unchanged).
        model_names, hook_names: recorded in the config (the SAE's metadata records ``"A+B"`` names).

    Each model's activations are divided by their root mean squared norm before concatenation, so each
    part has mean squared norm 1. Returns a :class:`Crosscoder` whose decoder rows have unit norm over
    the concatenated (normalised) space.
    """
    import torch

    from featgeom_tda.sources.saes import train_sae

    a, b = _pair_matrices(acts_a, acts_b)
    width = check_positive_int(width, "width")
    k = check_positive_int(k, "k")
    if k > width:
        raise ValueError(f"k={k} must be at most width={width}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer; got {seed!r}")
    for name, pair in (("model_names", model_names), ("hook_names", hook_names)):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                and all(v is None or isinstance(v, str) for v in pair)):  # fmt: skip
            raise ValueError(f"{name} must be a pair (name_a, name_b) of strings or None; got {pair!r}")
    scale_a, scale_b = _rms_norm(a, "acts_a"), _rms_norm(b, "acts_b")
    x = np.concatenate([a / np.float32(scale_a), b / np.float32(scale_b)], axis=1).astype(np.float32)

    def joined(pair: tuple[str | None, str | None]) -> str | None:
        return None if pair[0] is None and pair[1] is None else f"{pair[0]}+{pair[1]}"

    sae = train_sae(
        torch.from_numpy(x), width=width, architecture="topk", k=k, steps=steps, training_tokens=training_tokens,
        batch_size=batch_size, lr=lr, lr_end=lr_end, lr_warm_up_steps=lr_warm_up_steps, normalize=normalize,
        init_b_dec_to_mean=init_b_dec_to_mean, dead_feature_window=dead_feature_window,
        feature_sampling_window=feature_sampling_window, sampling=sampling, seed=int(seed), device=device,
        progress=progress, hook_name=joined(tuple(hook_names)), model_name=joined(tuple(model_names)),
    )  # fmt: skip
    config = {
        "architecture": "topk", "width": width, "k": k, "steps": int(sae.cfg.metadata.featgeom_training_steps),
        "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed), "sampling": sampling,
        "normalize": bool(normalize), "n_rows": int(a.shape[0]), "model_names": list(model_names),
        "hook_names": list(hook_names),
    }  # fmt: skip
    return Crosscoder(sae=sae, scale_a=scale_a, scale_b=scale_b, d_a=a.shape[1], d_b=b.shape[1], config=config)
