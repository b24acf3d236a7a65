"""A recipe on a checkpoint on disk and text files: one model, its layers compared with each other.

A random 3-layer Llama saved as a Hugging Face folder stands in for a real checkpoint; the texts are files of
vocabulary words. The run goes through every stage; the checks are the science that differs from the
embedded default: held-out windows, position 0 never a row, the one-model layer grid, the SAE quality.
"""

import numpy as np
import pytest
import yaml

from conftest import TINY_WORDS
from featgeom_tda.pipeline import run_recipe
from featgeom_tda.pipeline.recipe import recipe_from_dict

HOOKS = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory, tiny_tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tiny_tokenizer.get_vocab()), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        hf = LlamaForCausalLM(config).eval()
    folder = tmp_path_factory.mktemp("hf") / "tiny-llama"
    hf.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("texts")
    for i in range(3):
        paragraphs = [" ".join(rng.choice(TINY_WORDS, size=120)) for _ in range(30)]
        (folder / f"book{i}.txt").write_text("\n\n".join(paragraphs))
    return folder


def _recipe(llama_folder, text_dir, tmp_path):
    data = {
        "name": "tiny-llama layers",
        "models": [{"name": "tiny-llama", "source": "hf-folder", "path": str(llama_folder),
                    "layers": [{"hook": h, "sae": {"kind": "train", "width_multiple": 2, "k": 4,
                                                   "training_tokens": 6000}} for h in HOOKS]}],
        "dataset": {"source": "text", "files": [str(text_dir / "*.txt")], "max_length": 32, "min_chars": 200},
        "token_budget": 1500,
        "matching": {"threshold": None},
        "geometry": {"n_permutations": 20, "n_subset_draws": 5, "metrics": ["svcca", "cka", "rsa"]},
        "topology": {"n_landmarks": 60, "n_cubes": 4},
        "interpretation": {"n_pairs": 3, "n_same_token_baseline": 10},
        "steering": {"enabled": False},
        "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "out"),
        "batch_size": 16,
    }
    return recipe_from_dict(data)


@pytest.fixture(scope="module")
def run(llama_folder, text_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    recipe = _recipe(llama_folder, text_dir, tmp)
    return recipe, run_recipe(recipe)


def test_the_layers_of_one_model_are_compared_pairwise(run):
    recipe, pipe = run
    grid = pipe.results("geometry").grid
    keys = {tuple(k.split("--")) for k in grid}
    expected = {(f"tiny-llama__{a}", f"tiny-llama__{b}") for i, a in enumerate(HOOKS) for b in HOOKS[i + 1:]}
    assert keys == expected
    for entry in grid.values():
        for metric, score in entry.metrics.items():
            assert np.isfinite(score.score) and 0 < score.p_value <= 1
            assert score.p_value == pytest.approx(
                (1 + round(score.p_value * (recipe.geometry.n_permutations + 1) - 1)) / (recipe.geometry.n_permutations + 1)
            )


def test_compared_windows_are_held_out_and_never_count_position_zero(run):
    recipe, pipe = run
    src = pipe.context.sources
    train, compare = src.tokens.train, src.tokens.compare
    per_window = recipe.dataset.max_length - 1
    assert train.n_docs == -(-6000 // per_window)
    # the compared windows come after the training windows in the token stream, never the same ones
    train_rows = {w.tobytes() for w in train.tokens}
    assert not any(w.tobytes() in train_rows for w in compare.tokens)
    ext = pipe.results("extraction")
    assert ext.n_tokens == compare.n_docs * per_window
    acts = pipe.context.activations()[f"tiny-llama__{HOOKS[0]}"]
    assert acts.position.min() == 1


def test_every_sae_reports_its_quality(run):
    _, pipe = run
    saes = pipe.results("sources").saes
    assert set(saes) == {f"tiny-llama__{h}" for h in HOOKS}
    for info in saes.values():
        assert 0 <= info.fvu < 1.5 and info.l0 == pytest.approx(4.0, abs=1e-6)
        assert info.ce_loss_increase == pytest.approx(info.ce_spliced - info.ce_clean)
        assert np.isfinite(info.ce_zero_ablation)
    html = (pipe.out_dir / "report" / "report.html").read_text()
    assert "CE spliced" in html and "CE zero-ablated" in html


def test_a_second_run_reuses_the_checkpoint_and_the_saes(run, llama_folder, text_dir):
    recipe, pipe = run
    again = run_recipe(recipe)
    assert all(rec.cached for rec in again.records.values())
