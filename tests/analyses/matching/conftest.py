"""Fixtures of the correlation-matching tests: a sparse pair, a planted correspondence, a token pair."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from analyses.matching.helpers import VOCAB, random_sparse, with_dead_columns
from featgeom_tda.core.types import FeatureActivations, Provenance


@pytest.fixture(scope="module")
def sparse_pair():
    rng = np.random.default_rng(11)
    a = with_dead_columns(random_sparse(rng, 400, 37, 0.06), [3, 20], [5])
    b = with_dead_columns(random_sparse(rng, 400, 45, 0.05), [0, 2], [7, 44])
    return a, b


@pytest.fixture(scope="module")
def planted():
    """A (30 live + 2 dead features); B = A's columns permuted, noisy, plus 10 unrelated features."""
    rng = np.random.default_rng(21)
    n, f = 3000, 32
    a = random_sparse(rng, n, f, 0.04).tolil()
    a[:, 30] = 0
    a[:, 31] = 0
    a = a.tocsr()
    perm = rng.permutation(f)  # B column j is A column perm[j]
    core = a[:, perm].tocsr()
    core.data *= rng.uniform(0.6, 1.4, core.data.size).astype(np.float32)
    noise = random_sparse(rng, n, f, 0.004).tolil()
    noise[:, np.flatnonzero(perm >= 30)] = 0  # B keeps A's two dead columns dead
    noise = noise.tocsr()
    extra = random_sparse(rng, n, 10, 0.04)
    b = sp.hstack([core + noise, extra], format="csr")
    prov_a, prov_b = Provenance(model="model-a", hook_name="blocks.0.hook_resid_post"), Provenance(model="model-b")
    return FeatureActivations(a, provenance=prov_a), FeatureActivations(b, provenance=prov_b), perm


@pytest.fixture(scope="module")
def token_pair():
    """Rows with known tokens; A/B feature pairs fire on chosen token ids.

    pair 0: both fire on "." and ","           -> punctuation only
    pair 1: both fire on " king"               -> shared token
    pair 2: A fires on " cat", B on " dog" rows that co-occur with " cat" -> no shared top token
    pair 3: A fires on "<|endoftext|>", B on "<bos>"/"," mix -> punctuation/special only
    """
    rng = np.random.default_rng(51)
    n = 600
    tokens = rng.integers(0, len(VOCAB), n)
    a = np.zeros((n, 4), dtype=np.float32)
    b = np.zeros((n, 4), dtype=np.float32)
    punct = np.isin(tokens, [1, 2])
    a[punct, 0] = rng.uniform(1, 2, punct.sum())
    b[punct, 0] = a[punct, 0] * 1.1
    king = tokens == 5
    a[king, 1] = rng.uniform(1, 2, king.sum())
    b[king, 1] = a[king, 1] + 0.1
    cat = np.flatnonzero(tokens == 7)
    a[cat, 2] = rng.uniform(1, 2, cat.size)
    b[cat, 2] = 0.1  # weak on cat rows
    dog = np.flatnonzero(tokens == 9)
    b[dog, 2] = rng.uniform(3, 4, dog.size)  # strongest on dog rows
    a[dog, 2] = 0.05
    special = np.isin(tokens, [0, 8])
    a[special, 3] = rng.uniform(1, 2, special.sum())
    b[special, 3] = a[special, 3]
    acts_a = FeatureActivations(a, token_ids=tokens)
    acts_b = FeatureActivations(b, token_ids=tokens)
    return acts_a, acts_b
