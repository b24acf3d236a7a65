"""The crosscoder-against-matching table runs end to end and its numbers are rates."""

import math

from featgeom_tda.pipeline.crosscoder_check import crosscoder_truth_markdown, crosscoder_truth_rows


def test_a_small_sweep_gives_rates_for_both_methods():
    rows = crosscoder_truth_rows(fractions=(0.0, 1.0), n_features=8, d_a=12, d_b=10, n_samples=3000, steps=150,
                                 batch_size=512)
    assert [r["shared_fraction"] for r in rows] == [0.0, 1.0]
    for r in rows:
        for method in ("crosscoder", "matching"):
            for value in r[method].values():
                assert math.isnan(value) or 0.0 <= value <= 1.0
        assert 0.0 <= r["fvu_a"] <= 1.5 and 0.0 <= r["fvu_b"] <= 1.5
    # nothing shared: no true shared feature to recall; everything shared: no exclusive feature to recall
    assert math.isnan(rows[0]["crosscoder"]["recall_shared"]) and math.isnan(rows[1]["crosscoder"]["recall_exclusive"])
    assert crosscoder_truth_markdown(rows).count("\n") == 3
