"""Synthetic two-model pairs shared by the generator and self-check tests (module-scoped fixtures)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featgeom_tda.sources.synthetic import SyntheticPair, make_synthetic_pair

# A pair in superposition (50 union features in a 20-dimensional common geometry, 40 per model) with
# well-separated, sparse features: the regime the end-to-end checks are stated for.
PAIR_ARGS = dict(n_shared=30, n_private_a=10, n_private_b=10, d_a=24, d_b=20, n_samples=20_000, seed=0)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    # the SAEs here are tiny: one thread is faster than two on a shared machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pair() -> SyntheticPair:
    return make_synthetic_pair(**PAIR_ARGS)


@pytest.fixture(scope="module")
def small_pair() -> SyntheticPair:
    # no superposition (16 union features in 16 dimensions): an exact linear read-out exists
    return make_synthetic_pair(n_shared=8, n_private_a=4, n_private_b=4, d_a=20, d_b=16, n_samples=4000, seed=3)


def oracle_sae(directions: np.ndarray, *, bias: float = -1e-4):
    """Inference SAE whose decoder is ``directions`` and whose encoder is their pseudo-inverse."""
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    d = np.asarray(directions, dtype=np.float64)
    with torch.random.fork_rng(devices=[]):
        sae = StandardSAE(StandardSAEConfig(d_in=d.shape[1], d_sae=d.shape[0]))
    with torch.no_grad():
        sae.W_dec.copy_(torch.from_numpy(d))
        sae.W_enc.copy_(torch.from_numpy(np.linalg.pinv(d)))
        sae.b_enc.fill_(bias)
        sae.b_dec.zero_()
    return sae
