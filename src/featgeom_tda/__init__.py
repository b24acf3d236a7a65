"""featgeom_tda: geometry and topology of sparse-autoencoder features across language models.

The public API is imported lazily, so ``import featgeom_tda`` stays fast: heavy dependencies
(torch, sae_lens, transformer_lens, umap) load only when a function that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # tensor interface and store
    "Provenance": "featgeom_tda.types",
    "FeatureActivations": "featgeom_tda.types",
    "FeatureWeights": "featgeom_tda.types",
    "FeatureMatching": "featgeom_tda.types",
    "ActivationStore": "featgeom_tda.store",
    # matching
    "top_correlations": "featgeom_tda.matching",
    "TopCorrelations": "featgeom_tda.matching",
    "match_features": "featgeom_tda.matching",
    # geometry
    "svcca": "featgeom_tda.geometry",
    "svcca_result": "featgeom_tda.geometry",
    "SVCCAResult": "featgeom_tda.geometry",
    "linear_cka": "featgeom_tda.geometry",
    "rsa": "featgeom_tda.geometry",
    "procrustes": "featgeom_tda.geometry",
    "knn_jaccard": "featgeom_tda.geometry",
    "mutual_knn": "featgeom_tda.geometry",
    "permutation_test": "featgeom_tda.geometry",
    "PermutationResult": "featgeom_tda.geometry",
    "random_subset_baseline": "featgeom_tda.geometry",
    "compare_concept_subspaces": "featgeom_tda.geometry",
    "spectrum": "featgeom_tda.geometry",
    "random_spectrum": "featgeom_tda.geometry",
    "spectrum_distance": "featgeom_tda.geometry",
    # interpretation
    "top_examples": "featgeom_tda.interpret",
    "top_token_ids": "featgeom_tda.interpret",
    "same_token_score": "featgeom_tda.interpret",
    "concept_labels": "featgeom_tda.interpret",
    "feature_concepts": "featgeom_tda.interpret",
    # sources
    "tokenize_documents": "featgeom_tda.sources.activations",
    "ActivationSource": "featgeom_tda.sources.activations",
    "extract_activations": "featgeom_tda.sources.activations",
    "load_activations": "featgeom_tda.sources.activations",
    "build_embedded_default": "featgeom_tda.sources.embedded",
    "decoder_weights": "featgeom_tda.sources.weights",
    "mlp_out_weights": "featgeom_tda.sources.weights",
    "load_weight_file": "featgeom_tda.sources.weights",
    "load_concept_groups": "featgeom_tda.sources.concepts",
    "make_synthetic_pair": "featgeom_tda.sources.synthetic",
    "check_pipeline": "featgeom_tda.sources.synthetic",
    # steering
    "steer": "featgeom_tda.steering",
    "ablate": "featgeom_tda.steering",
    "patch": "featgeom_tda.steering",
    "alpha_sweep": "featgeom_tda.steering",
    "success_rate": "featgeom_tda.steering",
    "transfer_comparison": "featgeom_tda.steering",
    # topology and projections
    "mapper_graph": "featgeom_tda.topology",
    "persistence": "featgeom_tda.topology",
    "diagram_distance": "featgeom_tda.topology",
    "MapperGraph": "featgeom_tda.topology",
    "compare_mapper_graphs": "featgeom_tda.topology",
    "PersistenceDiagrams": "featgeom_tda.topology",
    "landmarks": "featgeom_tda.topology",
    "gaussian_baseline": "featgeom_tda.topology",
    "pca_projection": "featgeom_tda.projection",
    "umap_projection": "featgeom_tda.projection",
    "side_by_side": "featgeom_tda.projection",
    # recipes
    "load_recipe": "featgeom_tda.recipe",
    "run_recipe": "featgeom_tda.pipeline",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'featgeom_tda' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
