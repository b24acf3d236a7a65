"""How well an SAE's decoder recovers known ground-truth feature directions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from featgeom_tda.core._validation import as_float_matrix, check_fraction, check_positive_int

__all__ = ["decoder_directions", "encode_synthetic", "RecoveryReport", "hungarian_mcc", "sae_recovery"]


def decoder_directions(sae: Any) -> np.ndarray:
    """float64 (n_latents, d) unit decoder rows of an SAE (zero rows stay zero)."""
    w = sae.W_dec.detach().cpu().double().numpy()
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    return w / np.where(norms > 0, norms, 1.0)


def encode_synthetic(sae: Any, acts: Any, *, batch_size: int = 8192, provenance: Any = None):
    """Encode (n_samples, d) activations with an SAE into :class:`~featgeom_tda.core.types.FeatureActivations`."""
    import torch

    from featgeom_tda.core.types import FeatureActivations

    x = as_float_matrix(acts, "acts", dtype=np.float32)
    batch_size = check_positive_int(batch_size, "batch_size")
    d_in = int(sae.W_dec.shape[1])
    if x.shape[1] != d_in:
        raise ValueError(f"acts has {x.shape[1]} columns but the SAE expects d_in = {d_in}")
    blocks = []
    was_training = sae.training
    sae.eval()
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                z = sae.encode(torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size])))
                if z.is_sparse:
                    z = z.to_dense()
                blocks.append(sp.csr_matrix(z.float().numpy()))
    finally:
        sae.train(was_training)
    return FeatureActivations(sp.vstack(blocks, format="csr"), provenance=provenance)


@dataclass
class RecoveryReport:
    """How well an SAE's decoder recovers known feature directions.

    Attributes:
        mean_max_cosine: mean over true features of the best cosine to any decoder row.
        mcc: mean cosine of the one-to-one (Hungarian) assignment of true features to latents, averaged
            over ``min(n_true, n_latents)`` assigned pairs (signed cosines, maximised).
        dead_fraction: fraction of latents that never fire on the given activations.
        l0: mean number of active latents per sample.
        explained_variance: ``1 - |x - x_hat|^2 / |x - mean(x)|^2`` summed over samples.
        latent_to_true: int64 (n_latents,) best true feature of each latent; latent_cosine: its cosine.
        true_to_latent: int64 (n_true,) best latent of each true feature; true_cosine: its cosine.
        assignment: int64 (n_assigned, 2) Hungarian pairs (true feature, latent).
        threshold: cosine above which a true feature counts as recovered.
        recovered_fraction: fraction of true features with best cosine >= threshold.
    """

    mean_max_cosine: float
    mcc: float
    dead_fraction: float
    l0: float
    explained_variance: float
    latent_to_true: np.ndarray
    latent_cosine: np.ndarray
    true_to_latent: np.ndarray
    true_cosine: np.ndarray
    assignment: np.ndarray
    threshold: float
    recovered_fraction: float

    def to_dict(self) -> dict[str, Any]:
        """Scalars only (the per-latent arrays are left out)."""
        return {
            "mean_max_cosine": self.mean_max_cosine,
            "mcc": self.mcc,
            "dead_fraction": self.dead_fraction,
            "l0": self.l0,
            "explained_variance": self.explained_variance,
            "threshold": self.threshold,
            "recovered_fraction": self.recovered_fraction,
            "n_latents": int(self.latent_to_true.shape[0]),
            "n_true": int(self.true_to_latent.shape[0]),
        }


def hungarian_mcc(cosines: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean of the one-to-one assignment maximising the summed cosine of a (n_true, n_latents) matrix.

    Returns ``(mcc, pairs)`` with ``pairs`` int64 (min(n_true, n_latents), 2) of (row, column).
    """
    c = as_float_matrix(cosines, "cosines")
    rows, cols = linear_sum_assignment(c, maximize=True)
    return float(c[rows, cols].mean()), np.stack([rows, cols], axis=1).astype(np.int64)


def sae_recovery(sae: Any, true_directions: Any, acts: Any, *, threshold: float = 0.9) -> RecoveryReport:
    """Score an SAE against ground-truth directions.

    Args:
        sae: an SAE with ``W_dec`` (n_latents, d) and ``encode`` / ``decode``.
        true_directions: (n_true, d) ground-truth directions (need not be unit).
        acts: (n_samples, d) activations to measure dead latents, L0 and explained variance on.
        threshold: cosine at which a true feature counts as recovered.

    Returns:
        :class:`RecoveryReport`.
    """
    import torch

    truth = as_float_matrix(true_directions, "true_directions")
    x = as_float_matrix(acts, "acts", dtype=np.float32)
    threshold = check_fraction(threshold, "threshold")
    dec = decoder_directions(sae)
    if truth.shape[1] != dec.shape[1]:
        raise ValueError(
            f"true_directions has {truth.shape[1]} columns but the SAE decoder has d = {dec.shape[1]}"
        )
    if x.shape[1] != dec.shape[1]:
        raise ValueError(f"acts has {x.shape[1]} columns but the SAE decoder has d = {dec.shape[1]}")
    norms = np.linalg.norm(truth, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"true_directions has {int((norms == 0).sum())} zero rows; directions must be non-zero")
    cos = (truth / norms) @ dec.T  # (n_true, n_latents)
    mcc, pairs = hungarian_mcc(cos)

    codes = encode_synthetic(sae, x)
    active = codes.matrix
    firing = np.bincount(active.indices, minlength=dec.shape[0])
    with torch.no_grad():
        recon = sae.decode(codes.to_torch(sparse=False)).double().numpy()
    x64 = x.astype(np.float64)
    resid = ((x64 - recon) ** 2).sum()
    total = ((x64 - x64.mean(axis=0)) ** 2).sum()
    return RecoveryReport(
        mean_max_cosine=float(cos.max(axis=1).mean()),
        mcc=mcc,
        dead_fraction=float((firing == 0).mean()),
        l0=float(active.nnz / active.shape[0]),
        explained_variance=float(1 - resid / total) if total > 0 else float("nan"),
        latent_to_true=cos.argmax(axis=0).astype(np.int64),
        latent_cosine=cos.max(axis=0),
        true_to_latent=cos.argmax(axis=1).astype(np.int64),
        true_cosine=cos.max(axis=1),
        assignment=pairs,
        threshold=threshold,
        recovered_fraction=float((cos.max(axis=1) >= threshold).mean()),
    )

