"""Two synthetic "models" that share known ground-truth features.

The generator draws one set of sparse latent features (the *union*): ``n_shared`` features that both models
represent, ``n_private_a`` only model A represents and ``n_private_b`` only model B represents. Every
feature fires on the same samples (rows = "tokens") in both models, so a shared feature is perfectly
correlated across the two models, and private features fire independently of everything in the other
model. Each model then embeds its own features:

- a common base geometry: one unit direction per union feature in a ``d_latent``-dimensional space
  (a :class:`sae_lens.synthetic.FeatureDictionary`, with features in superposition when the union is
  larger than ``d_latent``);
- a model-specific random isometry from that space into the model's own dimension (``d_a`` or ``d_b``),
  so shared features have the same geometry in both models up to a rotation, and nothing else;
- model-specific per-feature magnitudes and column order (A orders its features by decreasing firing
  probability, B uses a random order).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._validation import check_choice, check_positive_int

__all__ = ["SyntheticPair", "make_synthetic_pair"]


@dataclass
class SyntheticPair:
    """Activations of two synthetic models on the same samples, with the ground truth.

    Union feature ids: ``0 .. n_shared-1`` are shared, the next ``n_private_a`` are private to A, the
    last ``n_private_b`` private to B.

    Attributes:
        acts_a, acts_b: float32 (n_samples, d_a) and (n_samples, d_b) model activations; row i of both is
            the same sample.
        directions_a, directions_b: float32 (n_features_a, d_a) / (n_features_b, d_b) unit ground-truth
            directions, in each model's own feature order.
        magnitudes_a, magnitudes_b: float32 (n_features_*,) per-feature scale in each model.
        union_index_a, union_index_b: int64 (n_features_*,) union id of each model feature.
        latents: float32 CSR (n_samples, n_union) union latent values before the per-model scale; a
            feature fires on row i when ``latents[i, u] > 0``.
        firing_probabilities: float64 (n_union,) firing probability of each union feature.
        base_directions: float32 (n_union, d_latent) common geometry.
        embedding_a, embedding_b: float32 (d_latent, d_a) / (d_latent, d_b) isometries (orthonormal rows).
        n_shared, n_private_a, n_private_b: feature counts.
        config: the generator's options.
    """

    acts_a: np.ndarray
    acts_b: np.ndarray
    directions_a: np.ndarray
    directions_b: np.ndarray
    magnitudes_a: np.ndarray
    magnitudes_b: np.ndarray
    union_index_a: np.ndarray
    union_index_b: np.ndarray
    latents: sp.csr_matrix
    firing_probabilities: np.ndarray
    base_directions: np.ndarray
    embedding_a: np.ndarray
    embedding_b: np.ndarray
    n_shared: int
    n_private_a: int
    n_private_b: int
    config: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"SyntheticPair(n_samples={self.n_samples}, n_shared={self.n_shared}, "
            f"n_private_a={self.n_private_a}, n_private_b={self.n_private_b}, "
            f"d_a={self.acts_a.shape[1]}, d_b={self.acts_b.shape[1]})"
        )

    @property
    def n_samples(self) -> int:
        return int(self.acts_a.shape[0])

    @property
    def n_union(self) -> int:
        return self.n_shared + self.n_private_a + self.n_private_b

    @property
    def n_features_a(self) -> int:
        return int(self.union_index_a.shape[0])

    @property
    def n_features_b(self) -> int:
        return int(self.union_index_b.shape[0])

    @property
    def is_shared_a(self) -> np.ndarray:
        """Bool (n_features_a,): which of A's features are shared."""
        return self.union_index_a < self.n_shared

    @property
    def is_shared_b(self) -> np.ndarray:
        """Bool (n_features_b,): which of B's features are shared."""
        return self.union_index_b < self.n_shared

    @property
    def shared_a(self) -> np.ndarray:
        """int64 (n_shared,): A's index of shared feature s (union id s), aligned with :attr:`shared_b`."""
        return _inverse_positions(self.union_index_a, np.arange(self.n_shared))

    @property
    def shared_b(self) -> np.ndarray:
        """int64 (n_shared,): B's index of shared feature s, so ``(shared_a[s], shared_b[s])`` is one feature."""
        return _inverse_positions(self.union_index_b, np.arange(self.n_shared))

    @property
    def private_a(self) -> np.ndarray:
        """int64: A's indices of its private features (increasing)."""
        return np.flatnonzero(~self.is_shared_a)

    @property
    def private_b(self) -> np.ndarray:
        """int64: B's indices of its private features (increasing)."""
        return np.flatnonzero(~self.is_shared_b)

    def latents_a(self) -> sp.csr_matrix:
        """float32 CSR (n_samples, n_features_a): A's feature coefficients, ``acts_a ≈ latents_a @ directions_a``."""
        return _scaled_columns(self.latents, self.union_index_a, self.magnitudes_a)

    def latents_b(self) -> sp.csr_matrix:
        """float32 CSR (n_samples, n_features_b): B's feature coefficients."""
        return _scaled_columns(self.latents, self.union_index_b, self.magnitudes_b)

    def expected_l0(self, model: Literal["a", "b"]) -> float:
        """Expected number of true features firing per sample in one model."""
        check_choice(model, "model", ("a", "b"))
        idx = self.union_index_a if model == "a" else self.union_index_b
        return float(self.firing_probabilities[idx].sum())

    def model(self, model: Literal["a", "b"]) -> tuple[np.ndarray, np.ndarray]:
        """``(acts, directions)`` of one model."""
        check_choice(model, "model", ("a", "b"))
        if model == "a":
            return self.acts_a, self.directions_a
        return self.acts_b, self.directions_b


def _inverse_positions(order: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Position in ``order`` of each value of ``ids`` (every id occurs exactly once in ``order``)."""
    where = np.empty(int(order.max()) + 1 if order.size else 0, dtype=np.int64)
    where[order] = np.arange(order.size)
    return where[ids].astype(np.int64)


def _scaled_columns(latents: sp.csr_matrix, columns: np.ndarray, scale: np.ndarray) -> sp.csr_matrix:
    sub = latents[:, columns].tocsr()
    return (sub @ sp.diags(scale.astype(np.float32))).tocsr().astype(np.float32)


def _pair_range(value: Any, name: str, *, low: float, high: float | None) -> tuple[float, float]:
    """A number ``v`` (-> (v, v)) or a pair ``(lo, hi)`` with low <= lo <= hi (<= high)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        lo = hi = float(value)
    else:
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or a pair (low, high); got {value!r}") from None
    upper = f" and <= {high}" if high is not None else ""
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or lo < low or (high is not None and hi > high):
        raise ValueError(f"{name} must satisfy {low} <= low <= high{upper}; got {value!r}")
    return lo, hi


@contextmanager
def _torch_seed(seed: int) -> Iterator[None]:
    """Seed torch's default CPU generator inside the block and restore its previous state afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def _random_isometry(rng: np.random.Generator, d_in: int, d_out: int) -> np.ndarray:
    """(d_in, d_out) matrix with orthonormal rows, uniformly random (QR of a Gaussian, sign-fixed)."""
    g = rng.standard_normal((d_out, d_in))
    q, r = np.linalg.qr(g)
    q = q * np.sign(np.diag(r))
    return q.T


MAX_SYNTHETIC_BYTES = 8 * 2**30  # a pair bigger than this is refused before anything is drawn


def _check_memory(n_union: int, d_a: int, d_b: int, d_latent: int, n_samples: int, p_max: float,
                  correlated: bool) -> None:
    """Refuse (ValueError) a pair whose largest arrays would pass :data:`MAX_SYNTHETIC_BYTES`."""
    parts = {
        "activations (n_samples x (d_a + d_b))": n_samples * (d_a + d_b) * 12.0,  # float64 product, float32 kept
        "directions (features x widths)": n_union * (d_latent + 2 * max(d_a, d_b)) * 12.0,
        "latent draws (8192 x features)": min(n_samples, 8192) * n_union * 16.0,
        "latent codes (sparse)": n_samples * n_union * p_max * 12.0,
        "correlation matrix (features x features)": (n_union * n_union * 16.0) if correlated else 0.0,
    }
    total = sum(parts.values())
    if total > MAX_SYNTHETIC_BYTES:
        biggest = max(parts, key=parts.get)
        raise ValueError(
            f"this synthetic pair needs an estimated {total / 2**30:.1f} GiB (most for {biggest}); the limit is "
            f"{MAX_SYNTHETIC_BYTES / 2**30:.0f} GiB (MAX_SYNTHETIC_BYTES): use fewer samples, features or dimensions"
        )


def make_synthetic_pair(
    *,
    n_shared: int,
    n_private_a: int,
    n_private_b: int,
    d_a: int,
    d_b: int,
    n_samples: int,
    seed: int = 0,
    d_latent: int | None = None,
    firing_prob: float | tuple[float, float] = (0.02, 0.06),
    zipf_exponent: float = 1.0,
    correlated: bool | float = False,
    magnitude: float | tuple[float, float] = (1.0, 1.5),
    magnitude_std: float = 0.1,
    direction_noise: float = 0.0,
    noise: float = 0.0,
    orthogonalize: bool = True,
) -> SyntheticPair:
    """Draw two synthetic models whose activations share ``n_shared`` ground-truth features.

    Args:
        n_shared, n_private_a, n_private_b: numbers of shared and private features (>= 0; each model
            needs at least one feature).
        d_a, d_b: activation widths of the two models (each >= ``d_latent``).
        n_samples: number of samples (rows, "tokens"), the same for both models.
        seed: seed for everything random here.
        d_latent: dimension of the common base geometry; default ``min(d_a, d_b)``. Features are in
            superposition when ``n_union > d_latent``.
        firing_prob: ``(min, max)`` Zipf-distributed firing probabilities over the union (most frequent
            feature gets ``max``; assigned to union features in random order), or one number for all.
        zipf_exponent: exponent of the Zipf law (> 0).
        correlated: False for independent firing; True (max correlation 0.5) or a float in (0, 1) for
            correlated firing through a random Gaussian-copula correlation matrix over the union.
        magnitude: each model draws its per-feature scale uniformly from this ``(low, high)`` range (or
            uses one number); the two models draw independently.
        magnitude_std: relative per-firing spread of the latent value (shared by both models).
        direction_noise: per-model perturbation of the embedded directions (0 = the shared geometry is
            exactly the same up to rotation).
        noise: standard deviation of isotropic Gaussian noise added to each model's activations.
        orthogonalize: spread the base directions apart with sae_lens's orthogonal initializer.

    Returns:
        :class:`SyntheticPair`.
    """
    import torch
    from sae_lens.synthetic import (
        ActivationGenerator,
        FeatureDictionary,
        generate_random_correlation_matrix,
        orthogonal_initializer,
        zipfian_firing_probabilities,
    )

    n_shared = check_positive_int(n_shared, "n_shared", minimum=0)
    n_private_a = check_positive_int(n_private_a, "n_private_a", minimum=0)
    n_private_b = check_positive_int(n_private_b, "n_private_b", minimum=0)
    if n_shared + n_private_a == 0:
        raise ValueError("n_shared + n_private_a must be >= 1 so that model A has a feature; got 0")
    if n_shared + n_private_b == 0:
        raise ValueError("n_shared + n_private_b must be >= 1 so that model B has a feature; got 0")
    d_a = check_positive_int(d_a, "d_a")
    d_b = check_positive_int(d_b, "d_b")
    n_samples = check_positive_int(n_samples, "n_samples", minimum=2)
    seed = check_positive_int(seed, "seed", minimum=0)
    if d_latent is None:
        d_latent = min(d_a, d_b)
    d_latent = check_positive_int(d_latent, "d_latent")
    if d_latent > min(d_a, d_b):
        raise ValueError(f"d_latent must be <= min(d_a, d_b) = {min(d_a, d_b)}; got {d_latent}")
    p_lo, p_hi = _pair_range(firing_prob, "firing_prob", low=0.0, high=1.0)
    if p_lo <= 0:
        raise ValueError(f"firing_prob must be > 0; got {firing_prob!r}")
    if not (isinstance(zipf_exponent, (int, float)) and zipf_exponent > 0 and math.isfinite(zipf_exponent)):
        raise ValueError(f"zipf_exponent must be a positive number; got {zipf_exponent!r}")
    if isinstance(correlated, bool):
        max_corr = 0.5 if correlated else 0.0
    else:
        max_corr = float(correlated)
        if not 0 < max_corr < 1:
            raise ValueError(f"correlated must be a bool or a number in (0, 1); got {correlated!r}")
    m_lo, m_hi = _pair_range(magnitude, "magnitude", low=0.0, high=None)
    if m_lo <= 0:
        raise ValueError(f"magnitude must be > 0; got {magnitude!r}")
    for value, name in ((magnitude_std, "magnitude_std"), (direction_noise, "direction_noise"), (noise, "noise")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")

    _check_memory(n_shared + n_private_a + n_private_b, d_a, d_b, d_latent, n_samples, p_hi, max_corr > 0)

    config = {
        "n_shared": n_shared, "n_private_a": n_private_a, "n_private_b": n_private_b, "d_a": d_a, "d_b": d_b,
        "n_samples": n_samples, "seed": seed, "d_latent": d_latent, "firing_prob": [p_lo, p_hi],
        "zipf_exponent": float(zipf_exponent), "correlated": max_corr, "magnitude": [m_lo, m_hi],
        "magnitude_std": float(magnitude_std), "direction_noise": float(direction_noise), "noise": float(noise),
        "orthogonalize": bool(orthogonalize),
    }  # fmt: skip
    rng = np.random.default_rng(seed)
    torch_seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=4)]
    n_union = n_shared + n_private_a + n_private_b

    # firing probabilities: a Zipf law over the union, assigned to union ids in random order
    if p_lo == p_hi or n_union == 1:
        probs = np.full(n_union, p_hi)
    else:
        zipf = zipfian_firing_probabilities(n_union, exponent=float(zipf_exponent), max_prob=p_hi, min_prob=p_lo)
        probs = zipf.double().numpy()[rng.permutation(n_union)]

    # common geometry of the union features
    init = orthogonal_initializer() if orthogonalize else None
    with _torch_seed(torch_seeds[0]):
        base = FeatureDictionary(n_union, d_latent, initializer=init, seed=torch_seeds[0])
    base_dirs = base.feature_vectors.detach().double().numpy()

    # latent values for the union, drawn once so that shared features fire on the same rows in both models
    correlation = None
    if max_corr > 0 and n_union > 1:
        correlation = generate_random_correlation_matrix(
            n_union, min_correlation_strength=min(0.1, max_corr), max_correlation_strength=max_corr,
            seed=torch_seeds[1], dtype=torch.float64,
        )  # fmt: skip
    with _torch_seed(torch_seeds[2]):
        generator = ActivationGenerator(
            n_union,
            torch.as_tensor(probs, dtype=torch.float64),
            std_firing_magnitudes=float(magnitude_std),
            mean_firing_magnitudes=1.0,
            correlation_matrix=correlation,
            dtype="float64",
        )
        blocks = []
        for start in range(0, n_samples, 8192):
            z = generator.sample(min(8192, n_samples - start)).numpy()
            blocks.append(sp.csr_matrix(z.astype(np.float32)))
    latents = sp.vstack(blocks, format="csr")
    latents.eliminate_zeros()

    # model feature sets and column orders: A by decreasing firing probability, B random
    ids_a = np.concatenate([np.arange(n_shared), n_shared + np.arange(n_private_a)])
    ids_b = np.concatenate([np.arange(n_shared), n_shared + n_private_a + np.arange(n_private_b)])
    tie_break = rng.random(ids_a.size)
    union_index_a = ids_a[np.lexsort((tie_break, -probs[ids_a]))].astype(np.int64)
    union_index_b = ids_b[rng.permutation(ids_b.size)].astype(np.int64)
    magnitudes_a = rng.uniform(m_lo, m_hi, size=union_index_a.size)
    magnitudes_b = rng.uniform(m_lo, m_hi, size=union_index_b.size)

    def embed(union_index: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
        iso = _random_isometry(rng, d_latent, d)
        dirs = base_dirs[union_index] @ iso
        if direction_noise > 0:
            dirs = dirs + direction_noise * rng.standard_normal(dirs.shape) / math.sqrt(d)
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        return dirs, iso

    directions_a, embedding_a = embed(union_index_a, d_a)
    directions_b, embedding_b = embed(union_index_b, d_b)

    def activations(union_index, magnitudes, directions) -> np.ndarray:
        coeff = _scaled_columns(latents, union_index, magnitudes).astype(np.float64)
        acts = np.asarray(coeff @ directions)
        if noise > 0:
            acts = acts + noise * rng.standard_normal(acts.shape)
        return acts.astype(np.float32)

    acts_a = activations(union_index_a, magnitudes_a, directions_a)
    acts_b = activations(union_index_b, magnitudes_b, directions_b)
    return SyntheticPair(
        acts_a=acts_a,
        acts_b=acts_b,
        directions_a=directions_a.astype(np.float32),
        directions_b=directions_b.astype(np.float32),
        magnitudes_a=magnitudes_a.astype(np.float32),
        magnitudes_b=magnitudes_b.astype(np.float32),
        union_index_a=union_index_a,
        union_index_b=union_index_b,
        latents=latents,
        firing_probabilities=probs.astype(np.float64),
        base_directions=base_dirs.astype(np.float32),
        embedding_a=embedding_a.astype(np.float32),
        embedding_b=embedding_b.astype(np.float32),
        n_shared=n_shared,
        n_private_a=n_private_a,
        n_private_b=n_private_b,
        config=config,
    )
