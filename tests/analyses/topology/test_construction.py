"""mapper_graph() and choose_eps(): shapes with known Mapper graphs, plain DBSCAN, input types."""

import networkx as nx
import numpy as np
import pytest
import torch

from analyses.topology.shapes import noisy_circle, noisy_segment, two_circles, two_clusters
from featgeom_tda.analyses.topology import choose_eps, mapper_graph
from featgeom_tda.core.types import FeatureWeights


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
    # ... exactly as many as an independent cycle basis of the same graph has
    assert s["betti_1"] == len(nx.cycle_basis(g.to_networkx()))


@pytest.mark.parametrize("lens_components,n_cubes", [(1, 8), (2, 6)])
def test_known_loop_counts_exactly(lens_components, n_cubes):
    """A noisy circle has one loop and one piece; a noisy segment none and one; two circles side by side two and two."""
    circle_stats = mapper_graph(noisy_circle(), metric="euclidean", lens_components=lens_components, n_cubes=n_cubes).statistics()
    assert (circle_stats["n_components"], circle_stats["nerve_betti_1"]) == (1, 1)
    segment_stats = mapper_graph(noisy_segment(), metric="euclidean", lens_components=lens_components, n_cubes=n_cubes).statistics()
    assert (segment_stats["n_components"], segment_stats["nerve_betti_1"]) == (1, 0)
    if lens_components == 1:
        assert circle_stats["betti_1"] == 1 and segment_stats["betti_1"] == 0
    two_stats = mapper_graph(two_circles(), metric="euclidean", lens_components=lens_components, n_cubes=n_cubes).statistics()
    assert (two_stats["n_components"], two_stats["nerve_betti_1"]) == (2, 2)
    if lens_components == 1:
        assert two_stats["betti_1"] == 2


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


def test_bad_inputs_raise_value_errors():
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
