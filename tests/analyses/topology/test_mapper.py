import itertools
import json
import re

import numpy as np
import pytest
import torch

from featgeom_tda.analyses.topology import MapperGraph, choose_eps, compare_mapper_graphs, mapper_graph
from featgeom_tda.core.types import FeatureMatching, FeatureWeights

EXTERNAL = re.compile(r"https?://|//cdn|\bsrc\s*=|<link\b|@import|url\(", re.IGNORECASE)
XSS = "<script>alert(1)</script>"


def two_clusters(n=120, d=10, seed=0):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(5.0, 0.1, (n, d)), rng.normal(-5.0, 0.1, (n, d))])


def noisy_circle(n=400, d=20, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.zeros((n, d))
    pts[:, 0], pts[:, 1] = np.cos(theta), np.sin(theta)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return pts @ q + noise * rng.standard_normal((n, d))


def toy_graph(**kwargs):
    """Nodes a={0,1,2}, b={2,3}, c={3,4}, d={5}, e={6,7}; edges a-b, b-c; d, e isolated; row 8 uncovered."""
    nodes = {"a": [0, 1, 2], "b": [2, 3], "c": [3, 4], "d": [5], "e": [6, 7]}
    return MapperGraph(nodes=nodes, edges=[("a", "b"), ("b", "c")], n_points=9, lens=np.arange(9.0), **kwargs)


# ---------------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("clusterer", ["dbscan", "agglomerative"])
def test_two_separated_clusters_give_two_components(clusterer):
    g = mapper_graph(two_clusters(), metric="euclidean", n_cubes=5, clusterer=clusterer)
    s = g.statistics()
    assert s["n_components"] == 2
    # no node mixes the clusters
    for members in g.nodes.values():
        assert len(set((members < 120).tolist())) == 1


def test_two_clusters_cosine_metric():
    rng = np.random.default_rng(1)
    base = np.eye(16)
    x = np.vstack([base[0] + 0.05 * rng.standard_normal((100, 16)), base[1] + 0.05 * rng.standard_normal((100, 16))])
    g = mapper_graph(x, metric="cosine", n_cubes=4)
    assert g.statistics()["n_components"] == 2


def test_noisy_circle_has_one_cycle_1d_lens():
    g = mapper_graph(noisy_circle(), metric="euclidean", lens_components=1, n_cubes=8)
    s = g.statistics()
    assert s["n_components"] == 1
    assert s["betti_1"] == 1 == s["nerve_betti_1"]
    assert s["coverage"] > 0.95


def test_noisy_circle_nerve_has_one_loop_2d_lens():
    g = mapper_graph(noisy_circle(), metric="euclidean", lens_components=2, n_cubes=6)
    s = g.statistics()
    assert s["n_components"] == 1
    assert s["nerve_betti_1"] == 1
    assert s["betti_1"] >= 1  # the graph also counts the triangles of the 2-D cover


def test_one_cube_equals_plain_dbscan():
    from sklearn.cluster import DBSCAN

    x = two_clusters(n=50, d=4, seed=3)
    x[:10] += np.random.default_rng(4).normal(0, 3.0, (10, 4))  # some outliers -> DBSCAN noise
    lens = np.random.default_rng(5).uniform(size=x.shape[0])
    g = mapper_graph(x, lens=lens, n_cubes=1, overlap=0.1, metric="euclidean", eps=0.5, min_samples=4)
    labels = DBSCAN(eps=0.5, min_samples=4).fit_predict(x)
    expected = sorted(sorted(np.flatnonzero(labels == k).tolist()) for k in set(labels) - {-1})
    assert sorted(v.tolist() for v in g.nodes.values()) == expected
    assert g.edges == []


def test_inputs_numpy_torch_featureweights_agree():
    x = two_clusters(n=40, d=6)
    a = mapper_graph(x, metric="euclidean", n_cubes=3)
    b = mapper_graph(torch.from_numpy(x), metric="euclidean", n_cubes=3)
    c = mapper_graph(FeatureWeights(x), metric="euclidean", n_cubes=3, eps=a.config["eps"])
    for other in (b, c):
        assert {k: v.tolist() for k, v in other.nodes.items()} == {k: v.tolist() for k, v in a.nodes.items()}


def test_choose_eps_matches_nearest_neighbours():
    from sklearn.neighbors import NearestNeighbors

    x = np.random.default_rng(6).standard_normal((150, 5))
    eps = choose_eps(x, metric="euclidean", min_samples=5, quantile=0.8, max_queries=150)
    dist, _ = NearestNeighbors(n_neighbors=5).fit(x).kneighbors(x)  # column 0 is the row itself
    assert eps == pytest.approx(float(np.quantile(dist[:, 4], 0.8)), rel=1e-5)


# ---------------------------------------------------------------------------------------------------
# statistics and annotations
# ---------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------------
def test_self_contained_html_has_no_external_url_and_escapes(tmp_path):
    x = noisy_circle(n=150)
    ann = {"top_tokens": [[XSS, "the"]] * 150, "names": [f"</script><b>{i}</b>" for i in range(150)],
           "concept": ["a&b"] * 150}
    g = mapper_graph(x, metric="euclidean", lens_components=1, n_cubes=5, annotations=ann)
    path = g.save_html(tmp_path / "m.html", title=f"title {XSS}", color_by=np.arange(150.0), color_name="<i>idx</i>")
    text = path.read_text(encoding="utf-8")
    assert EXTERNAL.search(text) is None
    assert XSS not in text and "<b>0</b>" not in text and "<i>idx</i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # shown as text in the tooltips
    assert text.count("<script") == 2 and text.count("</script>") == 2  # only the page's own two scripts
    assert text.count('<circle class="node"') == len(g.nodes)
    assert text.count('<line class="edge"') == len(g.edges)
    # the embedded JSON decodes back to the original strings
    blob = re.search(r'<script type="application/json" id="mapper-data">(.*?)</script>', text, re.S).group(1)
    data = json.loads(blob)
    assert data["features"][0].count(XSS) == 1 and len(data["nodes"]) == len(g.nodes)
    assert data["nodes"][0]["color"] == pytest.approx(float(np.mean(g.nodes[g.node_ids[0]])))


def test_kmapper_html_escapes_tooltips(tmp_path):
    g = mapper_graph(two_clusters(n=30, d=4), metric="euclidean", n_cubes=3,
                     annotations={"top_tokens": [[XSS]] * 60})
    text = g.save_html(tmp_path / "k.html", self_contained=False, title="<b>t</b>").read_text(encoding="utf-8")
    assert XSS not in text and "<b>t</b>" not in text
    assert "KeplerMapper" in text


# ---------------------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_value_errors(tmp_path):
    x = two_clusters(n=20, d=3)
    with pytest.raises(ValueError, match="overlap"):
        mapper_graph(x, overlap=1.5)
    with pytest.raises(ValueError, match="n_cubes"):
        mapper_graph(x, n_cubes=0)
    with pytest.raises(ValueError, match="clusterer"):
        mapper_graph(x, clusterer="kmeans")
    with pytest.raises(ValueError, match="metric"):
        mapper_graph(x, metric="manhattan")
    with pytest.raises(ValueError, match="lens"):
        mapper_graph(x, lens="tsne")
    with pytest.raises(ValueError, match=r"lens must be .* shape \(40, m\)"):
        mapper_graph(x, lens=np.zeros((39, 2)))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    with pytest.raises(ValueError, match="constant"):
        mapper_graph(unit, lens="l2norm")
    with pytest.raises(ValueError, match="eps"):
        mapper_graph(x, eps=-1.0)
    with pytest.raises(ValueError, match="eps_scale"):
        mapper_graph(x, eps_scale=0)
    with pytest.raises(ValueError, match="eps_quantile"):
        mapper_graph(x, eps_quantile=1.5)
    with pytest.raises(ValueError, match="unknown keys"):
        mapper_graph(x, annotations={"colour": [1] * 40})
    with pytest.raises(ValueError, match="39 entries but there are 40"):
        mapper_graph(x, annotations={"names": ["a"] * 39})
    with pytest.raises(ValueError, match="partner"):
        mapper_graph(x, annotations={"partner": np.full(40, -2)})
    zero = x.copy()
    zero[0] = 0
    with pytest.raises(ValueError, match="all-zero rows"):
        mapper_graph(zero, metric="cosine")
    with pytest.raises(ValueError, match="NaN"):
        mapper_graph(np.full((5, 2), np.nan))
    g = toy_graph()
    with pytest.raises(ValueError, match="color_by"):
        g.save_html(tmp_path / "x.html", color_by=np.zeros(3))
    with pytest.raises(ValueError, match=r"index_b must lie in \[0, 9\)"):
        compare_mapper_graphs(g, g, FeatureMatching([0], [9], [1.0]))
    with pytest.raises(ValueError, match="FeatureMatching"):
        compare_mapper_graphs(g, g, {"index_a": [0]})
    with pytest.raises(ValueError, match="unknown node"):
        MapperGraph(nodes={"a": [0]}, edges=[("a", "z")], n_points=1, lens=np.zeros(1))
