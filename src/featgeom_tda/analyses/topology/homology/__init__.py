"""Persistent homology of feature directions (Vietoris-Rips): diagrams, engines, certified truncation, distances.

- :mod:`.diagrams`: :class:`PersistenceDiagrams` (bars ``(birth, death, dim)``), entropy, Betti curves.
- :mod:`.persistence`: :func:`persistence`, :func:`landmarks`, :func:`pairwise_distances`.
- :mod:`.engines`: the oineus / giotto-ph / ripser runs and :func:`estimate_memory_bytes`.
- :mod:`.budget`: simplex counts, memory and time of runs above H1, refused before the engine starts.
- :mod:`.truncation`: the certified ``threshold="auto"`` truncation and its compiled cone certificate.
- :mod:`.distances`: :func:`diagram_distance`, :func:`gaussian_baseline`, :func:`compare_with_gaussian`.

Plots of diagrams are in :mod:`featgeom_tda.viz.topology`.
"""

from featgeom_tda.analyses.topology.homology.diagrams import PersistenceDiagrams, betti_curve, persistence_entropy
from featgeom_tda.analyses.topology.homology.distances import compare_with_gaussian, diagram_distance, gaussian_baseline
from featgeom_tda.analyses.topology.homology.engines import estimate_memory_bytes
from featgeom_tda.analyses.topology.homology.persistence import landmarks, pairwise_distances, persistence

__all__ = [
    "PersistenceDiagrams",
    "persistence",
    "landmarks",
    "pairwise_distances",
    "estimate_memory_bytes",
    "betti_curve",
    "persistence_entropy",
    "diagram_distance",
    "gaussian_baseline",
    "compare_with_gaussian",
]
