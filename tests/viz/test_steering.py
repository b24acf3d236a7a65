"""Steering figures: the before/after panels and the alpha sweep, written as PNG files."""

from __future__ import annotations

import pytest

from analyses.steering.helpers import _active_feature, HOOK_A
from featgeom_tda.analyses.steering import (
    ablate,
    feature_activation_change,
)
from featgeom_tda.viz.steering import plot_alpha_sweep, plot_before_after
from analyses.steering.fixtures import model_a, prompts, sae_a, tokenizer  # noqa: F401


def test_plot_before_after_and_alpha_sweep_write_pngs(model_a, sae_a, prompts, tmp_path):
    feat = _active_feature(model_a, sae_a, prompts)
    change = feature_activation_change(model_a, HOOK_A, sae_a, prompts, ablate(model_a, HOOK_A, sae_a, [feat]), top_n=5)
    out = plot_before_after(change, tmp_path / "fig" / "before_after.png")
    assert out.exists() and out.stat().st_size > 1000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [{"alpha": 0.0, "success_rate": 0.0, "kl_unrelated": 0.0}, {"alpha": 1.0, "success_rate": 0.5, "kl_unrelated": 0.1}]
    assert plot_alpha_sweep(rows, tmp_path / "sweep.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="token_labels has 2"):
        plot_before_after(change, tmp_path / "x.png", token_labels=["a", "b"])
    with pytest.raises(ValueError, match="at least one row"):
        plot_alpha_sweep([], tmp_path / "y.png")
