"""Hand-built activations over a 10-token vocabulary, shared by the token-filter and interpretation tests."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom_tda.core.types import FeatureActivations

# vocabulary of the hand-built corpus
VOCAB = ["<bos>", "Ġthe", "Ġking", "Ġqueen", "Ġsat", ".", "▁Mother", "Ġcat", "ĠMay", "Ġran"]

# two documents of 6 tokens
TOKENS = np.array(
    [
        [0, 1, 2, 4, 1, 5],  # <bos> the king sat the .
        [0, 6, 3, 9, 8, 7],  # <bos> Mother queen ran May cat
    ]
)


@pytest.fixture()
def acts():
    """12 rows (doc 0 then doc 1), 4 features with hand-placed activations."""
    m = np.zeros((12, 4), dtype=np.float32)
    m[2, 0], m[8, 0], m[4, 0] = 3.0, 2.0, 2.0  # feature 0: king (3), queen (2), the (2; tie, later row)
    m[6 + 1, 1] = 1.0  # feature 1: "Mother" only
    m[5, 2], m[0, 2] = 0.5, 0.25  # feature 2: "." then <bos>
    # feature 3 never fires
    return FeatureActivations(
        m,
        token_ids=TOKENS.ravel(),
        doc_index=np.repeat([0, 1], 6),
        position=np.tile(np.arange(6), 2),
    )
