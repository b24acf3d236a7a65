"""Two synthetic "models" that share known ground-truth features, and an end-to-end check against the truth.

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

On top of the generator: :func:`train_synthetic_sae` (TopK or standard SAE trained with ``sae_lens``),
:func:`sae_recovery` (how well an SAE's decoder recovers the true directions) and :func:`check_pipeline`
(train SAEs on both models, match their latents with :func:`featgeom_tda.analyses.matching.match_features`, then
score precision / recall of the matching and similarity of shared vs private subspaces with
:mod:`featgeom_tda.analyses.geometry`, each against a random-pairing permutation null).
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from featgeom_tda.core._validation import (
    as_float_matrix,
    check_choice,
    check_fraction,
    check_positive_int,
)

__all__ = [
    "SyntheticPair",
    "make_synthetic_pair",
    "train_synthetic_sae",
    "encode_synthetic",
    "decoder_directions",
    "RecoveryReport",
    "sae_recovery",
    "hungarian_mcc",
    "Scorecard",
    "check_pipeline",
    "scorecard_sweep",
    "sweep_markdown",
    "run_synthetic_check",
]

logger = logging.getLogger(__name__)

Architecture = Literal["topk", "standard"]
GEOMETRY_METRICS = ("svcca", "cka", "rsa")
# Decoder rows are compared up to each model's rotation: the cosine RDM is rotation invariant, the
# correlation RDM (rows centred over their coordinates) is not.
DEFAULT_METRIC_OPTIONS: dict[str, dict[str, Any]] = {"rsa": {"rdm": "cosine"}}


# ================================================================================================
# Generator
# ================================================================================================


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


# ================================================================================================
# SAE training and recovery
# ================================================================================================


def train_synthetic_sae(
    acts: Any,
    *,
    width: int,
    architecture: Architecture = "topk",
    k: int | None = None,
    l1_coefficient: float = 0.3,
    steps: int = 1000,
    batch_size: int = 2048,
    lr: float = 1e-2,
    dead_feature_window: int = 100,
    seed: int = 0,
    progress: bool = False,
):
    """Train a TopK or standard (ReLU + L1) SAE with ``sae_lens`` on a fixed activation matrix.

    Batches are drawn uniformly with replacement from the rows of ``acts`` with a seeded generator; the
    weights are initialised under a seeded, restored torch generator, so the result depends only on the
    arguments. The learning rate decays from ``lr`` to ``lr / 10`` (cosine).

    Args:
        acts: (n_samples, d) activations (numpy or torch).
        width: number of SAE latents.
        architecture: "topk" or "standard".
        k: active latents per sample for "topk" (required there).
        l1_coefficient: sparsity penalty for "standard" (0.3 suits activations of norm about 1, as the
            generator's defaults give).
        steps, batch_size, lr: optimisation budget.
        dead_feature_window: steps without firing after which a latent counts as dead (TopK's auxiliary
            loss then trains it on the residual).
        seed: seed for initialisation and batch order.
        progress: show a progress bar.

    Returns:
        The trained ``sae_lens`` training SAE (``encode``, ``decode``, ``W_dec`` of shape (width, d)).
    """
    import torch
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer
    from tqdm.auto import tqdm

    x = as_float_matrix(acts, "acts", dtype=np.float32, min_rows=2)
    width = check_positive_int(width, "width")
    check_choice(architecture, "architecture", ("topk", "standard"))
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    dead_feature_window = check_positive_int(dead_feature_window, "dead_feature_window")
    seed = check_positive_int(seed, "seed", minimum=0)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number; got {lr!r}")
    if architecture == "topk":
        if k is None:
            raise ValueError("k must be given for architecture='topk' (active latents per sample); got None")
        k = check_positive_int(k, "k")
        if k > width:
            raise ValueError(f"k must be <= width ({width}); got {k}")
    elif not (isinstance(l1_coefficient, (int, float)) and math.isfinite(l1_coefficient) and l1_coefficient >= 0):
        raise ValueError(f"l1_coefficient must be a finite number >= 0; got {l1_coefficient!r}")

    d_in = int(x.shape[1])
    data = torch.from_numpy(np.ascontiguousarray(x))
    with _torch_seed(seed):
        sae = _new_training_sae(architecture, d_in=d_in, width=width, k=k, l1_coefficient=l1_coefficient)
        trainer_cfg = SAETrainerConfig(
            total_training_samples=steps * batch_size,
            train_batch_size_samples=batch_size,
            lr=float(lr),
            lr_end=float(lr) / 10,
            lr_scheduler_name="cosineannealing",
            dead_feature_window=dead_feature_window,
            feature_sampling_window=max(steps + 1, 2),
            logger=LoggingConfig(log_to_wandb=False),
        )
        trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=iter(()))
        batches = torch.Generator().manual_seed(seed)
        for _ in tqdm(range(steps), desc=f"training {architecture} SAE", disable=not progress, leave=False):
            rows = torch.randint(0, data.shape[0], (batch_size,), generator=batches)
            trainer.step(data[rows])
            trainer.n_training_steps += 1
        trainer.set_final_sae_metadata()
    sae.eval()
    return sae


def _new_training_sae(architecture: str, *, d_in: int, width: int, k: int | None, l1_coefficient: float):
    if architecture == "topk":
        from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

        return TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=width, k=int(k)))  # type: ignore[arg-type]
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig

    return StandardTrainingSAE(
        StandardTrainingSAEConfig(d_in=d_in, d_sae=width, l1_coefficient=float(l1_coefficient))
    )


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


# ================================================================================================
# End-to-end check of matching and geometry against the truth
# ================================================================================================


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    v = float(value)
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f}"


def _fmt_p(p: Any) -> str:
    if p is None or not math.isfinite(float(p)):
        return "n/a"
    return f"{float(p):.3f}" if p >= 0.001 else f"{float(p):.1e}"


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Scorecard:
    """Matching and geometry of two synthetic models' SAEs, scored against the ground truth.

    A latent *corresponds* to a true feature when the cosine between its decoder row and the feature's
    direction is at least ``cosine_threshold`` (the best such feature). A matched pair is *correct* when
    both latents correspond to the same shared feature.

    Attributes:
        precision: correct pairs / kept pairs (NaN without pairs).
        precision_same_feature: kept pairs whose two latents have the same shared feature as their best
            match, at any cosine / kept pairs (separates wrong partners from imperfect or split latents).
        recall: shared features with at least one correct pair / n_shared (NaN without shared features).
        recall_recovered: the same over shared features that both SAEs recovered (separates matching
            errors from SAE errors).
        private_fp_rate: latents corresponding to private features that appear in a kept pair / all such
            latents, over both SAEs (NaN without private latents).
        geometry: subspace ("shared", "private", "matched") -> metric -> {"score", "null_mean", "null_std",
            "z_score", "p_value", "n_rows"}; "shared" pairs the best latents of each shared feature by the
            truth, "private" pairs the best latents of A's and B's private features in index order (an
            arbitrary pairing: one draw from the null, so its p-value is uniform and its z-score small),
            "matched" uses the kept pairs of the matching. With no more rows than dimensions SVCCA
            saturates at 1 for every pairing (z = 0, p = 1).
        recovery_a, recovery_b: :class:`RecoveryReport` of each SAE.
        matching: the :class:`~featgeom_tda.core.types.FeatureMatching` that was scored.
        counts: pair and latent counts behind the rates.
        config: options of the run and of the generator.
    """

    precision: float
    precision_same_feature: float
    recall: float
    recall_recovered: float
    private_fp_rate: float
    geometry: dict[str, dict[str, dict[str, float]]]
    recovery_a: RecoveryReport
    recovery_b: RecoveryReport
    matching: Any
    counts: dict[str, int]
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (NaN -> None)."""
        return _nan_to_none(
            {
                "precision": self.precision,
                "precision_same_feature": self.precision_same_feature,
                "recall": self.recall,
                "recall_recovered": self.recall_recovered,
                "private_fp_rate": self.private_fp_rate,
                "counts": dict(self.counts),
                "geometry": self.geometry,
                "recovery_a": self.recovery_a.to_dict(),
                "recovery_b": self.recovery_b.to_dict(),
                "matching": self.matching.to_dict(),
                "config": self.config,
            }
        )

    def to_markdown(self) -> str:
        """Two markdown tables: matching vs truth, and subspace similarity vs the random-pairing null."""
        c = self.counts
        summary = [
            ("SAE recovery MCC (A / B)", f"{_fmt(self.recovery_a.mcc)} / {_fmt(self.recovery_b.mcc)}"),
            ("dead latents (A / B)", f"{_fmt(self.recovery_a.dead_fraction)} / {_fmt(self.recovery_b.dead_fraction)}"),
            ("kept pairs (correct)", f"{c['n_pairs']} ({c['n_correct']})"),
            ("precision (both latents at cosine >= threshold)", _fmt(self.precision)),
            ("precision (same best feature, any cosine)", _fmt(self.precision_same_feature)),
            ("recall (all shared)", f"{_fmt(self.recall)} of {c['n_shared']}"),
            ("recall (shared, recovered by both SAEs)", f"{_fmt(self.recall_recovered)} of {c['n_shared_recovered']}"),
            ("private false-positive rate", f"{_fmt(self.private_fp_rate)} ({c['n_private_matched']} of "
             f"{c['n_private_latents']} private latents)"),
        ]  # fmt: skip
        parts = [
            _markdown_table(["matching vs truth", "value"], [list(r) for r in summary]),
            "",
            _markdown_table(
                ["subspace", "metric", "rows", "score", "null mean ± std", "z", "p"],
                [
                    [
                        subspace,
                        metric,
                        str(r["n_rows"]),
                        _fmt(r["score"]),
                        f"{_fmt(r['null_mean'])} ± {_fmt(r['null_std'])}",
                        _fmt(r["z_score"], 1),
                        _fmt_p(r["p_value"]),
                    ]
                    for subspace, by_metric in self.geometry.items()
                    for metric, r in by_metric.items()
                ],
            ),
        ]
        return "\n".join(parts)


def _latent_labels(report: RecoveryReport, union_index: np.ndarray, cosine_threshold: float) -> np.ndarray:
    """Union id of the true feature each latent corresponds to, -1 where its best cosine is too low."""
    labels = union_index[report.latent_to_true].astype(np.int64)
    labels[report.latent_cosine < cosine_threshold] = -1
    return labels


def _best_latents(report: RecoveryReport, features: np.ndarray, cosine_threshold: float) -> np.ndarray:
    """Best latent of each true feature in ``features``, -1 where none reaches the threshold."""
    best = report.true_to_latent[features].astype(np.int64)
    best[report.true_cosine[features] < cosine_threshold] = -1
    return best


def _z_score(score: float, null_mean: float, null_std: float) -> float:
    """(score - null mean) / null std; 0 when a spread-less null equals the score (a saturated metric)."""
    if null_std > 0:
        return float((score - null_mean) / null_std)
    return 0.0 if score <= null_mean + 1e-9 * max(1.0, abs(null_mean)) else math.inf


def _geometry_scores(
    X: np.ndarray,
    Y: np.ndarray,
    metrics: Sequence[str],
    *,
    n_permutations: int,
    seed: int,
    min_rows: int,
    metric_options: dict[str, dict[str, Any]],
) -> dict[str, dict[str, float]]:
    from featgeom_tda.analyses.geometry import permutation_test

    out: dict[str, dict[str, float]] = {}
    n = int(X.shape[0])
    for i, metric in enumerate(metrics):
        if n < min_rows:
            out[metric] = {"score": math.nan, "null_mean": math.nan, "null_std": math.nan, "p_value": math.nan,
                           "z_score": math.nan, "n_rows": n}  # fmt: skip
            continue
        options = metric_options.get(metric, {})
        res = permutation_test(metric, X, Y, n_permutations=n_permutations, seed=seed + i, **options)
        out[metric] = {
            "score": float(res.score),
            "null_mean": float(res.null_mean),
            "null_std": float(res.null_std),
            "p_value": float(res.p_value),
            "z_score": _z_score(res.score, res.null_mean, res.null_std),
            "n_rows": n,
        }
    return out


def check_pipeline(
    pair: SyntheticPair,
    *,
    width_multiple: float = 1.0,
    architecture: Architecture = "topk",
    threshold: float = 0.5,
    n_permutations: int = 200,
    seed: int = 0,
    mode: Literal["one-to-one", "many-to-one", "mutual"] = "one-to-one",
    cosine_threshold: float = 0.9,
    k: int | None = None,
    l1_coefficient: float = 0.3,
    steps: int = 1000,
    batch_size: int = 2048,
    lr: float = 1e-2,
    metrics: Sequence[str] = GEOMETRY_METRICS,
    metric_options: dict[str, dict[str, Any]] | None = None,
    min_rows: int = 5,
    matching_options: dict[str, Any] | None = None,
    saes: tuple[Any, Any] | None = None,
    progress: bool = False,
) -> Scorecard:
    """Train SAEs on both synthetic models, match their latents, and score the result against the truth.

    Args:
        pair: from :func:`make_synthetic_pair`.
        width_multiple: SAE width as a multiple of each model's number of true features.
        architecture, k, l1_coefficient, steps, batch_size, lr: SAE training (see
            :func:`train_synthetic_sae`); ``k`` defaults to ``ceil(expected L0) + 2`` per model.
        threshold: correlation threshold of :func:`featgeom_tda.analyses.matching.match_features`.
        n_permutations: permutations per similarity null (smallest p-value ``1 / (1 + n_permutations)``).
        seed: seed of SAE training (A uses ``seed``, B ``seed + 1``) and of the permutation nulls.
        mode: matching mode.
        cosine_threshold: decoder-to-truth cosine at which a latent corresponds to a true feature.
        metrics: similarity metrics for :func:`featgeom_tda.analyses.geometry.permutation_test`.
        metric_options: metric name -> keyword options, merged over the default ``{"rsa": {"rdm": "cosine"}}``.
        matching_options: further keyword options of ``match_features``; default ``{"method": "scipy"}``
            (exact, and as fast as any method at these sizes; the compiled parallel kernel leaves OpenMP
            threads spinning that slow later torch training in the same process many times over).
        min_rows: subspaces with fewer paired rows are reported as NaN.
        saes: already trained ``(sae_a, sae_b)`` to score instead of training new ones.
        progress: progress bars.

    Returns:
        :class:`Scorecard`.
    """
    from featgeom_tda.analyses.matching import match_features
    from featgeom_tda.core.types import Provenance

    if not isinstance(pair, SyntheticPair):
        raise ValueError(f"pair must be a SyntheticPair from make_synthetic_pair; got {type(pair).__name__}")
    if not (isinstance(width_multiple, (int, float)) and math.isfinite(width_multiple) and width_multiple > 0):
        raise ValueError(f"width_multiple must be a positive number; got {width_multiple!r}")
    check_choice(architecture, "architecture", ("topk", "standard"))
    check_choice(mode, "mode", ("one-to-one", "many-to-one", "mutual"))
    threshold = check_fraction(threshold, "threshold", open_low=False)
    cosine_threshold = check_fraction(cosine_threshold, "cosine_threshold")
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    seed = check_positive_int(seed, "seed", minimum=0)
    min_rows = check_positive_int(min_rows, "min_rows", minimum=3)
    metrics = tuple(metrics)
    if not metrics:
        raise ValueError("metrics must name at least one metric; got an empty sequence")
    options = {name: dict(opts) for name, opts in DEFAULT_METRIC_OPTIONS.items()}
    for name, opts in (metric_options or {}).items():
        if not isinstance(opts, dict):
            raise ValueError(f"metric_options[{name!r}] must be a dict of keyword options; got {type(opts).__name__}")
        options[name] = {**options.get(name, {}), **opts}
    matching_options = dict({"method": "scipy"} if matching_options is None else matching_options)
    clash = set(matching_options) & {"mode", "threshold", "progress"}
    if clash:
        raise ValueError(f"matching_options must not set {sorted(clash)}; they are arguments of check_pipeline")

    widths = {}
    for name, n_true in (("a", pair.n_features_a), ("b", pair.n_features_b)):
        widths[name] = max(1, int(round(width_multiple * n_true)))
    ks = {}
    for name in ("a", "b"):
        kk = k if k is not None else int(math.ceil(pair.expected_l0(name))) + 2
        ks[name] = min(int(kk), widths[name])

    if saes is None:
        trained = []
        for offset, name in enumerate(("a", "b")):
            acts, _ = pair.model(name)
            trained.append(
                train_synthetic_sae(
                    acts, width=widths[name], architecture=architecture, k=ks[name], l1_coefficient=l1_coefficient,
                    steps=steps, batch_size=batch_size, lr=lr, seed=seed + offset, progress=progress,
                )
            )  # fmt: skip
        sae_a, sae_b = trained
    else:
        if len(saes) != 2:
            raise ValueError(f"saes must be a pair (sae_a, sae_b); got {len(saes)} items")
        sae_a, sae_b = saes
        for sae, name, d in ((sae_a, "saes[0]", pair.acts_a.shape[1]), (sae_b, "saes[1]", pair.acts_b.shape[1])):
            if int(sae.W_dec.shape[1]) != d:
                raise ValueError(f"{name} has d_in {int(sae.W_dec.shape[1])} but its model has width {d}")

    rec_a = sae_recovery(sae_a, pair.directions_a, pair.acts_a, threshold=cosine_threshold)
    rec_b = sae_recovery(sae_b, pair.directions_b, pair.acts_b, threshold=cosine_threshold)
    prov_a = Provenance(model="synthetic-a", sae_id="sae-a", seed=seed)
    prov_b = Provenance(model="synthetic-b", sae_id="sae-b", seed=seed + 1)
    codes_a = encode_synthetic(sae_a, pair.acts_a, provenance=prov_a)
    codes_b = encode_synthetic(sae_b, pair.acts_b, provenance=prov_b)
    matching = match_features(codes_a, codes_b, mode=mode, threshold=threshold, progress=progress, **matching_options)

    # -- matching vs truth ------------------------------------------------------------------------------
    n_shared = pair.n_shared
    lab_a = _latent_labels(rec_a, pair.union_index_a, cosine_threshold)
    lab_b = _latent_labels(rec_b, pair.union_index_b, cosine_threshold)
    ua, ub = lab_a[matching.index_a], lab_b[matching.index_b]
    correct = (ua == ub) & (ua >= 0) & (ua < n_shared)
    best_a = pair.union_index_a[rec_a.latent_to_true][matching.index_a]
    best_b = pair.union_index_b[rec_b.latent_to_true][matching.index_b]
    same_feature = (best_a == best_b) & (best_a < n_shared)
    n_pairs = len(matching)
    found = np.unique(ua[correct])
    shared_best_a = _best_latents(rec_a, pair.shared_a, cosine_threshold)
    shared_best_b = _best_latents(rec_b, pair.shared_b, cosine_threshold)
    recovered_both = np.flatnonzero((shared_best_a >= 0) & (shared_best_b >= 0))
    private_lat_a = np.flatnonzero(lab_a >= n_shared)
    private_lat_b = np.flatnonzero(lab_b >= n_shared)
    n_private_latents = private_lat_a.size + private_lat_b.size
    n_private_matched = int(
        np.isin(private_lat_a, matching.index_a).sum() + np.isin(private_lat_b, matching.index_b).sum()
    )
    counts = {
        "n_pairs": int(n_pairs),
        "n_correct": int(correct.sum()),
        "n_same_feature": int(same_feature.sum()),
        "n_wrong_shared": int(((ua != ub) & (ua >= 0) & (ua < n_shared) & (ub >= 0) & (ub < n_shared)).sum()),
        "n_with_private": int(((ua >= n_shared) | (ub >= n_shared)).sum()),
        "n_with_unlabelled": int(((ua < 0) | (ub < 0)).sum()),
        "n_shared": int(n_shared),
        "n_shared_found": int(found.size),
        "n_shared_recovered": int(recovered_both.size),
        "n_private_latents": int(n_private_latents),
        "n_private_matched": n_private_matched,
        "width_a": widths["a"],
        "width_b": widths["b"],
        "k_a": ks["a"],
        "k_b": ks["b"],
    }
    precision = float(correct.sum() / n_pairs) if n_pairs else math.nan
    precision_same_feature = float(same_feature.sum() / n_pairs) if n_pairs else math.nan
    recall = float(found.size / n_shared) if n_shared else math.nan
    recall_recovered = (
        float(np.isin(recovered_both, found).sum() / recovered_both.size) if recovered_both.size else math.nan
    )
    private_fp_rate = float(n_private_matched / n_private_latents) if n_private_latents else math.nan

    # -- geometry of shared vs private subspaces ---------------------------------------------------------
    dec_a, dec_b = decoder_directions(sae_a), decoder_directions(sae_b)
    both = recovered_both
    priv_a = _best_latents(rec_a, pair.private_a, cosine_threshold)
    priv_b = _best_latents(rec_b, pair.private_b, cosine_threshold)
    priv_a, priv_b = priv_a[priv_a >= 0], priv_b[priv_b >= 0]
    m = min(priv_a.size, priv_b.size)
    subspaces = {
        "shared": (dec_a[shared_best_a[both]], dec_b[shared_best_b[both]]),
        "private": (dec_a[priv_a[:m]], dec_b[priv_b[:m]]),
        "matched": (dec_a[matching.index_a], dec_b[matching.index_b]),
    }
    geometry = {
        name: _geometry_scores(
            X, Y, metrics, n_permutations=n_permutations, seed=seed + 100 * j, min_rows=min_rows, metric_options=options
        )
        for j, (name, (X, Y)) in enumerate(subspaces.items())
    }
    config = {
        "width_multiple": float(width_multiple), "architecture": architecture, "threshold": threshold,
        "n_permutations": n_permutations, "seed": seed, "mode": mode, "cosine_threshold": cosine_threshold,
        "k": k, "l1_coefficient": float(l1_coefficient), "steps": int(steps), "batch_size": int(batch_size),
        "lr": float(lr), "metrics": list(metrics), "metric_options": options, "min_rows": min_rows,
        "matching_options": {k: repr(v) for k, v in matching_options.items()}, "trained_here": saes is None,
        "pair": dict(pair.config),
    }  # fmt: skip
    return Scorecard(
        precision=precision,
        precision_same_feature=precision_same_feature,
        recall=recall,
        recall_recovered=recall_recovered,
        private_fp_rate=private_fp_rate,
        geometry=geometry,
        recovery_a=rec_a,
        recovery_b=rec_b,
        matching=matching,
        counts=counts,
        config=config,
    )


# ================================================================================================
# Sweeps
# ================================================================================================


def _sweep_row(kind: str, fraction: float, width: float, card: Scorecard) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sweep": kind,
        "shared_fraction": float(fraction),
        "width_multiple": float(width),
        "n_shared": card.counts["n_shared"],
        "mcc_a": card.recovery_a.mcc,
        "mcc_b": card.recovery_b.mcc,
        "dead_a": card.recovery_a.dead_fraction,
        "dead_b": card.recovery_b.dead_fraction,
        "n_pairs": card.counts["n_pairs"],
        "n_correct": card.counts["n_correct"],
        "precision": card.precision,
        "precision_same_feature": card.precision_same_feature,
        "recall": card.recall,
        "recall_recovered": card.recall_recovered,
        "private_fp_rate": card.private_fp_rate,
    }
    for subspace, by_metric in card.geometry.items():
        for metric, r in by_metric.items():
            row[f"{subspace}_{metric}"] = r["score"]
            row[f"{subspace}_{metric}_null"] = r["null_mean"]
            row[f"{subspace}_{metric}_p"] = r["p_value"]
            row[f"{subspace}_{metric}_z"] = r["z_score"]
            row[f"{subspace}_rows"] = r["n_rows"]
    return row


def scorecard_sweep(
    *,
    shared_fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    width_multiples: Sequence[float] = (1.0, 2.0, 4.0),
    width_shared_fraction: float = 0.75,
    n_features: int = 40,
    d_a: int = 24,
    d_b: int = 20,
    n_samples: int = 20_000,
    seed: int = 0,
    pair_options: dict[str, Any] | None = None,
    progress: bool = False,
    **pipeline_options: Any,
) -> list[dict[str, Any]]:
    """Scorecards over the shared fraction (width 1x) and over the SAE width (at ``width_shared_fraction``).

    Each model has ``n_features`` true features, ``round(fraction * n_features)`` of them shared.

    Returns:
        One flat dict per run (``sweep`` is "shared_fraction" or "width"); see :func:`sweep_markdown`.
    """
    n_features = check_positive_int(n_features, "n_features")
    fractions = [check_fraction(f, "shared_fractions", open_low=False) for f in shared_fractions]
    widths = list(width_multiples)
    width_shared_fraction = check_fraction(width_shared_fraction, "width_shared_fraction", open_low=False)
    pair_options = dict(pair_options or {})
    unknown = set(pair_options) & {"n_shared", "n_private_a", "n_private_b", "d_a", "d_b", "n_samples", "seed"}
    if unknown:
        raise ValueError(f"pair_options must not set {sorted(unknown)}; they are arguments of scorecard_sweep")
    cache: dict[tuple[float, float], Scorecard] = {}

    def run(fraction: float, width: float) -> Scorecard:
        key = (fraction, float(width))
        if key not in cache:
            n_shared = int(round(fraction * n_features))
            pair = make_synthetic_pair(
                n_shared=n_shared, n_private_a=n_features - n_shared, n_private_b=n_features - n_shared,
                d_a=d_a, d_b=d_b, n_samples=n_samples, seed=seed, **pair_options,
            )  # fmt: skip
            logger.info("synthetic sweep: shared fraction %.2f, width %.1fx", fraction, width)
            cache[key] = check_pipeline(pair, width_multiple=width, seed=seed, progress=progress, **pipeline_options)
        return cache[key]

    from tqdm.auto import tqdm

    jobs = [("shared_fraction", f, 1.0) for f in fractions] + [("width", width_shared_fraction, w) for w in widths]
    return [_sweep_row(kind, f, w, run(f, w)) for kind, f, w in tqdm(jobs, desc="sweep", disable=not progress)]


def sweep_markdown(rows: Sequence[dict[str, Any]], *, metrics: Sequence[str] = GEOMETRY_METRICS) -> str:
    """Markdown tables of :func:`scorecard_sweep` rows, one per sweep kind.

    Similarity cells read ``score (null mean, p)``.
    """

    def cell(row: dict[str, Any], subspace: str, metric: str) -> str:
        score = row.get(f"{subspace}_{metric}")
        if score is None or not math.isfinite(float(score)):
            return "n/a"
        null, p = row[f"{subspace}_{metric}_null"], row[f"{subspace}_{metric}_p"]
        return f"{_fmt(score, 2)} ({_fmt(null, 2)}, p={_fmt_p(p)})"

    header = ["shared", "width", "MCC A/B", "pairs (correct)", "precision", "precision (same feature)", "recall",
              "private FP"]  # fmt: skip
    header += [f"shared {m}" for m in metrics] + [f"private {m}" for m in metrics]
    out = []
    for kind, title in (("shared_fraction", "Shared fraction sweep (SAE width 1x)"), ("width", "SAE width sweep")):
        sel = [r for r in rows if r.get("sweep") == kind]
        if not sel:
            continue
        body = []
        for r in sel:
            body.append(
                [
                    f"{100 * r['shared_fraction']:.0f}%",
                    f"{r['width_multiple']:g}x",
                    f"{_fmt(r['mcc_a'], 2)}/{_fmt(r['mcc_b'], 2)}",
                    f"{r['n_pairs']} ({r['n_correct']})",
                    _fmt(r["precision"], 2),
                    _fmt(r["precision_same_feature"], 2),
                    _fmt(r["recall"], 2),
                    _fmt(r["private_fp_rate"], 2),
                ]
                + [cell(r, "shared", m) for m in metrics]
                + [cell(r, "private", m) for m in metrics]
            )
        out.append(f"**{title}**\n\n" + _markdown_table(header, body))
    return "\n\n".join(out)


def run_synthetic_check(
    *,
    n_features: int = 40,
    shared_fraction: float = 0.75,
    d_a: int = 24,
    d_b: int = 20,
    n_samples: int = 20_000,
    width_multiple: float = 1.0,
    architecture: Architecture = "topk",
    threshold: float = 0.5,
    n_permutations: int = 200,
    steps: int = 1000,
    seed: int = 0,
    sweep: bool = True,
    shared_fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    width_multiples: Sequence[float] = (1.0, 2.0, 4.0),
    progress: bool = False,
) -> str:
    """One scorecard (and optionally the sweeps) as markdown: the synthetic self-check of the package."""
    n_features = check_positive_int(n_features, "n_features")
    shared_fraction = check_fraction(shared_fraction, "shared_fraction", open_low=False)
    n_shared = int(round(shared_fraction * n_features))
    pair = make_synthetic_pair(
        n_shared=n_shared, n_private_a=n_features - n_shared, n_private_b=n_features - n_shared,
        d_a=d_a, d_b=d_b, n_samples=n_samples, seed=seed,
    )  # fmt: skip
    options = dict(architecture=architecture, threshold=threshold, n_permutations=n_permutations, steps=steps)
    card = check_pipeline(pair, width_multiple=width_multiple, seed=seed, progress=progress, **options)
    text = [
        f"## Synthetic check: {n_shared} shared + {n_features - n_shared} private features per model, "
        f"d_a={d_a}, d_b={d_b}, {n_samples} samples, {architecture} SAE at {width_multiple:g}x",
        "",
        card.to_markdown(),
    ]
    if sweep:
        rows = scorecard_sweep(
            shared_fractions=shared_fractions, width_multiples=width_multiples, width_shared_fraction=shared_fraction,
            n_features=n_features, d_a=d_a, d_b=d_b, n_samples=n_samples, seed=seed, progress=progress, **options,
        )  # fmt: skip
        text += ["", "## Sweeps", "", sweep_markdown(rows)]
    return "\n".join(text)
