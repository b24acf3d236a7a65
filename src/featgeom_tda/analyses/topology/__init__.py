"""Topology of feature directions: Mapper graphs and persistent homology.

- :mod:`featgeom_tda.analyses.topology.mapper`: :func:`mapper_graph`, :class:`MapperGraph` (statistics,
  networkx), :func:`compare_mapper_graphs`.
- :mod:`featgeom_tda.analyses.topology.homology`: :func:`persistence`, :class:`PersistenceDiagrams`,
  :func:`diagram_distance`, :func:`landmarks`, Betti curves, Gaussian baselines.
- :mod:`featgeom_tda.analyses.topology.circles`: :func:`circle_test` (longest H1 bar of the top principal
  components against Gaussian / shuffled baselines, with a p-value), :func:`class_means`.

Figures and the Mapper HTML page are drawn in :mod:`featgeom_tda.viz.topology` and
:mod:`featgeom_tda.viz.mapper_html`.

kmapper, gudhi, giotto-ph and ripser are imported inside the functions that use them.
"""

from featgeom_tda.analyses.topology.homology import (
    PersistenceDiagrams,
    betti_curve,
    compare_with_gaussian,
    diagram_distance,
    estimate_memory_bytes,
    gaussian_baseline,
    landmarks,
    pairwise_distances,
    persistence,
    persistence_entropy,
)
from featgeom_tda.analyses.topology.circles import (
    CircleTest,
    ClassMeans,
    circle_test,
    class_means,
    longest_h1_bar,
    monte_carlo_p_value,
)
from featgeom_tda.analyses.topology.mapper import MapperGraph, choose_eps, compare_mapper_graphs, mapper_graph

__all__ = [
    "MapperGraph",
    "mapper_graph",
    "compare_mapper_graphs",
    "choose_eps",
    "PersistenceDiagrams",
    "persistence",
    "diagram_distance",
    "landmarks",
    "pairwise_distances",
    "estimate_memory_bytes",
    "betti_curve",
    "persistence_entropy",
    "gaussian_baseline",
    "compare_with_gaussian",
    "CircleTest",
    "circle_test",
    "longest_h1_bar",
    "monte_carlo_p_value",
    "ClassMeans",
    "class_means",
]
