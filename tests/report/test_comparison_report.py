"""The comparison report renders typed stage results: every section filled, data escaped, no network."""

import json
import re

import pytest

from featgeom_tda.report.comparison import SECTION_IDS, build_sections, write_comparison_report
from featgeom_tda.report.html import ScoreCell, write_report
from featgeom_tda.results import STAGE_RESULTS

EVIL = "<script>alert(1)</script>"
URL = re.compile(r"https?://|(src|href)=[\"']//", re.I)


def _png(path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1])
    fig.savefig(path)
    return str(path)


def stage_payloads(tmp_path):
    """Plain stage results as results.json holds them (a complete small run)."""
    png = _png(tmp_path / "f.png")
    metric = {"score": 0.8, "null_mean": 0.2, "null_std": 0.05, "p_value": 0.001, "subset_mean": 0.21, "subset_std": 0.01}
    example = {"feature": 1, "row": 0, "doc": 0, "position": 1, "activation": 2.0, "token_id": 5, "token": EVIL,
               "context": f"the {EVIL} [[king]] said"}
    pair = "A__h--B__h"
    stats = {"n_nodes": 3, "n_edges": 2, "n_components": 1, "betti_1": 0, "nerve_betti_1": 0, "coverage": 1.0,
             "node_size": {"mean": 2.0}, "degree": {"mean": 1.3}}
    rel = {"n_a_pairs": 4, "observed": 0.5, "null_mean": 0.1, "null_std": 0.05, "lift": 5.0, "p_value": 0.01}
    summary = {"n_bars": 3, "n_infinite": 0, "total_persistence": 0.3, "max_persistence": 0.2, "persistence_entropy": 1.0}
    run = {"engine": "giotto", "n_points": 10, "threshold": 0.5, "exact": True, "seconds": 0.1}
    return {
        "sources": {"models": {"A": {"n_layers": 1, "d_model": 8, "d_mlp": 32, "n_params": 10, "final_loss": 1.0,
                                     "unigram_entropy": 5.0}},
                    "saes": {"A__h": {"model": "A", "hook": "h", "kind": "train", "width": 32, "fvu": 0.1, "l0": 4.0,
                                      "dead_fraction": 0.0}},
                    "n_texts": 3},
        "extraction": {"n_docs": 3, "n_tokens": 30, "layers": {"A__h": {"n_tokens": 30, "n_features": 32, "mean_l0": 4.0,
                                                                        "dead_on_data": 0.0, "store": "s"}}},
        "matching": {"pairs": {pair: {"a": "A__h", "b": "B__h", "n_pairs": 5, "n_features_a": 32, "n_features_b": 32,
                                      "mean_correlation": 0.5, "median_correlation": 0.5, "filtered": {"dead_a": 1}}},
                     "main_pair": pair, "histogram": png},
        "geometry": {"grid": {pair: {"a": "A__h", "b": "B__h", "n_pairs": 5, "svcca_components": [2, 2],
                                     "metrics": {"svcca": metric, "cka": metric}, "svcca_single_component": 0.9}},
                     "heatmaps": {"svcca": png},
                     "subspaces": [{"concept": EVIL, "n_features_a": 6, "n_features_b": 7, "n_pairs": 5, "scores": {"cka": 0.7},
                                    "null_means": {"cka": 0.1}, "p_values": {"cka": 0.01}, "skipped": None}],
                     "spectra": {"rows": [{"matrix": "SAE decoder A", "shape": [32, 8], "effective_rank": 6.0,
                                           "random_effective_rank": 7.5, "tail_slope": -0.5, "random_tail_slope": -0.2,
                                           "distance_to_random": 0.1}],
                                 "plot": png, "decoder_distance_main_pair": 0.05}},
        "topology": {"main_pair": pair,
                     "mapper": {"a": {"layer": "A__h", "html": "mapper_a.html", "statistics": stats},
                                "b": {"layer": "B__h", "html": "mapper_b.html", "statistics": stats},
                                "comparison": {"same": rel, "adjacent": rel}},
                     "persistence": {"summaries": {"a": {"H1": summary}},
                                     "distances": {"bottleneck_H1": {"a_vs_b": 0.1, "a_vs_gaussian": 0.2, "b_vs_gaussian": 0.2,
                                                                     "gaussian_a_vs_gaussian_b": 0.05}},
                                     "runs": {"a": run}, "plot": png},
                     "projection": {"png": png, "html": "projection_pca.html", "method": "pca"}},
        "interpretation": {"main_pair": pair, "pairs": {pair: {
            "n_pairs": 5,
            "same_token": {"n_pairs": 5, "score": 0.6, "baseline_mean": 0.05, "baseline_std": 0.02, "p_value": 0.005},
            "top_pairs": [{"feature_a": 1, "feature_b": 2, "correlation": 0.9, "concept_a": "royalty", "concept_b": None,
                           "examples_a": [example], "examples_b": [example]}],
            "concept_agreement": {"pairs_with_a_concept": 3, "same_concept": 2}}}},
        "steering": {"tasks": [{"name": "pronoun", "desired": "she", "n_prompts": 4, "feature_a": 1, "feature_b": 2,
                                "partner_correlation": 0.3, "alpha_units": "norm",
                                "rows": [{"alpha": 0.0, "success_rate_a": 0.0, "success_rate_b": 0.1,
                                          "success_rate_b_random_feature": 0.1, "kl_a": 0.0, "kl_b": 0.0}]}],
                     "figures": {"pronoun sweep": png}, "notes": []},
    }


def typed_results(tmp_path):
    return {name: STAGE_RESULTS[name].from_dict(data) for name, data in stage_payloads(tmp_path).items()}


RECIPE = {"name": "t", "seed": 0, "models": [{"name": "A"}, {"name": "B"}]}


def test_comparison_report_has_every_section_no_url_and_escapes_data(tmp_path):
    sections = build_sections(typed_results(tmp_path), RECIPE, report_dir=tmp_path, stage_seconds={"sources": 1.0})
    assert [s.id for s in sections] == list(SECTION_IDS)
    html = write_report(tmp_path / "out", "report", sections).read_text()
    for sid in SECTION_IDS:
        assert f'id="{sid}"' in html
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not URL.search(html)
    assert "SVCCA, 1 component (as the original code computed it)" in html
    assert html.count("data:image/png;base64,") >= 6
    assert (tmp_path / "out" / "top_pairs.csv").exists() and (tmp_path / "out" / "similarity.csv").exists()


def test_every_section_shows_its_numbers(tmp_path):
    """A section that silently lost its data would render an empty table: each table has rows."""
    sections = build_sections(typed_results(tmp_path), RECIPE, report_dir=tmp_path, stage_seconds={"sources": 1.0})
    for s in sections:
        assert s.tables or s.figures or s.links or s.embeds, s.id
        for t in s.tables:
            assert len(t.rows) > 0, (s.id, t.caption)
            assert all(len(r) == len(t.columns) for r in t.rows), (s.id, t.caption)
    by_id = {s.id: s for s in sections}
    sim = by_id["similarity"].tables[0].rows
    assert ["A__h", "B__h", 5, "SVCCA", ScoreCell(0.8, 0.2, 0.05, 0.001), 0.21] in sim  # the score beside its null
    assert by_id["steering"].tables[0].rows == [[0.0, 0.0, 0.1, 0.1, 0.0, 0.0]]
    assert by_id["mapper"].tables[1].rows[0] == ["same", 4, ScoreCell(0.5, 0.1, 0.05, 0.01), 5.0]


def test_a_score_cell_renders_beside_its_null_and_expands_in_the_csv(tmp_path):
    import csv

    out = write_comparison_report(tmp_path / "report", recipe=RECIPE, results=typed_results(tmp_path))
    html = open(out.html).read()
    assert '<td class="score"><b>0.8</b> <span class="null">(null 0.2 ± 0.05, p 0.001)</span></td>' in html
    with open(tmp_path / "report" / "similarity.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][4:8] == ["score", "score null mean", "score null std", "score p-value"]
    assert rows[1][4:8] == ["0.8", "0.2", "0.05", "0.001"]
    assert "How to read this:" in html and '<details class="code">' in html and "onclick=\"zoom(this)\"" in html
    assert '<span class="key">name</span>' in html  # the recipe as highlighted YAML


def test_missing_stage_gives_a_note_not_a_crash(tmp_path):
    results = typed_results(tmp_path)
    del results["topology"]
    sections = {s.id: s for s in build_sections(results, RECIPE, report_dir=tmp_path)}
    assert sections["mapper"].notes == ["The topology stage has not run."]


def test_results_json_holds_schema_version_and_every_stage(tmp_path):
    out = write_comparison_report(tmp_path / "report", recipe=RECIPE, results=typed_results(tmp_path))
    data = json.loads(open(out.results_json).read())
    assert data["schema_version"] == 2
    assert set(data["stages"]) == set(stage_payloads(tmp_path))
    assert data["stages"]["geometry"]["grid"]["A__h--B__h"]["metrics"]["svcca"]["score"] == 0.8
    assert out.sections == list(SECTION_IDS)
