"""Mapper graphs of feature directions: the graph type, its construction and the comparison of two graphs.

- :mod:`.graph`: :class:`MapperGraph` (nodes as sets of rows, annotations, statistics, networkx, save / load).
- :mod:`.construction`: :func:`mapper_graph`, :func:`choose_eps` (lens, cover, clustering).
- :mod:`.comparison`: :func:`compare_mapper_graphs`.

The self-contained HTML view is :func:`featgeom_tda.viz.mapper_html.save_mapper_html`.
"""

from featgeom_tda.analyses.topology.mapper.comparison import compare_mapper_graphs
from featgeom_tda.analyses.topology.mapper.construction import choose_eps, mapper_graph
from featgeom_tda.analyses.topology.mapper.graph import MapperGraph

__all__ = ["MapperGraph", "mapper_graph", "choose_eps", "compare_mapper_graphs"]
