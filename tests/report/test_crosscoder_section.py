"""The crosscoder section: present with its figure and tables when the stage ran, absent when switched off,
a note when switched on but not run, every data string escaped."""

from featgeom_tda.report.comparison import SECTION_IDS, build_sections, write_comparison_report
from featgeom_tda.results import CrosscoderResult

from report.test_comparison_report import EVIL, RECIPE, URL, _png, typed_results


def _crosscoder(tmp_path, **changes):
    data = {
        "main_pair": "A__h--B__h", "width": 64, "k": 8, "n_tokens": 30, "training_steps": 10, "fvu": 0.2, "l0": 7.5,
        "dead_fraction": 0.05,
        "models": [{"layer": f"A__{EVIL}", "d_model": 8, "fvu": 0.25, "l0": 6.0},
                   {"layer": "B__h", "d_model": 8, "fvu": 0.15, "l0": 5.5}],
        "histogram_counts": [3] * 20, "histogram_edges": [i / 20 for i in range(21)],
        "class_counts": {"shared": 40, "exclusive_a": 7, "exclusive_b": 5, "partial": 9, "dead": 3},
        "block_cosines": {"alignment": "procrustes", "n_latents": 40, "mean_cosine": 0.61, "median_cosine": None,
                          "note": f"note {EVIL}"},
        "n_flagged": 2, "flagged_latents": [4, 9],
        "agreement": [{"latent_class": "shared", "n_latents": 40, "mean_corr_a": 0.7, "mean_corr_b": None,
                       "n_on_matched_pair": 12}],
        "n_matched_pairs": 20, "n_pairs_explained": 11,
        "feature_classes_a": {"shared": 20, "none": 12}, "feature_classes_b": {"exclusive_b": 3},
        "histogram": _png(tmp_path / "r.png"),
    }
    data.update(changes)
    return CrosscoderResult.from_dict(data)


def _recipe(enabled):
    return {**RECIPE, "crosscoder": {"enabled": enabled}}


def test_section_follows_the_pairs_with_its_numbers_and_escapes_data(tmp_path):
    results = {**typed_results(tmp_path), "crosscoder": _crosscoder(tmp_path)}
    out = write_comparison_report(tmp_path / "report", recipe=_recipe(True), results=results)
    ids = list(SECTION_IDS)
    assert out.sections == ids[: ids.index("pairs") + 1] + ["crosscoder"] + ids[ids.index("pairs") + 1:]
    sec = {s.id: s for s in build_sections(results, _recipe(True), report_dir=tmp_path)}["crosscoder"]
    fit, classes, features = (t.rows for t in sec.tables)
    assert fit[0] == ["model A", f"A__{EVIL}", 8, 0.25, 6.0] and fit[2][3:] == [0.2, 7.5]
    assert [r[2] for r in classes] == [40, 7, 5, 9, 3] and classes[0][3:] == [0.7, None, 12]
    assert features == [["SAE A", 20, 0, 0, 0, 12], ["SAE B", 0, 0, 3, 0, 0]]
    assert any("11 of them" in n for n in sec.notes) and any("latents 4, 9" in n for n in sec.notes)
    html = open(out.html).read()
    assert 'id="crosscoder"' in html and EVIL not in html and "note &lt;script&gt;" in html
    assert not URL.search(html)
    assert (tmp_path / "report" / "crosscoder_classes.csv").exists()


def test_section_absent_when_switched_off(tmp_path):
    results = {**typed_results(tmp_path), "crosscoder": CrosscoderResult(skipped="switched off")}
    assert [s.id for s in build_sections(results, _recipe(False), report_dir=tmp_path)] == list(SECTION_IDS)
    assert [s.id for s in build_sections(typed_results(tmp_path), RECIPE, report_dir=tmp_path)] == list(SECTION_IDS)


def test_switched_on_but_not_run_says_why(tmp_path):
    results = {**typed_results(tmp_path), "crosscoder": CrosscoderResult(skipped=f"rows are units {EVIL}")}
    sec = {s.id: s for s in build_sections(results, _recipe(True), report_dir=tmp_path)}["crosscoder"]
    assert sec.notes == [f"rows are units {EVIL}"] and not sec.tables


def test_no_shared_latents_leave_the_cosines_out(tmp_path):
    results = {**typed_results(tmp_path),
               "crosscoder": _crosscoder(tmp_path, block_cosines=None, block_cosines_skipped="0 shared latent(s)",
                                         n_flagged=0, flagged_latents=[], histogram="")}
    sec = {s.id: s for s in build_sections(results, _recipe(True), report_dir=tmp_path)}["crosscoder"]
    assert "Block cosines not computed: 0 shared latent(s)." in sec.notes and not sec.figures
