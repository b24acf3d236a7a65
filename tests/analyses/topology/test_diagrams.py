"""PersistenceDiagrams, its summaries, Betti curves and save / load."""

import math

import numpy as np
import pytest

from analyses.topology.shapes import circle
from featgeom_tda.analyses.topology import PersistenceDiagrams, betti_curve, persistence, persistence_entropy


def _toy():
    bars = np.array(
        [[0.0, np.inf, 0], [0.0, 1.0, 0], [0.0, 3.0, 0], [1.0, 2.0, 1], [1.5, 4.0, 1], [2.0, 2.5, 1]], dtype=float
    )
    return PersistenceDiagrams(bars=bars, maxdim=1)


def test_summary_closed_form():
    s = _toy().summary()
    assert s["H0"] == {
        "n_bars": 3,
        "n_infinite": 1,
        "total_persistence": 4.0,
        "max_persistence": 3.0,
        "persistence_entropy": pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))),
    }
    p = np.array([1.0, 2.5, 0.5]) / 4.0
    assert s["H1"]["total_persistence"] == 4.0 and s["H1"]["max_persistence"] == 2.5
    assert s["H1"]["persistence_entropy"] == pytest.approx(float(-(p * np.log(p)).sum()))
    assert persistence_entropy(np.zeros((0, 2))) == 0.0
    assert persistence_entropy(np.array([[0.0, 1.0]])) == 0.0


def test_betti_curve_closed_form():
    dg = _toy()
    grid = [0.0, 0.5, 1.0, 1.75, 2.0, 2.25, 3.0, 10.0]
    np.testing.assert_array_equal(betti_curve(dg, 0, grid), [3, 3, 2, 2, 2, 2, 1, 1])
    np.testing.assert_array_equal(betti_curve(dg, 1, grid), [0, 0, 1, 2, 2, 2, 1, 0])
    np.testing.assert_array_equal(dg.betti_curve(1, grid), betti_curve(dg.bars, 1, grid))


def test_save_load_roundtrip(tmp_path):
    dg = persistence(circle(n=50), n_landmarks=30)
    back = PersistenceDiagrams.load(dg.save(tmp_path / "dg"))
    np.testing.assert_array_equal(back.bars, dg.bars)
    np.testing.assert_array_equal(back.landmark_indices, dg.landmark_indices)
    assert back.summary() == dg.summary() and back.exact == dg.exact


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="grid"):
        betti_curve(_toy(), 1, [])
    with pytest.raises(ValueError, match="death < birth"):
        PersistenceDiagrams(bars=[[1.0, 0.5, 0]], maxdim=0)
    with pytest.raises(ValueError, match="not saved persistence diagrams"):
        PersistenceDiagrams.load("/nonexistent/path")
