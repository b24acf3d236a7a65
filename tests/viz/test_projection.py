"""Projection figures: PNG files, self-contained and escaped plotly HTML, the numbers they return."""

import re

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom_tda.analyses.projection import pca_projection
from featgeom_tda.core.types import FeatureActivations, FeatureMatching
from featgeom_tda.viz.projection import before_after, joint_projection, side_by_side

# a tag attribute or CSS rule that would fetch something over the network
EXTERNAL_LOAD = re.compile(
    r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=|@import|url\(\s*['\"]?(https?:)?//", re.IGNORECASE
)
XSS = "<script>alert(1)</script>"


def _cloud(n=80, d=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ np.diag(np.linspace(3, 0.2, d)) + 0.5


def _same_up_to_sign(a, b, atol=1e-8):
    for k in range(a.shape[1]):
        s = np.sign(a[:, k] @ b[:, k])
        np.testing.assert_allclose(a[:, k], s * b[:, k], atol=atol)


def _pair(n=60, d=8, seed=5):
    """Model A rows and model B = A rotated, scaled and permuted; the matching recovers the permutation."""
    rng = np.random.default_rng(seed)
    a = _cloud(n, d, seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    perm = rng.permutation(n)
    b = np.empty_like(a)
    b[perm] = 2.5 * a @ q
    return a, b, FeatureMatching(np.arange(n), perm, np.linspace(1.0, 0.5, n))


def test_side_by_side_aligns_pairs_and_writes_self_contained_files(tmp_path):
    a, b, m = _pair()
    names = [XSS] + [f"feature {i}" for i in range(1, a.shape[0])]
    out = side_by_side(a, b, m, path_png=tmp_path / "s.png", path_html=tmp_path / "s.html",
                       labels=("<A>", "B"), metric="euclidean", names_a=names, max_links=20)
    # B is an isometry of A up to scale, so the aligned PCA coordinates coincide pair by pair
    np.testing.assert_allclose(out["coords_b"][m.index_b], out["coords_a"][m.index_a], atol=1e-6)
    assert out["n_links"] == 20 and out["png"].stat().st_size > 5000
    text = out["html"].read_text(encoding="utf-8")
    assert EXTERNAL_LOAD.search(text) is None
    assert XSS not in text and "<A>" not in text
    assert "&lt;script&gt;alert(1)&lt;" in text  # escaped (plotly also writes "/" as \\u002f)


def test_joint_projection_requires_same_space_and_equals_stacked_pca(tmp_path):
    a, b, m = _pair(d=8)
    out = joint_projection(a, b, matching=m, path_png=tmp_path / "j.png", path_html=tmp_path / "j.html")
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    ref = pca_projection(np.vstack([unit(a), unit(b)]), metric="cosine").coords
    np.testing.assert_allclose(np.vstack([out["coords_a"], out["coords_b"]]), ref, atol=1e-6)  # rows stored as float32
    assert out["png"].exists() and EXTERNAL_LOAD.search(out["html"].read_text(encoding="utf-8")) is None
    with pytest.raises(ValueError, match="R\\^8 but weights_b in R\\^9.*side_by_side"):
        joint_projection(a, np.zeros((5, 9)) + 1.0)


def test_before_after_paired_rows(tmp_path):
    rng = np.random.default_rng(7)
    before = sp.random(200, 40, density=0.1, random_state=rng, format="csr")
    shift = np.zeros(40)
    shift[3] = 2.0
    after = sp.csr_matrix(before.toarray() + shift)
    tokens = [XSS if i == 0 else f"tok{i}" for i in range(200)]
    out = before_after(FeatureActivations(before), after, path_png=tmp_path / "b.png", path_html=tmp_path / "b.html",
                       max_points=150, token_labels=tokens)
    assert out["paired"] and out["coords_before"].shape == (150, 2)
    np.testing.assert_array_equal(out["rows"][0], out["rows"][1])
    assert out["mean_shift"] == pytest.approx(2.0, abs=1e-5)
    # a constant shift moves every pair by the same vector in the (linear) projection
    d = out["coords_after"] - out["coords_before"]
    np.testing.assert_allclose(d, np.broadcast_to(d[0], d.shape), atol=1e-6)
    text = out["html"].read_text(encoding="utf-8")
    assert EXTERNAL_LOAD.search(text) is None and XSS not in text
    with pytest.raises(ValueError, match="40 features but acts_after has 39"):
        before_after(before, after[:, :39])



def test_side_by_side_bad_inputs_raise_value_errors(tmp_path):
    a, b, m = _pair(n=10, d=4)
    with pytest.raises(ValueError, match="method"):
        side_by_side(a, b, m, method="tsne", path_png=tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"index_b must lie in \[0, 5\)"):
        side_by_side(a, b[:5], m, path_png=tmp_path / "x.png")
    with pytest.raises(ValueError, match="labels"):
        side_by_side(a, b, m, path_png=tmp_path / "x.png", labels="AB")
    with pytest.raises(ValueError, match="names_a has 3 entries"):
        side_by_side(a, b, m, path_png=tmp_path / "x.png", names_a=["a", "b", "c"])

