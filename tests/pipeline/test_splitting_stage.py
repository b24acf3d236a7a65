"""The splitting stage on the small embedded default: SAEs of one spec at three widths on A's main hook, split
families between consecutive widths (checked against a float64 recomputation), each width matched against B and
scored like the grid, cached SAEs, a JSON round trip and the report section."""

import json

import numpy as np
import pytest
import yaml

from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.layers import main_pair, pair_key
from featgeom_tda.pipeline.packaged import packaged_recipe
from featgeom_tda.pipeline.recipe import RecipeError, recipe_from_dict
from featgeom_tda.pipeline.stages import extraction, matching, sources, splitting
from featgeom_tda.report.tables import to_plain_json
from featgeom_tda.results import STAGE_RESULTS, SplittingResult


def _data(root, **splitting_spec):
    data = yaml.safe_load(packaged_recipe("embedded").read_text())
    data.update(embedded_size="small", cache_dir=str(root / "cache"), output_dir=str(root / "out"), token_budget=2000)
    data["dataset"] = {"source": "embedded", "max_length": 32, "n_documents": 120}
    data["matching"]["threshold"] = 0.1
    data["models"][0]["layers"][0]["sae"].update(k=4, training_tokens=20_000)
    data["models"][1]["layers"] = data["models"][1]["layers"][-1:]  # one layer pair
    data["models"][1]["layers"][0]["sae"].update(k=4, training_tokens=20_000)
    data["geometry"].update(n_permutations=20, n_subset_draws=3, metrics=["svcca", "cka", "mutual_knn"])
    data["splitting"] = splitting_spec
    return data


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    recipe = recipe_from_dict(_data(root, enabled=True, width_multiples=[2, 4, 8]))
    ctx = RunContext(recipe, root / "out")
    for name, module in (("sources", sources), ("extraction", extraction), ("matching", matching)):
        ctx.stage_results[name] = module.run(ctx)
    return ctx, splitting.run(ctx)


def test_stage_is_off_by_default(tmp_path):
    ctx = RunContext(recipe_from_dict(_data(tmp_path)), tmp_path / "out")
    result = splitting.run(ctx)
    assert result.skipped and "switched off" in result.skipped
    assert not (tmp_path / "out" / "splitting").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("widths, message", [([4], "at least two"), ([4, 2], "ascending"), ([2, 2], "ascending"),
                                             ([0, 2], "at least two integers >= 1"), ([2, True], "expected an integer")])
def test_recipe_refuses_bad_widths(tmp_path, widths, message):
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict(_data(tmp_path, enabled=True, width_multiples=widths))


def test_each_width_is_fit_matched_and_scored_beside_its_null(run):
    ctx, r = run
    a, b = main_pair(ctx.recipe)
    d_model = ctx.decoder_rows(a).shape[1]
    assert r.skipped is None and r.layer == a.key and r.against == b.key
    assert [w.width_multiple for w in r.widths] == [2, 4, 8]
    assert [w.n_features for w in r.widths] == [2 * d_model, 4 * d_model, 8 * d_model]
    assert [w.reused for w in r.widths] == [False, True, False]  # the layer's own SAE is not retrained
    own = r.widths[1]
    assert own.n_pairs == len(ctx.matchings()[pair_key(a, b)])
    for w in r.widths:
        assert 0.0 <= w.fvu < 1.0 and 0.0 < w.l0 <= 4 and 0.0 <= w.dead_fraction < 1.0
        assert w.skipped is None and w.n_pairs >= 10 and set(w.metrics) == {"svcca", "cka", "mutual_knn"}
        for s in w.metrics.values():
            assert s.null_mean is not None and s.p_value * 21 == pytest.approx(round(s.p_value * 21))  # (k+1)/(n+1)
    # the wide SAE reconstructs the compared rows better than the narrow one (same k, more features)
    assert r.widths[2].fvu < r.widths[0].fvu


def test_families_agree_with_a_float64_recomputation(run):
    """Every wide child's correlation with its parent and decoder cosine, recomputed densely with numpy."""
    from featgeom_tda.sources.saes import load_sae  # noqa: F401  (the cached SAEs are sae_lens SAEs)

    ctx, r = run
    step = r.steps[0]
    assert (step.narrow, step.wide) == (2, 4)
    x = step.summary
    assert x["n_narrow"] == r.widths[0].n_features and x["n_wide"] == r.widths[1].n_features
    assert sum(v for k, v in step.size_distribution.items() if int(k) >= 1) == x["n_families"]
    assert sum(step.size_distribution.values()) == x["n_narrow"] - x["n_dead_narrow"]
    assert sum(int(k) * v for k, v in step.size_distribution.items()) == x["n_children"]
    assert x["n_children"] + x["n_unassigned_wide"] + x["n_dead_wide"] == x["n_wide"]
    assert step.examples and step.examples[0]["n_children"] == x["max_family_size"]

    a, _ = main_pair(ctx.recipe)
    narrow, wide = _saes(ctx, a, [2, 4])
    raw = ctx.hook_activations([a])[a.key]
    fn = _dense_codes(narrow, raw)
    fw = ctx.activations()[a.key].matrix.toarray().astype(np.float64)  # the 4x SAE is the store's
    wn = narrow.W_dec.detach().double().numpy()
    ww = wide.W_dec.detach().double().numpy()
    for e in step.examples:
        p = e["parent"]
        for child, corr, cos in zip(e["children"], e["child_correlation"], e["child_cosine"]):
            assert corr == pytest.approx(np.corrcoef(fn[:, p], fw[:, child])[0, 1], abs=2e-4)
            assert cos == pytest.approx(wn[p] @ ww[child] / np.linalg.norm(wn[p]) / np.linalg.norm(ww[child]), abs=2e-4)
            assert corr >= r.min_correlation and cos >= r.min_cosine
            others = np.array([np.corrcoef(fn[:, q], fw[:, child])[0, 1] if fn[:, q].std() > 0 else -np.inf
                               for q in range(fn.shape[1])])
            assert int(np.nanargmax(others)) == p  # its parent is its most correlated narrow feature


def _saes(ctx, a, multiples):
    import dataclasses

    from featgeom_tda.pipeline.sources import sae_at_widths

    own = ctx.recipe.models[0].layers[0].sae
    return [sae for sae, _ in sae_at_widths(ctx.recipe, ctx.sources, a,
                                            [dataclasses.replace(own, width_multiple=m) for m in multiples])]


def _dense_codes(sae, x):
    import torch

    with torch.no_grad():
        return sae.encode(torch.from_numpy(x)).double().numpy()


def test_a_rerun_reuses_the_cached_saes(run, monkeypatch):
    ctx, r = run
    import featgeom_tda.sources.saes as mod

    monkeypatch.setattr(mod, "train_sae", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = splitting.run(ctx)
    assert again.widths == r.widths and again.steps == r.steps


def test_result_round_trips_through_json_and_reports(run, tmp_path):
    from featgeom_tda.report.comparison import build_sections

    ctx, r = run
    plain = json.loads(json.dumps(to_plain_json(r.to_dict()), allow_nan=False))
    assert STAGE_RESULTS["splitting"].from_dict(plain) == r
    assert SplittingResult.from_dict({"skipped": "off"}).skipped == "off"
    ctx.stage_results["splitting"] = r
    ids = [s.id for s in build_sections(ctx.stage_results, ctx.recipe.to_dict(), report_dir=tmp_path)]
    sec = next(s for s in build_sections(ctx.stage_results, ctx.recipe.to_dict(), report_dir=tmp_path)
               if s.id == "splitting")
    assert [row[1] for row in sec.tables[0].rows] == [w.n_features for w in r.widths]
    assert len(sec.tables[1].rows) == 2 and len(sec.figures) == 2
    off = {**ctx.stage_results, "splitting": SplittingResult(skipped="off")}
    assert "splitting" in ids
    assert "splitting" not in [s.id for s in build_sections(off, {**ctx.recipe.to_dict(), "splitting": {"enabled": False}},
                                                            report_dir=tmp_path)]


def test_matching_stage_reports_one_to_one_against_the_optimal_assignment(run):
    """The matching stage's totals (it ran in the fixture): the optimum of the thresholded candidate graph, which
    an independent float64 dense assignment over the same graph reproduces, is at least the one-to-one total."""
    from scipy.optimize import linear_sum_assignment

    ctx, _ = run
    a, b = main_pair(ctx.recipe)
    t = ctx.stage_results["matching"].pairs[pair_key(a, b)].assignment
    assert t is not None and t.optimal_total >= t.one_to_one_total - 1e-6 and 0 < t.ratio <= 1 + 1e-9
    assert t.one_to_one_pairs >= ctx.stage_results["matching"].pairs[pair_key(a, b)].n_pairs  # before token filters

    xa = ctx.activations()[a.key].matrix.toarray().astype(np.float64)
    xb = ctx.activations()[b.key].matrix.toarray().astype(np.float64)
    live_a, live_b = xa.std(axis=0) > 0, xb.std(axis=0) > 0
    za = (xa - xa.mean(0)) / np.where(live_a, xa.std(0), 1)
    zb = (xb - xb.mean(0)) / np.where(live_b, xb.std(0), 1)
    corr = za.T @ zb / xa.shape[0]
    corr[~live_a] = -np.inf
    corr[:, ~live_b] = -np.inf
    k, threshold = ctx.recipe.matching.top_k, ctx.recipe.matching.threshold
    edges = np.zeros_like(corr, dtype=bool)
    rows = np.flatnonzero(live_a)
    edges[rows[:, None], np.argsort(-corr[rows], axis=1)[:, :k]] = True  # each live A feature's top k
    cols = np.flatnonzero(live_b)
    edges[np.argsort(-corr[:, cols], axis=0)[:k], cols[None, :]] = True  # each live B feature's top k
    weight = np.where(edges & (corr >= threshold) & (corr > 0), corr, 0.0)
    r, c = linear_sum_assignment(weight, maximize=True)
    assert t.optimal_total == pytest.approx(weight[r, c].sum(), abs=1e-3)


def test_hook_activations_are_read_once_per_run(run, monkeypatch):
    """The splitting stage read A's hook; asking again (as the crosscoder stage does) runs no model."""
    import featgeom_tda.sources.saes as saes_mod

    ctx, _ = run
    a, b = main_pair(ctx.recipe)
    first = ctx.hook_activations([a])[a.key]
    monkeypatch.setattr(saes_mod, "collect_activations_at",
                        lambda *args, **kwargs: (_ for _ in ()).throw(AssertionError("ran the model again")))
    assert ctx.hook_activations([a])[a.key] is first
    with pytest.raises(AssertionError, match="ran the model again"):
        ctx.hook_activations([a, b])  # B's hook was never read


def test_steering_can_steer_the_main_pairs_second_layer(run):
    """steering.steer = "b": the second layer of the main pair is steered with its own feature, the first gets the
    partner; the notes say so (shares this module's small run)."""
    import dataclasses

    from featgeom_tda.pipeline.stages import steering

    ctx, _ = run
    a, b = main_pair(ctx.recipe)
    recipe = dataclasses.replace(ctx.recipe, steering=dataclasses.replace(ctx.recipe.steering, steer="b", tasks=["pronoun"]))
    swapped = RunContext(recipe, ctx.out_dir)
    r = steering.run(swapped)
    assert any("steering.steer is 'b'" in n and b.label in n for n in r.notes)
    for task in r.tasks:
        assert 0 <= task.feature_a < ctx.activations()[b.key].n_features
        assert 0 <= task.feature_b < ctx.activations()[a.key].n_features
