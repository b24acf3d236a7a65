import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from featgeom_tda.report.comparison import SECTION_IDS, build_sections
from featgeom_tda.report.html import write_report

EVIL = "<script>alert(1)</script>"
URL = re.compile(r"https?://|(src|href)=[\"']//", re.I)


def _png(path):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1])
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def _results(tmp_path):
    png = _png(tmp_path / "f.png")
    metric = {"score": 0.8, "null_mean": 0.2, "null_std": 0.05, "p_value": 0.001, "subset_mean": 0.21}
    example = {"context": f"the {EVIL} [[king]] said", "token": EVIL}
    pair = "A__h--B__h"
    return {
        "sources": {"models": {"A": {"n_layers": 1, "d_model": 8, "n_params": 10, "final_loss": 1.0, "unigram_entropy": 5.0}},
                    "saes": {"A__h": {"model": "A", "hook": "h", "kind": "train", "width": 32, "fvu": 0.1, "l0": 4, "dead_fraction": 0.0}}},
        "extraction": {"n_docs": 3, "n_tokens": 30, "layers": {"A__h": {"mean_l0": 4.0, "dead_on_data": 0.0}}},
        "matching": {"pairs": {pair: {"a": "A__h", "b": "B__h", "n_pairs": 5, "n_features_a": 32, "n_features_b": 32,
                                      "mean_correlation": 0.5, "median_correlation": 0.5, "filtered": {"dead_a": 1}}},
                     "main_pair": pair, "histogram": png},
        "geometry": {"grid": {pair: {"a": "A__h", "b": "B__h", "n_pairs": 5, "svcca_components": [2, 2],
                                     "metrics": {"svcca": metric, "cka": metric, "svcca_single_component": {"score": 0.9}}}},
                     "heatmaps": {"svcca": png},
                     "subspaces": [{"concept": EVIL, "n_features_a": 6, "n_features_b": 7, "n_pairs": 5, "scores": {"cka": 0.7},
                                    "null_means": {"cka": 0.1}, "p_values": {"cka": 0.01}, "skipped": None}],
                     "spectra": {"rows": [{"matrix": "SAE decoder A", "shape": [32, 8], "effective_rank": 6.0, "random_effective_rank": 7.5,
                                           "tail_slope": -0.5, "random_tail_slope": -0.2, "distance_to_random": 0.1}],
                                 "plot": png, "decoder_distance_main_pair": 0.05}},
        "topology": {"mapper": {"a": {"layer": "A__h", "html": "mapper_a.html", "statistics": {"n_nodes": 3, "n_edges": 2, "n_components": 1, "betti_1": 0}},
                                "b": {"layer": "B__h", "html": "mapper_b.html", "statistics": {"n_nodes": 4, "n_edges": 4, "n_components": 1, "betti_1": 1}},
                                "comparison": {"same": {"n_a_pairs": 4, "observed": 0.5, "null_mean": 0.1, "null_std": 0.05, "lift": 5.0, "p_value": 0.01}}},
                     "persistence": {"summaries": {"a": {"H1": {"n_bars": 3, "total_persistence": 0.3, "max_persistence": 0.2, "persistence_entropy": 1.0}}},
                                     "distances": {"bottleneck_H1": {"a_vs_b": 0.1, "a_vs_gaussian": 0.2, "b_vs_gaussian": 0.2, "gaussian_a_vs_gaussian_b": 0.05}},
                                     "plot": png},
                     "projection": {"png": png, "html": "projection_pca.html", "method": "pca"}},
        "interpretation": {"main_pair": pair, "pairs": {pair: {
            "same_token": {"n_pairs": 5, "score": 0.6, "baseline_mean": 0.05, "baseline_std": 0.02, "p_value": 0.005},
            "top_pairs": [{"feature_a": 1, "feature_b": 2, "correlation": 0.9, "concept_a": "royalty", "concept_b": None,
                           "examples_a": [example], "examples_b": [example]}],
            "concept_agreement": {"pairs_with_a_concept": 3, "same_concept": 2}}}},
        "steering": {"tasks": [{"name": "pronoun", "desired": "she", "feature_a": 1, "feature_b": 2,
                                "rows": [{"alpha": 0.0, "success_rate_a": 0.0, "success_rate_b": 0.1, "kl_a": 0.0, "kl_b": 0.0}]}],
                     "figures": {"pronoun sweep": png}, "notes": []},
    }


def test_comparison_report_has_every_section_no_url_and_escapes_data(tmp_path):
    sections = build_sections(_results(tmp_path), {"name": "t"}, report_dir=tmp_path, stage_seconds={"sources": 1.0})
    assert [s.id for s in sections] == list(SECTION_IDS)
    html = write_report(tmp_path / "out", "report", sections).read_text()
    for sid in SECTION_IDS:
        assert f'id="{sid}"' in html
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not URL.search(html)
    assert "SVCCA, 1 component (as the original code computed it)" in html
    assert html.count("data:image/png;base64,") >= 6
    assert (tmp_path / "out" / "top_pairs.csv").exists() and (tmp_path / "out" / "similarity.csv").exists()
