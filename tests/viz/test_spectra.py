"""plot_spectra: random baselines dashed, log-log axes, a PNG file, clear errors on bad input.

The line styles are read from the private ``_spectra_figure`` on purpose: it is the Figure that
``plot_spectra`` writes, and the file itself cannot be inspected for styles.
"""

import numpy as np
import pytest

from featgeom_tda.analyses.geometry import random_spectrum, spectrum
from featgeom_tda.viz import spectra as spectra_module
from featgeom_tda.viz.spectra import plot_spectra


def with_singular_values(s, n_rows, seed=0):
    """A matrix n_rows x len(s) whose singular values are exactly s."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n_rows, len(s))))[0]
    V = np.linalg.qr(rng.standard_normal((len(s), len(s))))[0]
    return U @ np.diag(s) @ V.T


def test_plot_spectra_draws_random_baselines_dashed(tmp_path):
    """Pins the private _spectra_figure on purpose: the drawn Figure is the only place line styles can be read."""
    spectra = {
        "decoder": spectrum(with_singular_values(np.arange(1, 21, dtype=float) ** -1.0, 50)),
        "random": random_spectrum((50, 20), seed=0),
    }
    fig = spectra_module._spectra_figure(spectra, quantity="normalized", title="t")
    styles = [line.get_linestyle() for line in fig.axes[0].lines]
    assert styles == ["-", "--"]
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    path = plot_spectra(spectra, tmp_path / "sub" / "spectra.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_spectra_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"spectra\['x'\] must be a Spectrum"):
        plot_spectra({"x": np.ones(3)}, tmp_path / "p.png")
    with pytest.raises(ValueError, match=r"quantity must be one of"):
        plot_spectra({"x": random_spectrum((4, 3))}, tmp_path / "p.png", quantity="log")
