"""A battery of hostile inputs and faults, one case per row: each ends in the package's own refusal naming the
problem, or in the correct result. Never a traceback, a crash, a hang, a silent wrong number or lost data.

Classes (the deeper tests of each live next to their module and are named in the class comment):
    1 store integrity        (tests/core/test_store_integrity.py)
    2 concurrency, data loss (tests/core/test_store_lock.py, test_store_rebuild.py, extraction/test_no_silent_deletion.py)
    3 recipe SAE specs       (tests/pipeline/test_sources.py)
    4 recipe validation      (tests/pipeline/test_recipe_validation.py)
    5 bounded resources
    6 numeric garbage        (tests/analyses/geometry/test_similarity.py, test_baselines.py)
    7 CLI errors as one line
    8 report links
    9 small ones
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

from featgeom_tda.cli import main
from featgeom_tda.core.store import ActivationStore, StoreError
from featgeom_tda.core.types import FeatureActivations, FeatureWeights, Provenance

EMBEDDED_YAML = Path(__file__).parents[1] / "src" / "featgeom_tda" / "pipeline" / "data" / "embedded.yaml"
N_ROWS, N_FEATURES = 30, 12


# ----------------------------------------------------------------------------------------------- helpers


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    """Run ``featgeom argv`` in this process; return (exit code, stderr)."""
    capsys.readouterr()
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def assert_one_line_refusal(rc: int, err: str, pattern: str) -> None:
    import re

    assert rc == 2, f"exit code {rc}, stderr: {err}"
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"


def block(i: int, n_rows: int = N_ROWS) -> FeatureActivations:
    rng = np.random.default_rng(10 + i)
    m = sp.random(n_rows, N_FEATURES, density=0.4, random_state=rng, dtype=np.float32, format="csr")
    return FeatureActivations(
        m, token_ids=rng.integers(0, 40, n_rows), doc_index=np.full(n_rows, i), position=np.arange(n_rows)
    )


def build_store(path: Path, *, n_blocks: int = 3, finalize: bool = True) -> ActivationStore:
    store = ActivationStore.create(path, n_features=N_FEATURES, provenance=Provenance(model="m", seed=1))
    for i in range(n_blocks):
        store.append(block(i))
    if finalize:
        store.finalize(n_docs=n_blocks)
    else:
        store.close()
    return store


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def write_manifest(path: Path, m: dict) -> None:
    (path / "manifest.json").write_text(json.dumps(m))


def rewrite_shard(path: Path, index: int, change) -> None:
    """Rewrite shard ``index`` as well-formed safetensors with ``change`` applied and its checksum updated."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    m = manifest(path)
    info = m["shards"][index]
    f = path / info["file"]
    with safe_open(str(f), framework="numpy") as h:
        meta = h.metadata()
        tensors = {k: h.get_tensor(k) for k in h.keys()}
    change(tensors)
    save_file(tensors, str(f), metadata=meta)
    info["sha256"] = hashlib.sha256(f.read_bytes()).hexdigest()
    write_manifest(path, m)


# ---------------------------------------------------------------------------------- 1 store integrity


def _edit_manifest(fn):
    def apply(path):
        m = manifest(path)
        fn(m)
        write_manifest(path, m)

    return apply


def _raw_manifest(text: bytes):
    return lambda path: (path / "manifest.json").write_bytes(text)


def _manifest_is_a_directory(path):
    (path / "manifest.json").unlink()
    (path / "manifest.json").mkdir()


def _column_past_n_features(path):
    def change(t):
        t["indices"] = t["indices"].copy()
        t["indices"][0] = N_FEATURES + 5

    rewrite_shard(path, 1, change)


def _fewer_shards_listed(path):
    m = manifest(path)
    m["shards"] = m["shards"][:1]
    write_manifest(path, m)


def _shard_row_count(path):
    m = manifest(path)
    m["shards"][1]["n_rows"] += 5
    write_manifest(path, m)


STORE_CASES = [
    ("n_features edited to 100", _edit_manifest(lambda m: m.update(n_features=100)), r"n_features|shard"),
    ("n_features edited to 3", _edit_manifest(lambda m: m.update(n_features=3)), r"n_features|column|shard"),
    ("column index >= n_features", _column_past_n_features, r"column|indices|n_features"),
    ("manifest missing 'shards'", _edit_manifest(lambda m: m.pop("shards")), r"shards"),
    ("manifest missing 'n_features'", _edit_manifest(lambda m: m.pop("n_features")), r"n_features"),
    ("manifest is null", _raw_manifest(b"null"), r"manifest"),
    ("manifest is a list", _raw_manifest(b"[1, 2]"), r"manifest"),
    ("manifest is not UTF-8", _raw_manifest(b'{"n_features": "\xff\xfe"}'), r"manifest"),
    ("manifest is not JSON", _raw_manifest(b"{not json"), r"manifest"),
    ("manifest is a directory", _manifest_is_a_directory, r"manifest"),
    ("shard row count edited", _shard_row_count, r"row|shard"),
    ("fewer shards listed than written", _fewer_shards_listed, r"complete|missing|rows|shard"),
    ("n_features a string", _edit_manifest(lambda m: m.update(n_features="12")), r"n_features"),
    ("shards not a list", _edit_manifest(lambda m: m.update(shards={"a": 1})), r"shards"),
]


@pytest.mark.parametrize("damage, pattern", [c[1:] for c in STORE_CASES], ids=[c[0] for c in STORE_CASES])
def test_damaged_store_is_refused_by_match_in_one_line(tmp_path, capsys, damage, pattern):
    store = tmp_path / "s"
    build_store(store)
    damage(store)
    rc, err = run_cli(capsys, "match", str(store), str(store), "--out", str(tmp_path / "o"))
    assert_one_line_refusal(rc, err, pattern)
    assert not (tmp_path / "o").exists()


def test_edited_n_features_never_crashes_the_process(tmp_path):
    """The case that once segfaulted, run in a child process so a crash shows as a return code."""
    store = tmp_path / "s"
    build_store(store)
    _edit_manifest(lambda m: m.update(n_features=100))(store)
    run = subprocess.run(
        [sys.executable, "-m", "featgeom_tda.cli", "match", str(store), str(store), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr


def test_store_info_verify_sees_what_match_sees(tmp_path, capsys):
    store = tmp_path / "s"
    build_store(store)
    _column_past_n_features(store)
    rc, err = run_cli(capsys, "store-info", str(store), "--verify")
    assert_one_line_refusal(rc, err, r"column|indices|n_features")


def test_unfinished_store_is_refused_by_match(tmp_path, capsys):
    store = tmp_path / "s"
    build_store(store, finalize=False)
    rc, err = run_cli(capsys, "match", str(store), str(store), "--out", str(tmp_path / "o"))
    assert_one_line_refusal(rc, err, r"not (complete|finished)|unfinished")


# ------------------------------------------------------------------------- 2 concurrency and data loss


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    store = ActivationStore.create(tmp_path / "s", n_features=N_FEATURES)
    store.append(block(0))
    code = (
        "import sys\nfrom featgeom_tda.core.store import ActivationStore, StoreError\n"
        f"try:\n    ActivationStore.open_or_create({str(tmp_path / 's')!r}, n_features={N_FEATURES})\n"
        "except StoreError as e:\n    print(e); sys.exit(7)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 7, run.stdout + run.stderr
    assert "pid" in run.stdout and "lock" in run.stdout
    store.close()


def test_create_over_a_finished_store_refuses_and_keeps_it(tmp_path):
    build_store(tmp_path / "s")
    before = ActivationStore.open(tmp_path / "s").read().matrix.toarray()
    with pytest.raises(StoreError, match="already|exists|overwrite"):
        ActivationStore.create(tmp_path / "s", n_features=N_FEATURES)
    assert np.array_equal(ActivationStore.open(tmp_path / "s").read().matrix.toarray(), before)


def test_a_stray_byte_in_the_manifest_loses_no_shard(tmp_path, capsys):
    build_store(tmp_path / "s")
    before = ActivationStore.open(tmp_path / "s").read(allow_partial=True).matrix.toarray()
    with open(tmp_path / "s" / "manifest.json", "ab") as f:
        f.write(b"x")
    rc, _ = run_cli(capsys, "store-repair", str(tmp_path / "s"))
    assert rc == 0
    after = ActivationStore.open(tmp_path / "s").read(allow_partial=True).matrix.toarray()
    assert np.array_equal(before, after)


def test_a_lost_manifest_is_rebuilt_from_the_shards(tmp_path):
    build_store(tmp_path / "s")
    (tmp_path / "s" / "manifest.json").unlink()
    report = ActivationStore.rebuild_manifest(tmp_path / "s")
    assert "3 intact shards" in str(report)
    assert ActivationStore.open(tmp_path / "s").read(allow_partial=True).n_tokens == 3 * N_ROWS


# ----------------------------------------------------------------------------------- 3 recipe SAE specs


SAE_SPEC_CASES = [
    ("k 4", {"k": 4}, False),
    ("standard architecture", {"architecture": "standard"}, False),
    ("width 8x", {"width_multiple": 8}, False),
    ("the embedded default's", {}, True),
]


@pytest.mark.parametrize("change, same", [c[1:] for c in SAE_SPEC_CASES], ids=[c[0] for c in SAE_SPEC_CASES])
def test_a_recipe_sae_spec_is_honoured_not_replaced(change, same):
    from featgeom_tda.pipeline.recipe import SAESpec
    from featgeom_tda.pipeline.sources import _matches_embedded_sae, describe_sae_spec
    from featgeom_tda.sources.embedded import embedded_config

    cfg = embedded_config()
    base = {"architecture": cfg.sae_architecture, "width_multiple": cfg.sae_multiple, "k": cfg.sae_k}
    spec = SAESpec(**{**base, **change})
    assert _matches_embedded_sae(spec, SimpleNamespace(config=cfg)) is same
    if "k" in change:
        assert "k=4" in describe_sae_spec(spec)


# ------------------------------------------------------------------------------- 4 recipe validation


def _recipe_dict() -> dict:
    return yaml.safe_load(EMBEDDED_YAML.read_text())


def _set(path: str, value):
    def change(d):
        *head, last = path.split(".")
        node = d
        for key in head:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        node[int(last) if last.isdigit() else last] = value

    return change


RECIPE_CASES = [
    ("threshold 5", _set("matching.threshold", 5), r"matching.threshold"),
    ("threshold true", _set("matching.threshold", True), r"matching.threshold"),
    ("threshold as text", _set("matching.threshold", "0.3"), r"matching.threshold"),
    ("top_k 0", _set("matching.top_k", 0), r"matching.top_k"),
    ("n_permutations 0", _set("geometry.n_permutations", 0), r"n_permutations"),
    ("n_subset_draws -1", _set("geometry.n_subset_draws", -1), r"n_subset_draws"),
    ("svcca_variance 1.5", _set("geometry.svcca_variance", 1.5), r"svcca_variance"),
    ("knn_k 0", _set("geometry.knn_k", 0), r"knn_k"),
    ("no metrics", _set("geometry.metrics", []), r"metrics"),
    ("unknown metric", _set("geometry.metrics", ["svcca", "magic"]), r"metrics"),
    ("n_cubes 0", _set("topology.n_cubes", 0), r"n_cubes"),
    ("overlap 2", _set("topology.overlap", 2), r"overlap"),
    ("maxdim 4", _set("topology.maxdim", 4), r"maxdim"),
    ("n_landmarks 1", _set("topology.n_landmarks", 1), r"n_landmarks"),
    ("mapper lens unknown", _set("topology.mapper_lens", "tsne"), r"mapper_lens"),
    ("batch_size 0", _set("batch_size", 0), r"batch_size"),
    ("token_budget 0", _set("token_budget", 0), r"token_budget"),
    ("n_pairs -1", _set("interpretation.n_pairs", -1), r"n_pairs"),
    ("window -1", _set("interpretation.window", -1), r"window"),
    ("max_length 1", _set("dataset.max_length", 1), r"max_length"),
    ("n_documents 0", _set("dataset.n_documents", 0), r"n_documents"),
    ("steering alphas empty", _set("steering.alphas", []), r"alphas"),
    ("dtype float99", _set("models.0.dtype", "float99"), r"dtype"),
    ("device quantum", _set("device", "quantum"), r"device"),
    ("unknown hook", _set("models.0.layers.0.hook", "blocks.0.hook_resid_middle"), r"hook.*does not exist"),
    ("hook past the last layer", _set("models.1.layers.1.hook", "blocks.7.hook_resid_post"), r"out of range"),
    ("missing disk SAE", _set("models.0.layers.0.sae", {"kind": "disk", "path": "/nonexistent/sae"}), r"sae.path"),
    ("pretrained SAE without id", _set("models.0.layers.0.sae", {"kind": "pretrained"}), r"release"),
    ("SAE k 0", _set("models.0.layers.0.sae", {"kind": "train", "k": 0}), r"\bk\b"),
    ("unknown embedded model", _set("models.0.name", "tiny-9L"), r"embedded models"),
    ("one model of one layer", lambda d: d["models"].pop(), r"list at least two"),
    ("three models", lambda d: d["models"].append(copy.deepcopy(d["models"][0])), r"two models \(A and B\) or one"),
    ("the same model twice", lambda d: d["models"][1].update(name="tiny-1L"), r"list it once"),
    ("a hook listed twice", lambda d: d["models"][1]["layers"].append(copy.deepcopy(d["models"][1]["layers"][0])), r"listed twice"),
    ("gguf without path", _set("models.0", {"name": "m", "source": "gguf", "layers": [{"hook": "blocks.0.hook_resid_post"}]}), r"needs 'path'"),
    ("gguf package not installed", _set("models.0", {"name": "m", "source": "gguf", "path": "no-such-model-package",
                                                   "layers": [{"hook": "blocks.0.hook_resid_post"}]}), r"not installed|neither"),
    ("gguf file missing", _set("models.0", {"name": "m", "source": "gguf", "path": "/nowhere/m.gguf",
                                          "layers": [{"hook": "blocks.0.hook_resid_post"}]}), r"does not exist"),
    ("hf-folder missing", _set("models.0", {"name": "m", "source": "hf-folder", "path": "/nowhere/model",
                                          "layers": [{"hook": "blocks.0.hook_resid_post"}]}), r"not a folder"),
    ("path on an embedded model", _set("models.0.path", "x"), r"'path' applies to"),
    ("text dataset without files", _set("dataset", {"source": "text"}), r"needs 'files'"),
    ("files on the embedded dataset", _set("dataset.files", ["a.txt"]), r"'files' applies"),
    ("unknown top-level key", _set("colour", "blue"), r"unknown key 'colour'"),
    ("seed as text", _set("seed", "zero"), r"seed"),
]


@pytest.mark.parametrize("change, pattern", [c[1:] for c in RECIPE_CASES], ids=[c[0] for c in RECIPE_CASES])
def test_validate_refuses_a_broken_recipe(tmp_path, capsys, change, pattern):
    d = _recipe_dict()
    change(d)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(d))
    rc, err = run_cli(capsys, "validate", str(path))
    assert_one_line_refusal(rc, err, pattern)


RAW_RECIPE_CASES = [
    ("duplicate key", "name: a\nname: b\nmodels: []\n", r"duplicate key 'name'"),
    ("alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n", r"alias"),
    ("not YAML", "name: [unclosed\n", r"not valid YAML"),
    ("a list, not a mapping", "- 1\n- 2\n", r"expected a mapping"),
    ("empty file", "", r"expected a mapping"),
]


@pytest.mark.parametrize("text, pattern", [c[1:] for c in RAW_RECIPE_CASES], ids=[c[0] for c in RAW_RECIPE_CASES])
def test_validate_refuses_unsafe_yaml_quickly(tmp_path, capsys, text, pattern):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    t0 = time.perf_counter()
    rc, err = run_cli(capsys, "validate", str(path))
    assert time.perf_counter() - t0 < 10
    assert_one_line_refusal(rc, err, pattern)


def test_the_shipped_recipe_validates(capsys):
    rc, err = run_cli(capsys, "validate", "embedded")
    assert rc == 0, err


# ------------------------------------------------------------------------------- 5 bounded resources


def test_top_correlations_caps_k_at_the_features():
    from featgeom_tda.analyses.matching import top_correlations

    x = np.random.default_rng(0).standard_normal((50, 3))
    t0 = time.perf_counter()
    top = top_correlations(x, x, k=10**9)
    assert time.perf_counter() - t0 < 5 and top.k <= 64
    assert np.array_equal(top.indices[:, 0], np.arange(3))


@pytest.mark.parametrize("threads", ["100000", "0", "-3"])
def test_threads_out_of_range_are_refused(capsys, threads):
    rc, err = run_cli(capsys, "--threads", threads, "info")
    assert_one_line_refusal(rc, err, r"--threads")


def test_persistence_beyond_the_budget_is_refused_before_work():
    from featgeom_tda.analyses.topology import persistence

    pts = np.random.default_rng(0).standard_normal((400, 8))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"memory|budget|time"):
        persistence(pts, maxdim=4, n_landmarks=None)
    assert time.perf_counter() - t0 < 30


def test_cli_topology_maxdim_4_is_refused_in_one_line(tmp_path, capsys):
    np.save(tmp_path / "w.npy", np.random.default_rng(0).standard_normal((400, 8)).astype(np.float32))
    t0 = time.perf_counter()
    rc, err = run_cli(capsys, "topology", str(tmp_path / "w.npy"), "--out", str(tmp_path / "o"), "--maxdim", "4",
                      "--no-mapper", "--baselines", "0")
    assert time.perf_counter() - t0 < 60
    assert_one_line_refusal(rc, err, r"maxdim|memory|budget|time")


def test_a_huge_null_is_refused_before_allocation():
    from featgeom_tda.analyses.geometry import permutation_test

    x = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(ValueError, match="n_permutations must be at most"):
        permutation_test("cka", x, x, n_permutations=10**12)


def test_a_huge_subset_baseline_is_refused_before_allocation():
    from featgeom_tda.analyses.geometry import random_subset_baseline

    x = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(ValueError, match="n_draws"):
        random_subset_baseline("cka", x, x, 10, n_draws=10**12)


# ---------------------------------------------------------------------------------- 6 numeric garbage


def _pair(seed=0, n=60, d=16):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return x, x @ q + 0.5 * rng.standard_normal((n, d))


SCALE_METRICS = ["svcca", "cka", "rsa", "procrustes", "knn_jaccard", "mutual_knn"]


@pytest.mark.parametrize("scale", [1e160, 1e-200])
@pytest.mark.parametrize("metric", SCALE_METRICS)
def test_metrics_are_unbroken_by_extreme_scale(metric, scale):
    import warnings

    from featgeom_tda.analyses.geometry.baselines import resolve_metric

    _, fn = resolve_metric(metric)
    x, y = _pair()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        scaled = fn(x * scale, y)
    assert scaled == pytest.approx(fn(x, y), abs=1e-9)


@pytest.mark.parametrize("metric", ["svcca", "cka", "rsa", "procrustes"])
def test_identical_rows_are_refused_as_zero_variance(metric):
    from featgeom_tda.analyses.geometry.baselines import resolve_metric

    _, fn = resolve_metric(metric)
    same = np.tile(np.random.default_rng(0).standard_normal(16), (30, 1))
    with pytest.raises(ValueError, match=r"zero variance|constant|all rows"):
        fn(same, same)


def test_a_nan_score_gets_a_nan_p_value_or_a_refusal():
    from featgeom_tda.analyses.geometry import permutation_test

    x, y = _pair()
    try:
        res = permutation_test(lambda a, b: float("nan"), x, y, n_permutations=20, seed=0)
    except ValueError as exc:
        assert "nan" in str(exc).lower()
    else:
        assert np.isnan(res.p_value)


def test_nan_scores_in_the_null_are_not_counted_as_below():
    from featgeom_tda.analyses.geometry.baselines import _p_value

    assert np.isnan(_p_value(0.5, np.array([0.1, np.nan, 0.2])))
    assert _p_value(0.5, np.array([0.1, 0.6, 0.2])) == pytest.approx(2 / 4)


def test_svcca_is_not_saturated_when_features_outnumber_pairs():
    from featgeom_tda.analyses.geometry import permutation_test

    rng = np.random.default_rng(0)
    res = permutation_test("svcca", rng.standard_normal((10, 128)), rng.standard_normal((10, 128)),
                           n_permutations=50, seed=0)
    d = res.details
    assert d["n_components_x"] + d["n_components_y"] <= d["n_rows"] // 2 and not d["saturated"]
    assert res.score < 1.0 and res.p_value > 0.05


def test_a_saturated_svcca_is_refused_unless_asked_for():
    from featgeom_tda.analyses.geometry import svcca, svcca_result

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 128)), rng.standard_normal((10, 128))
    with pytest.raises(ValueError, match="saturat"):
        svcca(x, y, n_components=(9, 9))
    res = svcca_result(x, y, n_components=(9, 9), allow_saturated=True)
    assert res.saturated and res.score == pytest.approx(1.0)


def test_one_rsa_definition_in_a_run():
    from featgeom_tda.pipeline.recipe import GeometrySpec
    from featgeom_tda.pipeline.selfcheck import DEFAULT_METRIC_OPTIONS
    from featgeom_tda.pipeline.stages.geometry import metric_options

    assert metric_options("rsa", GeometrySpec()) == DEFAULT_METRIC_OPTIONS["rsa"] == {"rdm": "cosine"}


# ------------------------------------------------------------------------------ 7 errors, not tracebacks


def _a_file(tmp_path):
    f = tmp_path / "plain.txt"
    f.write_text("x")
    return f


def test_out_naming_a_file_is_refused_before_work(tmp_path, capsys):
    store = tmp_path / "s"
    build_store(store)
    f = _a_file(tmp_path)
    np.save(tmp_path / "w.npy", np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32))
    cases = [
        ("match", str(store), str(store), "--out", str(f)),
        ("topology", str(tmp_path / "w.npy"), "--out", str(f)),
        ("run", "embedded", "--out", str(f)),
        ("demo", "--out", str(f)),
    ]
    for argv in cases:
        t0 = time.perf_counter()
        rc, err = run_cli(capsys, *argv)
        assert time.perf_counter() - t0 < 30, argv
        assert_one_line_refusal(rc, err, r"--out")
        assert f.read_text() == "x"


def test_a_directory_given_as_a_recipe(tmp_path, capsys):
    for cmd in ("validate", "run"):
        rc, err = run_cli(capsys, cmd, str(tmp_path))
        assert_one_line_refusal(rc, err, r"directory|recipe")


def test_build_default_cache_dir_naming_a_file(tmp_path, capsys):
    rc, err = run_cli(capsys, "build-default", "--small", "--cache-dir", str(_a_file(tmp_path)))
    assert_one_line_refusal(rc, err, r"cache")


def test_cuda_on_a_machine_without_it(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    d = _recipe_dict()
    d["device"] = "cuda"
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(d))
    rc, err = run_cli(capsys, "run", str(path), "--out", str(tmp_path / "o"))
    assert_one_line_refusal(rc, err, r"CUDA is not available")


def test_an_internal_error_is_one_line_with_the_way_to_the_traceback(capsys, monkeypatch):
    from featgeom_tda import cli

    def boom(args):
        raise RuntimeError("unexpected")

    monkeypatch.setitem(cli.COMMANDS, "info", ("info", lambda p: None, boom))
    capsys.readouterr()
    rc = cli.main(["info"])
    err = capsys.readouterr().err
    assert rc == 3 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and "--debug" in err


def test_hub_model_without_network_says_give_a_local_path(monkeypatch, tmp_path):
    from featgeom_tda.sources.models import load_hub_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ValueError, match=r"cannot (load|download)"):
        load_hub_model("gpt2")


def _torch(x, dtype):
    import torch

    return torch.tensor(x, dtype=torch.float32).to(dtype)


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("metric", ["svcca", "cka", "procrustes"])
def test_half_precision_torch_input_is_accepted(metric, dtype_name):
    import torch

    from featgeom_tda.analyses.geometry.baselines import resolve_metric

    _, fn = resolve_metric(metric)
    x, y = _pair()
    dtype = getattr(torch, dtype_name)
    xr = _torch(x, dtype).float().numpy().astype(np.float64)  # the values the half tensor holds
    assert fn(_torch(x, dtype), y) == pytest.approx(fn(xr, y), abs=1e-6)


def test_half_precision_activations_are_matched():
    import torch

    from featgeom_tda.analyses.matching import top_correlations

    x = np.abs(np.random.default_rng(0).standard_normal((80, 5)))
    top = top_correlations(torch.tensor(x, dtype=torch.float16), torch.tensor(x, dtype=torch.bfloat16))
    assert np.array_equal(top.indices[:, 0], np.arange(5))


def test_meta_tensors_are_refused():
    import torch

    from featgeom_tda.analyses.geometry import linear_cka

    with pytest.raises(ValueError, match="meta"):
        linear_cka(torch.empty(20, 4, device="meta"), np.ones((20, 4)))


@pytest.mark.parametrize("metric", ["svcca", "cka", "rsa", "procrustes", "knn_jaccard"])
def test_feature_weights_are_accepted_by_metrics_and_permutation_tests(metric):
    from featgeom_tda.analyses.geometry import permutation_test
    from featgeom_tda.analyses.geometry.baselines import resolve_metric

    _, fn = resolve_metric(metric)
    x, y = _pair()
    fx, fy = FeatureWeights(x), FeatureWeights(y)
    x32, y32 = fx.weights.astype(np.float64), fy.weights.astype(np.float64)
    assert fn(fx, fy) == pytest.approx(fn(x32, y32), abs=1e-9)
    res = permutation_test(metric, fx, fy, n_permutations=10, seed=0)
    assert res.score == pytest.approx(fn(x32, y32), abs=1e-9)


# ---------------------------------------------------------------------------------------- 8 report links


@pytest.mark.parametrize("href", [
    "javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,<b>x</b>", "http://example.com/a",
    "//example.com/a", "/etc/passwd", "", "file:///etc/passwd", "vbscript:x", "\\\\host\\share",
])
def test_report_refuses_links_that_are_not_local(tmp_path, href):
    from featgeom_tda.report.html import Section, write_report

    with pytest.raises(ValueError, match="link"):
        write_report(tmp_path / "r", "t", [Section(id="s", title="S", links=[("x", href)])])


def test_report_keeps_a_local_link_and_escapes_its_text(tmp_path):
    from featgeom_tda.report.html import Section, write_report

    out = write_report(tmp_path / "r", "t", [Section(id="s", title="S", links=[("<b>m</b>", "mapper/a b.html")])])
    html = Path(out).read_text() if not Path(out).is_dir() else (Path(out) / "index.html").read_text()
    assert "&lt;b&gt;m&lt;/b&gt;" in html and "<b>m</b>" not in html


# ---------------------------------------------------------------------------------------- 9 small ones


@pytest.mark.parametrize("threshold", [True, "0.3", float("nan"), 1.5])
def test_match_threshold_must_be_a_number_in_range(threshold):
    from featgeom_tda.analyses.matching import match_features

    x = np.abs(np.random.default_rng(0).standard_normal((40, 4)))
    with pytest.raises(ValueError, match="threshold"):
        match_features(x, x, threshold=threshold)


@pytest.mark.parametrize("start, stop", [(1.9, 3.9), ("1", 3), (5, 2), (-1, 3), (0, 10**9)])
def test_store_read_refuses_bad_row_ranges(tmp_path, start, stop):
    build_store(tmp_path / "s")
    with pytest.raises(StoreError, match=r"start|stop|row range"):
        ActivationStore.open(tmp_path / "s").read(start, stop)


def test_store_read_of_a_valid_range_is_exact(tmp_path):
    build_store(tmp_path / "s")
    full = ActivationStore.open(tmp_path / "s").read().matrix.toarray()
    part = ActivationStore.open(tmp_path / "s").read(25, 65).matrix.toarray()
    assert np.array_equal(part, full[25:65])


@pytest.mark.parametrize("command", ["topology", "validate"])
def test_threads_zero_is_refused_by_every_command(tmp_path, capsys, command):
    extra = ["--out", str(tmp_path / "o")] if command == "topology" else []
    rc, err = run_cli(capsys, "--threads", "0", command, str(tmp_path / "anything"), *extra)
    assert_one_line_refusal(rc, err, r"--threads")


def test_changing_only_the_recipe_name_rebuilds_the_report(tmp_path):
    from featgeom_tda.pipeline.recipe import recipe_from_dict
    from featgeom_tda.pipeline.runner import Pipeline

    a = Pipeline(recipe_from_dict(_recipe_dict()), tmp_path / "a")
    b = Pipeline(recipe_from_dict({**_recipe_dict(), "name": "renamed"}), tmp_path / "b")
    assert a.fingerprint("report") != b.fingerprint("report")
    assert a.fingerprint("matching") == b.fingerprint("matching")


# ------------------------------------------------------------- further inputs of the same classes


def test_an_unknown_torch_device_is_refused_by_matching():
    from featgeom_tda.analyses.matching import top_correlations

    x = np.abs(np.random.default_rng(0).standard_normal((30, 3)))
    with pytest.raises(ValueError, match="device"):
        top_correlations(x, x, device="quantum")


@pytest.mark.parametrize("content", [b"", b"hello", b"\x93NUMPY\x01\x00"])
def test_an_empty_or_truncated_npy_is_refused(tmp_path, content):
    from featgeom_tda.sources.weights import load_weight_file

    (tmp_path / "w.npy").write_bytes(content)
    with pytest.raises(ValueError, match=r"w\.npy"):
        load_weight_file(tmp_path / "w.npy")


def test_a_directory_that_is_not_an_sae_is_named(tmp_path):
    from featgeom_tda.sources.weights import load_weight_file

    with pytest.raises(FileNotFoundError, match="not a saved SAE"):
        load_weight_file(tmp_path)


@pytest.mark.parametrize("text, pattern", [
    ("{", "not valid JSON"), ("[1]", "expected a mapping"), ('{"metric": "cka"}', "missing key"),
    ('{"colour": 1}', "unknown key 'colour'"),
])
def test_a_damaged_saved_result_is_refused_by_name(tmp_path, text, pattern):
    from featgeom_tda.analyses.geometry import PermutationResult

    (tmp_path / "p.json").write_text(text)
    with pytest.raises(ValueError, match=pattern):
        PermutationResult.load(tmp_path / "p.json")


def test_a_nan_result_saves_and_loads_as_nan(tmp_path):
    from featgeom_tda.analyses.geometry import permutation_test
    from featgeom_tda.analyses.geometry.baselines import PermutationResult

    x, y = _pair()

    def undefined(a, b):
        return float("nan")

    res = permutation_test(undefined, x, y, n_permutations=5, seed=0)
    back = PermutationResult.load(res.save(tmp_path / "p.json"))
    assert np.isnan(back.score) and np.isnan(back.p_value) and np.isnan(back.null).all()


@pytest.mark.parametrize("n_features", [1.5, "12", True, None])
def test_store_n_features_must_be_an_integer(tmp_path, n_features):
    with pytest.raises(StoreError, match="n_features"):
        ActivationStore.create(tmp_path / "s", n_features=n_features)
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_persistence_of_one_landmark_is_refused():
    from featgeom_tda.analyses.topology import persistence

    with pytest.raises(ValueError, match="n_landmarks"):
        persistence(np.random.default_rng(0).standard_normal((30, 3)), n_landmarks=1)


def test_a_recipe_that_is_not_utf8_is_refused(tmp_path, capsys):
    (tmp_path / "r.yaml").write_bytes(b"name: \xff\xfe\n")
    rc, err = run_cli(capsys, "validate", str(tmp_path / "r.yaml"))
    assert_one_line_refusal(rc, err, "UTF-8")


def test_provenance_must_be_a_mapping():
    with pytest.raises(ValueError, match="mapping"):
        Provenance.from_dict([1, 2])


@pytest.mark.parametrize("argv", [["--threads", "abc", "info"], ["nosuchcommand"], ["match", "only_one"],
                                  ["topology", "w.npy", "--out", "o", "--seed", "-5"]])
def test_usage_errors_are_one_line_with_a_pointer_to_help(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and "--help" in err


def test_too_many_gaussian_baselines_are_refused_before_work():
    from featgeom_tda.analyses.topology import compare_with_gaussian

    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="n_baselines must be at most"):
        compare_with_gaussian(np.random.default_rng(0).standard_normal((50, 4)), n_baselines=100_000)
    assert time.perf_counter() - t0 < 5


def test_a_synthetic_pair_too_big_for_memory_is_refused_before_work():
    from featgeom_tda.sources.synthetic import make_synthetic_pair

    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="GiB"):
        make_synthetic_pair(n_shared=10**6, n_private_a=2, n_private_b=2, d_a=10**5, d_b=8, n_samples=10**7)
    assert time.perf_counter() - t0 < 30


def test_extraction_refuses_an_unknown_device_and_an_output_that_is_a_file(tmp_path, tiny_model_1l, tiny_sae_1l,
                                                                           tiny_tokenizer, tiny_texts):
    from featgeom_tda.extraction.activations import ActivationSource, extract_activations, tokenize_documents

    from conftest import TINY_HOOK_1L

    ds = tokenize_documents(tiny_tokenizer, tiny_texts, max_length=16)
    src = ActivationSource("a", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)
    with pytest.raises(ValueError, match="device"):
        extract_activations([src], ds, tmp_path / "x", device="quantum", progress=False)
    f = _a_file(tmp_path)
    with pytest.raises(ValueError, match="out_dir"):
        extract_activations([src], ds, f, progress=False)
    assert f.read_text() == "x"


def test_steering_alpha_true_is_refused(tiny_model_1l):
    from featgeom_tda.analyses.steering import steer

    from conftest import TINY_HOOK_1L

    with pytest.raises(ValueError, match="alpha"):
        steer(tiny_model_1l, TINY_HOOK_1L, np.ones(16), alpha=True)
