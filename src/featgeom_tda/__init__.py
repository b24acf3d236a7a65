"""featgeom_tda: geometry and topology of sparse-autoencoder features across language models.

The public API is imported lazily, so ``import featgeom_tda`` stays fast: heavy dependencies
(torch, sae_lens, transformer_lens, umap) load only when a function that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from featgeom_tda.core.version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # tensor interface and store
    "Provenance": "featgeom_tda.core.types",
    "FeatureActivations": "featgeom_tda.core.types",
    "FeatureWeights": "featgeom_tda.core.types",
    "FeatureMatching": "featgeom_tda.core.types",
    "ActivationStore": "featgeom_tda.core.store",
    # matching
    "top_correlations": "featgeom_tda.analyses.matching",
    "TopCorrelations": "featgeom_tda.analyses.matching",
    "match_features": "featgeom_tda.analyses.matching",
    "split_families": "featgeom_tda.analyses.matching",
    "decoder_mutual_neighbours": "featgeom_tda.analyses.matching",
    # geometry
    "svcca": "featgeom_tda.analyses.geometry",
    "svcca_result": "featgeom_tda.analyses.geometry",
    "SVCCAResult": "featgeom_tda.analyses.geometry",
    "pwcca": "featgeom_tda.analyses.geometry",
    "linear_cka": "featgeom_tda.analyses.geometry",
    "rsa": "featgeom_tda.analyses.geometry",
    "procrustes": "featgeom_tda.analyses.geometry",
    "knn_jaccard": "featgeom_tda.analyses.geometry",
    "mutual_knn": "featgeom_tda.analyses.geometry",
    "permutation_test": "featgeom_tda.analyses.geometry",
    "PermutationResult": "featgeom_tda.analyses.geometry",
    "random_subset_baseline": "featgeom_tda.analyses.geometry",
    "compare_concept_subspaces": "featgeom_tda.analyses.geometry",
    "compare_rematched_subspaces": "featgeom_tda.analyses.geometry",
    "spectrum": "featgeom_tda.analyses.geometry",
    "random_spectrum": "featgeom_tda.analyses.geometry",
    "spectrum_distance": "featgeom_tda.analyses.geometry",
    # interpretation
    "top_examples": "featgeom_tda.analyses.interpret",
    "top_token_ids": "featgeom_tda.analyses.interpret",
    "same_token_score": "featgeom_tda.analyses.interpret",
    "concept_labels": "featgeom_tda.analyses.interpret",
    "feature_concepts": "featgeom_tda.analyses.interpret",
    # sources
    "tokenize_documents": "featgeom_tda.extraction.activations",
    "ActivationSource": "featgeom_tda.extraction.activations",
    "extract_activations": "featgeom_tda.extraction.activations",
    "load_activations": "featgeom_tda.extraction.activations",
    "align_tokens": "featgeom_tda.extraction.alignment",
    "TokenAlignment": "featgeom_tda.extraction.alignment",
    "build_embedded_default": "featgeom_tda.sources.embedded",
    "decoder_weights": "featgeom_tda.sources.weights",
    "mlp_out_weights": "featgeom_tda.sources.weights",
    "load_weight_file": "featgeom_tda.sources.weights",
    "load_concept_groups": "featgeom_tda.sources.concepts",
    "make_synthetic_pair": "featgeom_tda.sources.synthetic",
    "mlp_neuron_units": "featgeom_tda.sources.neurons",
    "residual_units": "featgeom_tda.sources.neurons",
    "reinitialised_copy": "featgeom_tda.sources.control",
    "train_crosscoder": "featgeom_tda.sources.crosscoders",
    "check_pipeline": "featgeom_tda.pipeline.selfcheck",
    # steering
    "steer": "featgeom_tda.analyses.steering",
    "ablate": "featgeom_tda.analyses.steering",
    "patch": "featgeom_tda.analyses.steering",
    "alpha_sweep": "featgeom_tda.analyses.steering",
    "success_rate": "featgeom_tda.analyses.steering",
    "transfer_comparison": "featgeom_tda.analyses.steering",
    # topology and projections
    "mapper_graph": "featgeom_tda.analyses.topology",
    "persistence": "featgeom_tda.analyses.topology",
    "diagram_distance": "featgeom_tda.analyses.topology",
    "MapperGraph": "featgeom_tda.analyses.topology",
    "compare_mapper_graphs": "featgeom_tda.analyses.topology",
    "PersistenceDiagrams": "featgeom_tda.analyses.topology",
    "landmarks": "featgeom_tda.analyses.topology",
    "gaussian_baseline": "featgeom_tda.analyses.topology",
    "save_mapper_html": "featgeom_tda.viz.mapper_html",
    "plot_diagrams": "featgeom_tda.viz.topology",
    "pca_projection": "featgeom_tda.analyses.projection",
    "umap_projection": "featgeom_tda.analyses.projection",
    "side_by_side": "featgeom_tda.viz.projection",
    # recipes
    "load_recipe": "featgeom_tda.pipeline.recipe",
    "run_recipe": "featgeom_tda.pipeline",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'featgeom_tda' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)  # imported modules are cached by Python itself


def __dir__() -> list[str]:
    return __all__
