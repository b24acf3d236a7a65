"""Feature matching by activation correlation.

:func:`top_correlations` finds, for every feature of A, the ``k`` features of B with the highest Pearson
correlation over the shared token rows, exactly (float64 arithmetic) and without ever holding an
(n_features_a x n_features_b) matrix.

For sparse non-negative activations (SAE codes) the correlation of a and b is

    corr(a, b) = (P_ab / N - mu_a mu_b) / (sd_a sd_b),      P = A^T B,

and P is sparse. For every b outside the support of row P[a] the score is ``-(mu_a / sd_a) * (mu_b / sd_b)``,
which is largest for the smallest ratio ``mu_b / sd_b`` among those b. Presorting B by that ratio gives
the best out-of-support candidates after a few steps, so the cost is the sparse product alone. Methods:

- ``"fused"``: a compiled (numba) kernel that accumulates each row of P in a scratch vector, scores its
  support and walks the presorted order, in parallel over A's features; memory O(n_threads x n_b).
- ``"scipy"``: the same computation with scipy sparse products on chunks of A's features (threads over
  chunks) and vectorised numpy top-k; memory bounded by a chunk.
- ``"dense"``: sparse product, then a dense scan of each (chunk x n_b) block; works for any sign.
- ``device=...``: the dense scan with torch on that device (sparse products on the device).

Ties are broken towards the lower index of B. :func:`match_features` turns top correlations in both
directions into a :class:`~featgeom_tda.core.types.FeatureMatching` (many-to-one, mutual or one-to-one) and
applies threshold and token filters, recording what each removed.

Modules: :mod:`.stats` (column statistics, input checks), :mod:`.kernels` (the compiled fused kernel),
:mod:`.chunks` (scipy and torch chunked products), :mod:`.top` (:func:`top_correlations`) and
:mod:`.assignment` (:func:`match_features`, the one-to-one assignment). :mod:`.decoder_mnn`
(:func:`decoder_mutual_neighbours`) pairs decoder rows instead: mutual nearest neighbours across two spaces
aligned by an orthogonal Procrustes map fitted on anchor pairs.
"""

from featgeom_tda.analyses.matching.assignment import MATCH_MODES, match_features
from featgeom_tda.analyses.matching.decoder_mnn import DecoderNeighbours, decoder_mutual_neighbours
from featgeom_tda.analyses.matching.splitting import SplitFamilies, split_families
from featgeom_tda.analyses.matching.top import CORRELATION_METHODS, TopCorrelations, top_correlations

__all__ = [
    "SplitFamilies",
    "split_families",
    "TopCorrelations",
    "top_correlations",
    "match_features",
    "DecoderNeighbours",
    "decoder_mutual_neighbours",
    "MATCH_MODES",
    "CORRELATION_METHODS",
]
