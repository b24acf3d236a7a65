"""PNG figures of persistence diagrams and Betti curves."""

import numpy as np
import pytest

from analyses.topology.shapes import circle
from featgeom_tda.analyses.topology import PersistenceDiagrams, persistence
from featgeom_tda.viz.topology import plot_betti_curves, plot_diagrams


def test_plots_write_pngs(tmp_path):
    dg = persistence(circle(n=50), n_landmarks=30)
    back = PersistenceDiagrams.load(dg.save(tmp_path / "dg"))
    assert plot_diagrams({"a": dg, "b": back}, tmp_path / "d.png").stat().st_size > 1000
    assert plot_betti_curves(dg, tmp_path / "b.png").stat().st_size > 1000
    out = plot_diagrams(dg, tmp_path / "sub" / "t.png", title="one")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_betti_curves({"x": dg}, tmp_path / "b0.png", dim=0, n_grid=10, title="H0").stat().st_size > 1000


def test_plots_use_no_pyplot_state(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_diagrams(PersistenceDiagrams(bars=np.array([[0.0, 1.0, 0], [0.2, np.inf, 1]]), maxdim=1), tmp_path / "p.png")
    assert plt.get_fignums() == before


def test_bad_inputs_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="PersistenceDiagrams"):
        plot_diagrams({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="n_grid"):
        plot_betti_curves(PersistenceDiagrams(bars=np.zeros((0, 3)), maxdim=1), tmp_path / "x.png", n_grid=1)
