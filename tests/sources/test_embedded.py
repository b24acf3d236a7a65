"""The embedded default: build once (small), then reuse the cache."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from featgeom_tda.sources.embedded import (
    MODEL_NAMES,
    EmbeddedConfig,
    build_embedded_default,
    embedded_config,
)
from featgeom_tda.sources.hooks import check_sae_matches_hook, sae_hook_name


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import os

    torch.set_num_threads(1)
    cwd = os.getcwd()
    where = tmp_path_factory.mktemp("emb")
    os.chdir(where)  # the default cache_dir is relative to the working directory
    try:
        emb = build_embedded_default(small=True, progress=False)
    finally:
        os.chdir(cwd)
    return emb, where


def test_structure(built):
    emb, where = built
    assert Path(emb.paths["root"]).parent == Path("featgeom_cache")
    assert (where / emb.paths["root"] / "report.json").exists()
    assert set(emb.models) == set(MODEL_NAMES) == set(emb.saes) == set(emb.hooks)
    assert emb.hooks == {"tiny-1L": "blocks.0.hook_resid_post", "tiny-2L": "blocks.1.hook_resid_post"}
    assert [emb.models[n].cfg.n_layers for n in MODEL_NAMES] == [1, 2]
    for name in MODEL_NAMES:
        model, sae, hook = emb.models[name], emb.saes[name], emb.hooks[name]
        check_sae_matches_hook(model, hook, sae)
        assert sae_hook_name(sae) == hook
        assert sae.cfg.metadata.model_name == name == model.cfg.model_name
        assert model.tokenizer is not None and model.cfg.d_vocab == len(emb.tokenizer)
    assert len(emb.texts) == embedded_config(small=True).n_stories
    assert emb.tokens.shape[1] == emb.config.n_ctx and emb.eval_tokens.shape[0] == emb.config.eval_rows


def test_report_numbers(built):
    emb, _ = built
    r = emb.report
    assert r["key"] == emb.config.key()
    assert set(r["corpus"]["concept_counts"]) >= {"royalty", "months", "numbers", "pronouns"}
    assert all(v > 0 for v in r["corpus"]["concept_counts"].values())
    for name in MODEL_NAMES:
        m, s = r["models"][name], r["saes"][name]
        assert 0 < m["eval_loss"] < m["first_loss"]
        assert m["unigram_entropy"] == r["unigram_entropy"] > 0
        assert 0 <= s["fvu"] < 1 and 0 < s["l0"] <= emb.config.sae_k and 0 <= s["dead_fraction"] <= 1
        assert s["width"] == emb.config.sae_multiple * emb.config.d_model
    assert set(r["build_timings"]) >= {"corpus", "tokenizer", "model:tiny-1L", "sae:tiny-2L"}
    assert not any(r["cached"].values())


def test_second_call_reuses_the_cache(built):
    emb, where = built
    again = build_embedded_default(where / "featgeom_cache", small=True, progress=False)
    assert all(again.report["cached"].values())
    assert again.texts == emb.texts
    assert np.array_equal(again.tokens, emb.tokens)
    x = torch.from_numpy(emb.eval_tokens[:2])
    for name in MODEL_NAMES:
        with torch.no_grad():
            assert torch.equal(again.models[name](x), emb.models[name](x))
        acts = torch.randn(10, emb.config.d_model, generator=torch.Generator().manual_seed(0))
        assert torch.equal(again.saes[name].encode(acts), emb.saes[name].encode(acts))
    assert again.report["build_timings"] == emb.report["build_timings"]
    assert again.report["saes"] == json.loads(json.dumps(emb.report["saes"]))


def test_a_missing_stage_is_rebuilt_alone(built, tmp_path):
    emb, where = built
    root = tmp_path / "copy" / Path(emb.paths["root"]).name
    shutil.copytree(where / emb.paths["root"], root)
    shutil.rmtree(root / "saes" / "tiny-2L")
    again = build_embedded_default(tmp_path / "copy", small=True, progress=False)
    cached = again.report["cached"]
    assert cached["sae:tiny-2L"] is False
    assert all(v for k, v in cached.items() if k != "sae:tiny-2L")
    # the same seed trains the same SAE again
    assert torch.equal(again.saes["tiny-2L"].W_dec, emb.saes["tiny-2L"].W_dec)


def test_options_enter_the_key():
    a = embedded_config(small=True)
    assert embedded_config(small=True).key() == a.key()
    assert embedded_config(small=True, seed=1).key() != a.key()
    assert embedded_config(small=True, n_stories=301).key() != a.key()
    assert embedded_config(small=True, sae_k=5).key() != a.key()
    assert embedded_config().key() != a.key()


def test_key_keeps_its_recipe_so_existing_caches_are_reused():
    import hashlib

    cfg = embedded_config()
    blob = json.dumps({"version": 1, **cfg.to_dict()}, sort_keys=True)
    assert cfg.key() == hashlib.sha256(blob.encode()).hexdigest()[:12] == "551c412d3850"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="sae_architecture"):
        EmbeddedConfig(sae_architecture="gated")
    with pytest.raises(ValueError, match="n_heads"):
        EmbeddedConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="lr"):
        EmbeddedConfig(lr=0)
    with pytest.raises(ValueError, match="steps_1l"):
        EmbeddedConfig(steps_1l=0)
    with pytest.raises(ValueError, match="unknown embedded options"):
        embedded_config(depth=3)
    with pytest.raises(ValueError, match="not both"):
        build_embedded_default(tmp_path, config=embedded_config(small=True), seed=2)
    with pytest.raises(ValueError, match="cache_dir"):
        build_embedded_default("", small=True)
    with pytest.raises(ValueError, match="raise n_stories"):
        build_embedded_default(tmp_path, small=True, n_stories=3, progress=False)
