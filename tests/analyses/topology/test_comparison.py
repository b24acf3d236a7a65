"""compare_mapper_graphs(): against a brute-force count and a random pairing."""

import itertools

import numpy as np
import pytest

from analyses.topology.shapes import noisy_circle, toy_graph
from featgeom_tda.analyses.topology import MapperGraph, compare_mapper_graphs, mapper_graph
from featgeom_tda.core.types import FeatureMatching


def _brute_rate(ga, gb, ia, ib, adjacent):
    def related(g, i, j):
        nodes_i = [k for k, v in g.nodes.items() if i in v]
        nodes_j = [k for k, v in g.nodes.items() if j in v]
        if set(nodes_i) & set(nodes_j):
            return True
        if adjacent:
            edges = set(g.edges) | {(b, a) for a, b in g.edges}
            return any((p, q) in edges for p in nodes_i for q in nodes_j)
        return False

    hits = total = 0
    for s, t in itertools.combinations(range(len(ia)), 2):
        if related(ga, ia[s], ia[t]):
            total += 1
            hits += related(gb, ib[s], ib[t])
    return hits / total


def test_compare_mapper_graphs_matches_brute_force():
    ga = toy_graph()
    nodes_b = {"p": [0, 1], "q": [1, 2, 3], "r": [4, 5], "s": [6, 7, 8]}
    gb = MapperGraph(nodes=nodes_b, edges=[("p", "q"), ("r", "s")], n_points=9, lens=np.arange(9.0))
    ia = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8])
    ib = np.array([1, 0, 2, 4, 5, 6, 7, 8, 3])
    m = FeatureMatching(ia, ib, np.linspace(1, 0.5, 9))
    out = compare_mapper_graphs(ga, gb, m, n_permutations=99, seed=0)
    assert out["n_pairs_used"] == 8 and out["n_pairs_uncovered"] == 1  # row 8 of A is in no node
    keep = ia != 8
    for key, adjacent in (("same", False), ("adjacent", True)):
        assert out[key]["observed"] == pytest.approx(_brute_rate(ga, gb, ia[keep], ib[keep], adjacent))
        assert 1 / 100 <= out[key]["p_value"] <= 1
    assert out["statistics"]["a"] == ga.statistics()


def test_compare_identical_graphs_beats_random_pairing():
    g = mapper_graph(noisy_circle(n=200), metric="euclidean", lens_components=1, n_cubes=8)
    n = g.n_points
    same = compare_mapper_graphs(g, g, FeatureMatching(np.arange(n), np.arange(n), np.ones(n)), n_permutations=50)
    assert same["same"]["observed"] == 1.0 and same["adjacent"]["observed"] == 1.0
    assert same["same"]["p_value"] == pytest.approx(1 / 51) and same["same"]["lift"] > 3
    shuffled = np.random.default_rng(0).permutation(n)
    rand = compare_mapper_graphs(g, g, FeatureMatching(np.arange(n), shuffled, np.ones(n)), n_permutations=50)
    assert rand["same"]["observed"] < 0.5 and rand["same"]["p_value"] > 0.01
    sub = compare_mapper_graphs(g, g, FeatureMatching(np.arange(n), np.arange(n), np.ones(n)), max_pairs=50,
                                n_permutations=10)
    assert sub["subsampled"] and sub["n_pairs_used"] == 50


def test_bad_inputs_raise_value_errors():
    g = toy_graph()
    with pytest.raises(ValueError, match=r"index_b must lie in \[0, 9\)"):
        compare_mapper_graphs(g, g, FeatureMatching([0], [9], [1.0]))
    with pytest.raises(ValueError, match="FeatureMatching"):
        compare_mapper_graphs(g, g, {"index_a": [0]})
