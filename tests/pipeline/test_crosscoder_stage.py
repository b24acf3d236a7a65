"""The crosscoder stage on the small embedded default: it reads the compared rows, is cached, and its typed result
round-trips through JSON; the report section and the explorer's crosscoder labels come from it."""

import json

import numpy as np
import pytest
import yaml

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import main_pair, pair_key
from featgeom_tda.pipeline.packaged import packaged_recipe
from featgeom_tda.pipeline.recipe import recipe_from_dict
from featgeom_tda.pipeline.stages import crosscoder, extraction, matching, sources
from featgeom_tda.report.tables import to_plain_json
from featgeom_tda.results import STAGE_RESULTS, CrosscoderResult


def _recipe(root, **crosscoder_spec):
    data = yaml.safe_load(packaged_recipe("embedded").read_text())
    data.update(embedded_size="small", cache_dir=str(root / "cache"), output_dir=str(root / "out"), token_budget=2000)
    data["dataset"] = {"source": "embedded", "max_length": 32, "n_documents": 120}
    data["matching"]["threshold"] = 0.1
    data["models"][0]["layers"][0]["sae"]["k"] = 4
    data["models"][1]["layers"] = data["models"][1]["layers"][-1:]  # one layer pair
    data["models"][1]["layers"][0]["sae"]["k"] = 4
    data["crosscoder"] = crosscoder_spec
    return recipe_from_dict(data)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cc")
    recipe = _recipe(root, enabled=True, width_multiple=2, k=8, training_tokens=20_000, batch_size=256)
    ctx = RunContext(recipe, root / "out")
    for name, module in (("sources", sources), ("extraction", extraction), ("matching", matching)):
        ctx.stage_results[name] = module.run(ctx)
    result = crosscoder.run(ctx)
    return ctx, result


def test_stage_is_off_by_default(tmp_path):
    ctx = RunContext(_recipe(tmp_path), tmp_path / "out")
    result = crosscoder.run(ctx)
    assert result.skipped and "switched off" in result.skipped
    assert not (tmp_path / "out" / "crosscoder").exists()  # nothing built or trained


def test_stage_reads_the_compared_rows_and_reports_bounded_numbers(run):
    ctx, r = run
    a, b = main_pair(ctx.recipe)
    acts = ctx.activations()
    assert r.skipped is None and r.main_pair == pair_key(a, b)
    assert r.n_tokens == acts[a.key].n_tokens == acts[b.key].n_tokens == ctx.dataset().n_rows()
    d = [m.d_model for m in r.models]
    assert r.width == 2 * sum(d) and r.k == 8 and r.training_steps == 20_000 // 256
    for m in r.models:
        assert 0.0 <= m.fvu < 1.0 and 0.0 < m.l0 <= 8
    assert sum(r.class_counts.values()) == r.width
    assert sum(r.histogram_counts) == r.width - r.class_counts["dead"] and len(r.histogram_edges) == 21
    assert sum(x.n_latents for x in r.agreement) == r.width - r.class_counts["dead"]
    assert 0 <= r.n_pairs_explained <= min(r.n_matched_pairs, r.class_counts["shared"])
    assert sum(r.feature_classes_a.values()) == acts[a.key].n_features
    assert r.n_flagged == len(r.flagged_latents) or len(r.flagged_latents) == 50


def test_latent_agreement_is_checked_against_a_float64_correlation(run):
    """The first shared latent's best SAE A feature and correlation, recomputed densely with numpy."""
    from featgeom_tda.sources.crosscoders import load_crosscoder

    ctx, r = run
    a, b = main_pair(ctx.recipe)
    raw = ctx.hook_activations([a, b])
    cc = load_crosscoder(r.directory)
    z = cc.encode(raw[a.key], raw[b.key]).toarray().astype(np.float64)
    fa = ctx.activations()[a.key].matrix.toarray().astype(np.float64)
    labels = json.loads(open(r.feature_labels).read())
    live_a = np.flatnonzero(fa.std(axis=0) > 0)
    f = int(live_a[0])
    zc, xc = z - z.mean(axis=0), fa[:, f] - fa[:, f].mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (zc * xc[:, None]).sum(axis=0) / (np.linalg.norm(zc, axis=0) * np.linalg.norm(xc))
    corr[~np.isfinite(corr)] = -np.inf
    assert labels["a"]["latent"][f] == int(np.argmax(corr))
    assert labels["a"]["correlation"][f] == pytest.approx(corr.max(), abs=2e-4)


def test_a_rerun_reuses_the_saved_crosscoder(run, monkeypatch):
    ctx, r = run
    import featgeom_tda.sources.crosscoders as mod

    monkeypatch.setattr(mod, "train_crosscoder", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = crosscoder.run(ctx)
    assert again.directory == r.directory and again.class_counts == r.class_counts
    assert again.models == r.models


def test_result_round_trips_through_json_nan_safe(run):
    _, r = run
    plain = json.loads(json.dumps(to_plain_json(r.to_dict()), allow_nan=False))
    assert STAGE_RESULTS["crosscoder"].from_dict(plain) == r
    broken = CrosscoderResult(main_pair="x", fvu=float("nan"), models=[])
    back = CrosscoderResult.from_dict(json.loads(json.dumps(to_plain_json(broken.to_dict()), allow_nan=False)))
    assert back.fvu is None
    assert CrosscoderResult.from_dict({"skipped": "off"}).skipped == "off"


def test_report_section_and_explorer_labels(run, tmp_path):
    from featgeom_tda.pipeline.stages.explorer import write_run_explorer
    from featgeom_tda.report.comparison import build_sections
    from featgeom_tda.viz.explorer import read_explorer_payload

    ctx, r = run
    ctx.stage_results["crosscoder"] = r
    sections = {s.id: s for s in build_sections(ctx.stage_results, ctx.recipe.to_dict(), report_dir=tmp_path)}
    sec = sections["crosscoder"]
    assert sec.figures and sec.how_to_read
    assert [row[2] for row in sec.tables[1].rows] == [r.class_counts[c] for c in
                                                      ("shared", "exclusive_a", "exclusive_b", "partial", "dead")]
    payload = read_explorer_payload(write_run_explorer(ctx, tmp_path / "explorer.html"))
    labels = json.loads(open(r.feature_labels).read())
    classes = payload["crosscoder"]["classes"]
    assert [classes[i] for i in payload["sides"]["a"]["xc"]] == labels["a"]["class"]
    assert payload["sides"]["b"]["xcl"] == labels["b"]["latent"]
    assert "best" in payload["crosscoder"]["rule"]
