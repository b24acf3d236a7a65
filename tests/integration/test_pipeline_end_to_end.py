"""The whole pipeline on the small embedded default: every stage runs, the report is written, reruns are cached."""

import json
import re

import pytest
import yaml

from featgeom_tda import cli
from featgeom_tda.pipeline import STAGES, run_recipe
from featgeom_tda.pipeline.recipe import recipe_from_dict
from featgeom_tda.report.tables import to_plain_json
from featgeom_tda.report.comparison import SECTION_IDS
from featgeom_tda.pipeline.packaged import packaged_recipe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = yaml.safe_load(packaged_recipe("embedded").read_text())
    data.update(embedded_size="small", cache_dir=str(root / "cache"), output_dir=str(root / "out"), token_budget=3000)
    data["dataset"] = {"source": "embedded", "max_length": 32, "n_documents": 200}
    data["geometry"]["n_permutations"] = 20
    data["geometry"]["n_subset_draws"] = 5
    data["topology"]["n_landmarks"] = 60
    data["matching"]["threshold"] = 0.1
    # the randomised control of B (off in the embedded default: it trains one more SAE), on a small budget
    data["geometry"]["controls"] = ["neurons", "activations", "residual", "random_model"]
    data["geometry"]["random_model_training_tokens"] = 50_000
    data["geometry"]["random_model_seeds"] = [0, 1]  # two re-initialisations, each with its own SAE
    data["splitting"]["training_tokens"] = 20_000  # feature splitting (on in the embedded default), on a small budget
    # the small embedded default's SAEs are TopK k=4: model A asks for that one, model B for k=16 (so it is trained)
    data["models"][0]["layers"][0]["sae"]["k"] = 4
    recipe = recipe_from_dict(data)
    pipe = run_recipe(recipe)
    return recipe, pipe


def test_every_stage_ran_and_report_written(small_run):
    recipe, pipe = small_run
    assert list(pipe.records) == list(STAGES)
    assert not any(r.cached for r in pipe.records.values())
    html_path = pipe.results("report").html
    html = open(html_path).read()
    for sid in SECTION_IDS:
        assert f'id="{sid}"' in html
    assert 'id="splitting"' in html  # on in the embedded default
    assert not re.search(r"https?://|(src|href)=[\"']//", html)
    results = json.loads(open(pipe.results("report").results_json).read())
    assert results["schema_version"] == 2
    assert results["stages"]["extraction"]["n_tokens"] <= 3000
    main = results["stages"]["matching"]["main_pair"]
    assert results["stages"]["matching"]["pairs"][main]["n_pairs"] > 0
    # the layer grid: 1 layer of A x 2 layers of B
    saes = results["stages"]["sources"]["saes"]
    assert saes["tiny-1L__blocks.0.hook_resid_post"]["kind"] == "train (embedded default)"
    assert saes["tiny-2L__blocks.1.hook_resid_post"]["kind"] == "train"  # the recipe's k=16, not the built-in k=4
    assert saes["tiny-2L__blocks.1.hook_resid_post"]["spec"] == "topk k=16, 4x d_model"
    assert len(results["stages"]["geometry"]["grid"]) == 2
    # controls: per layer pair, the matched features' token activations, the raw MLP neurons and the raw
    # residual streams, with nulls
    controls = results["stages"]["geometry"]["controls"]
    random = [c for c in controls if c["kind"].startswith("randomised control of B")]
    assert len(random) == 2 and all(r["b"] == main.split("--")[1] for r in random)  # the main pair only
    assert [r["details"]["control_model"] for r in random] == ["tiny-2L-reinit-seed0", "tiny-2L-reinit-seed1"]
    assert [r["details"]["seed"] for r in random] == [0, 1] and "(seed 1)" in random[1]["kind"]
    for r in random:
        assert r["details"]["training_tokens"] == 50_000 and r["details"]["cached"] is False
        assert set(r["metrics"]) == set(recipe.geometry.metrics)
    assert random[0]["metrics"]["cka"]["score"] != random[1]["metrics"]["cka"]["score"]  # two different models
    assert "randomised control of B" in html
    controls = [c for c in controls if c not in random]
    assert sorted(c["kind"] for c in controls) == (["MLP neurons (W_out rows)"] * 2 + ["SAE features, token activations"] * 2
                                                   + ["raw residual stream, token activations (all dimensions)"] * 2)
    keyword = results["stages"]["geometry"]["keyword_subspaces"]
    assert keyword and all(s["pairing"] == "rematched" for s in keyword)
    assert {s["concept"] for s in keyword} == {s["concept"] for s in results["stages"]["geometry"]["subspaces"]}
    residual = [c for c in controls if c["kind"].startswith("raw residual")]
    d_models = {m["d_model"] for m in results["stages"]["sources"]["models"].values()}
    assert all(c["n_pairs"] == min(d_models) and c["n_rows"] > 0 for c in residual)  # every residual dimension
    for c in controls:
        assert c["skipped"] is None and c["n_pairs"] >= 10, c
        for score in c["metrics"].values():
            assert 0 < score["p_value"] <= 1 and score["null_mean"] is not None
    neurons = [c for c in controls if c["kind"].startswith("MLP")]
    assert all(c["n_pairs"] <= 512 for c in neurons)  # at most d_mlp of the smaller model


def test_second_run_is_cached_and_force_reruns(small_run):
    recipe, _ = small_run
    again = run_recipe(recipe)
    assert all(r.cached for r in again.records.values())
    forced = run_recipe(recipe, force=["report"])
    assert not forced.records["report"].cached and forced.records["geometry"].cached


def test_cli_report_rebuilds_from_cache(small_run, capsys):
    """`featgeom report OUT` rebuilds the page from the cached stages alone: no stage but the report runs,
    and results.json holds exactly what each stage recorded."""
    import os
    from pathlib import Path

    recipe, pipe = small_run
    html = Path(pipe.results("report").html)
    os.utime(html, (0, 0))
    assert cli.main(["report", recipe.output_dir]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^  report\s+{re.escape(str(html))}$", out, re.M)
    for stage in STAGES[:-1]:
        assert re.search(rf"^  {stage}\s+cached$", out, re.M), stage
    assert html.stat().st_mtime > 0  # written again
    results = json.loads((html.parent / "results.json").read_text())
    for stage in STAGES[:-1]:
        record = json.loads((Path(recipe.output_dir) / stage / "stage.json").read_text())
        # results.json is strict JSON: the NaN a stage record may hold is written as null there
        assert results["stages"][stage] == to_plain_json(record["results"]), stage


def test_cli_run_prints_one_line_per_stage_and_a_summary(small_run, tmp_path, capsys):
    """The default output: no log lines, one line per stage, then the summary (models, pairs, scores beside their
    nulls, the report). ``-v`` adds the progress messages; ``-q`` prints nothing."""
    recipe, pipe = small_run
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(recipe.to_dict()))
    capsys.readouterr()
    assert cli.main(["run", str(path)]) == 0
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert "INFO" not in out + err and "DEBUG" not in out + err
    stage_lines = [line for line in out.splitlines() if re.match(r"^  \S+\s+(cached|\s*[0-9.]+ s)$", line)]
    assert [line.split()[0] for line in stage_lines] == list(STAGES)
    assert re.search(r"^  models\s+tiny-1L vs tiny-2L$", out, re.M)
    assert re.search(r"^  layer pairs 2; main pair ", out, re.M)
    assert re.search(r"^    cka\s+[0-9.-]+  \(null [0-9.-]+ ± [0-9.]+, p [0-9.e-]+\)$", out, re.M)
    assert re.search(r"^  report\s+\S+report\.html$", out, re.M)

    assert cli.main(["-v", "run", str(path)]) == 0
    verbose = capsys.readouterr()
    assert "INFO featgeom_tda.pipeline.runner: stage sources: unchanged inputs" in verbose.err

    assert cli.main(["-q", "run", str(path)]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""


def test_engine_ray_gives_the_local_results(small_run, tmp_path, capsys):
    """`featgeom run --engine ray --force matching`: matching, nulls and every later stage on a local Ray
    cluster give the numbers of the local engine."""
    pytest.importorskip("ray")
    recipe, pipe = small_run
    local = json.loads(open(pipe.results("report").results_json).read())["stages"]
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(recipe.to_dict()))
    out = tmp_path / "ray_out"
    import shutil

    shutil.copytree(recipe.output_dir, out)  # the cached sources and extraction; matching onwards reruns
    assert cli.main(["run", str(path), "--out", str(out), "--engine", "ray", "--force", "matching"]) == 0
    capsys.readouterr()
    ray_run = json.loads((out / "report" / "results.json").read_text())["stages"]
    assert ray_run["matching"]["pairs"] == local["matching"]["pairs"]
    for key, entry in local["geometry"]["grid"].items():
        for metric, score in entry["metrics"].items():
            other = ray_run["geometry"]["grid"][key]["metrics"][metric]
            assert other["score"] == pytest.approx(score["score"], abs=1e-12)
            assert other["null_mean"] == pytest.approx(score["null_mean"], abs=1e-12)
            assert other["p_value"] == score["p_value"]


def test_the_report_links_an_explorer_of_the_main_pair(small_run):
    from featgeom_tda.viz.explorer import read_explorer_payload

    recipe, pipe = small_run
    report = pipe.results("report")
    assert report.explorer and report.explorer.endswith("explorer.html")
    assert 'href="explorer.html"' in open(report.html).read()
    payload = read_explorer_payload(report.explorer)
    text = json.dumps(payload)
    assert "tiny-1L" in text and "tiny-2L" in text
