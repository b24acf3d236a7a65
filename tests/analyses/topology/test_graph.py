"""MapperGraph: statistics in closed form, annotations, networkx, save / load."""

import numpy as np
import pytest

from analyses.topology.shapes import noisy_circle, toy_graph
from featgeom_tda.analyses.topology import MapperGraph, mapper_graph


def test_statistics_closed_form():
    s = toy_graph().statistics()
    assert s["n_nodes"] == 5 and s["n_edges"] == 2 and s["n_components"] == 3
    assert s["betti_1"] == 2 - 5 + 3 == 0 and s["nerve_betti_1"] == 0
    assert s["n_covered_points"] == 8 and s["coverage"] == pytest.approx(8 / 9)
    assert s["mean_memberships"] == pytest.approx(10 / 8)
    assert s["isolated_nodes"] == 2 and s["largest_component_nodes"] == 3 and s["largest_component_points"] == 5
    assert s["degree"]["histogram"]["counts"] == [2, 2, 1]
    assert (s["degree"]["min"], s["degree"]["max"], s["degree"]["mean"]) == (0, 2, pytest.approx(0.8))
    assert (s["node_size"]["min"], s["node_size"]["max"], s["node_size"]["median"]) == (1, 3, 2.0)
    assert sum(s["node_size"]["histogram"]["counts"]) == 5


def test_cycle_betti_numbers():
    nodes = {"a": [0, 1], "b": [1, 2], "c": [2, 3], "d": [3, 0]}
    ring = MapperGraph(nodes=nodes, edges=[("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")], n_points=4, lens=np.arange(4.0))
    assert ring.statistics()["betti_1"] == 1 == ring.statistics()["nerve_betti_1"]
    # three nodes sharing a row: a cycle of the graph, a filled triangle of the nerve
    tri = MapperGraph(nodes={"a": [0, 1], "b": [0, 2], "c": [0, 3]}, edges=[("a", "b"), ("b", "c"), ("a", "c")],
                      n_points=4, lens=np.arange(4.0))
    assert tri.statistics()["betti_1"] == 1 and tri.statistics()["nerve_betti_1"] == 0


def test_node_annotations_and_networkx():
    ann = {
        "top_tokens": [["king", "queen"], ["king"], "queen", ["cat"], [], ["dog"], ["dog", "cat"], ["dog"], []],
        "concept": ["royalty", "royalty", None, "animals", "animals", None, "animals", "animals", None],
        "partner": np.array([3, -1, 0, 1, -1, -1, 2, 2, -1]),
        "names": [f"f{i}" for i in range(9)],
    }
    g = toy_graph(annotations=ann)
    na = g.node_annotations()
    assert na["a"]["top_tokens"] == [["king", 2], ["queen", 2]]
    assert na["a"]["concept"] == "royalty" and na["a"]["concept_share"] == pytest.approx(2 / 3)
    assert na["a"]["partner_fraction"] == pytest.approx(2 / 3)
    assert na["e"]["top_tokens"] == [["dog", 2], ["cat", 1]] and na["e"]["concept_counts"] == {"animals": 2}
    assert na["d"]["concept"] is None and na["d"]["names"] == ["f5"]
    nxg = g.to_networkx()
    assert nxg.number_of_nodes() == 5 and nxg.number_of_edges() == 2
    assert nxg.nodes["a"]["members"] == [0, 1, 2] and nxg.nodes["a"]["size"] == 3


def test_save_load_roundtrip(tmp_path):
    g = mapper_graph(noisy_circle(n=120), metric="euclidean", lens_components=1, n_cubes=5,
                     annotations={"names": [f"n{i}" for i in range(120)], "partner": np.arange(120) - 1})
    back = MapperGraph.load(g.save(tmp_path / "g"))
    assert {k: v.tolist() for k, v in back.nodes.items()} == {k: v.tolist() for k, v in g.nodes.items()}
    assert back.edges == g.edges
    np.testing.assert_array_equal(back.lens, g.lens)
    assert back.statistics() == g.statistics()
    np.testing.assert_array_equal(back.annotations["partner"], g.annotations["partner"])


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="unknown node"):
        MapperGraph(nodes={"a": [0]}, edges=[("a", "z")], n_points=1, lens=np.zeros(1))
