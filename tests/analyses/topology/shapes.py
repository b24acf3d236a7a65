"""Point clouds and graphs with known topology, shared by the topology and viz tests."""

import numpy as np

from featgeom_tda.analyses.topology import MapperGraph


def _rotation(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


def circle(n=120, d=20, noise=0.02, radius=1.0, center=None, seed=0):
    """Evenly spaced circle points embedded in R^d by a random rotation, with Gaussian noise."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.zeros((n, d))
    pts[:, 0] = radius * np.cos(theta)
    pts[:, 1] = radius * np.sin(theta)
    pts = pts @ _rotation(d, seed + 100)
    if center is not None:
        pts += center
    return pts + noise * rng.standard_normal((n, d))


def lifetimes(diagrams, dim):
    d = diagrams.finite(dim)
    return np.sort(d[:, 1] - d[:, 0])[::-1]


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


def noisy_segment(n=400, d=20, noise=0.01, seed=0):
    """A noisy straight segment of length 2 in R^d (no loop, one piece)."""
    rng = np.random.default_rng(seed)
    pts = np.zeros((n, d))
    pts[:, 0] = np.linspace(-1.0, 1.0, n)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return pts @ q + noise * rng.standard_normal((n, d))


def two_circles(n=400, d=20, noise=0.01, gap=4.0, seed=0):
    """Two unit circles side by side in the plane of the first two axes (centres ``gap`` apart), in R^d."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.zeros((2 * n, d))
    pts[:n, 0], pts[:n, 1] = np.cos(theta), np.sin(theta)
    pts[n:, 0], pts[n:, 1] = np.cos(theta) + gap, np.sin(theta)
    return pts + noise * rng.standard_normal((2 * n, d))
