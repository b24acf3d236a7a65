"""Geometry of paired feature sets: similarity metrics, their seeded baselines, concept subspaces, spectra.

- :mod:`.similarity`: SVCCA, linear CKA, RSA, Procrustes, kNN Jaccard, mutual kNN of paired rows.
- :mod:`.pwcca`: projection-weighted CCA (Morcos et al. 2018) with SVCCA's component rule.
- :mod:`.baselines`: random-pairing permutation tests (with exact fast paths) and random-subset baselines.
- :mod:`.subspaces`: per-concept comparison of feature subspaces.
- :mod:`.spectra`: singular-value spectra, effective rank, power-law slope, Gaussian baselines (figures: :mod:`featgeom_tda.viz.spectra`).
"""

from featgeom_tda.analyses.geometry.baselines import (
    METRIC_NAMES,
    PermutationResult,
    SubsetBaselineResult,
    check_metric_options,
    permutation_test,
    permutation_tests,
    random_subset_baseline,
    random_subset_baselines,
    resolve_metric,
)
from featgeom_tda.analyses.geometry.pwcca import PWCCAResult, pwcca, pwcca_result
from featgeom_tda.analyses.geometry.similarity import (
    SVCCAResult,
    knn_jaccard,
    linear_cka,
    mutual_knn,
    procrustes,
    rsa,
    svcca,
    svcca_details,
    svcca_result,
)
from featgeom_tda.analyses.geometry.spectra import (
    Spectrum,
    effective_rank,
    random_spectrum,
    spectrum,
    spectrum_distance,
)
from featgeom_tda.analyses.geometry.subspaces import (
    SubspaceResult,
    compare_concept_subspaces,
    compare_rematched_subspaces,
    principal_angle_cosines,
    principal_angle_similarity,
)

__all__ = [
    "METRIC_NAMES",
    "PWCCAResult",
    "PermutationResult",
    "SVCCAResult",
    "Spectrum",
    "SubsetBaselineResult",
    "SubspaceResult",
    "check_metric_options",
    "compare_concept_subspaces",
    "compare_rematched_subspaces",
    "effective_rank",
    "knn_jaccard",
    "linear_cka",
    "mutual_knn",
    "permutation_test",
    "permutation_tests",
    "principal_angle_cosines",
    "principal_angle_similarity",
    "procrustes",
    "pwcca",
    "pwcca_result",
    "random_spectrum",
    "random_subset_baseline",
    "random_subset_baselines",
    "resolve_metric",
    "rsa",
    "spectrum",
    "spectrum_distance",
    "svcca",
    "svcca_details",
    "svcca_result",
]
