"""A recipe on two models with different tokenizers: the comparison runs on character-aligned units.

Model A reads a word-level tokenizer, model B a small BPE that cuts most words into several pieces; both are
random Llamas saved as Hugging Face folders, reading text files of vocabulary words. The checks: each model's
SAEs train on its own windows, every store holds the same units, row ids index one unit vocabulary (so the
same-token score is a same-unit score), and the report says what was aligned.
"""

import numpy as np
import pytest

from conftest import TINY_WORDS
from featgeom_tda.pipeline import run_recipe
from featgeom_tda.pipeline.recipe import recipe_from_dict

HOOK_A, HOOK_B = "blocks.1.hook_resid_post", "blocks.0.hook_resid_post"
HOOK_A_EARLY = "blocks.0.hook_resid_post"  # a second layer of A: two layer pairs


def _llama_folder(root, tokenizer, seed):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = len(tokenizer.get_vocab())
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf = LlamaForCausalLM(config).eval()
    hf.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def subword_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["<pad>", "<bos>", "<eos>", "<unk>"])
    backend.train_from_iterator([" ".join(TINY_WORDS)] * 3, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", name_or_path="subword")


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_tokenizer, subword_tokenizer):
    rng = np.random.default_rng(0)
    texts = tmp_path_factory.mktemp("texts")
    for i in range(2):
        paragraphs = [" ".join(rng.choice(TINY_WORDS, size=120)) for _ in range(30)]
        (texts / f"book{i}.txt").write_text("\n\n".join(paragraphs))
    tmp = tmp_path_factory.mktemp("run")
    folder_a = _llama_folder(tmp / "words-llama", tiny_tokenizer, 0)
    folder_b = _llama_folder(tmp / "pieces-llama", subword_tokenizer, 1)
    sae = {"kind": "train", "width_multiple": 2, "k": 4, "training_tokens": 3000}
    recipe = recipe_from_dict({
        "name": "two tokenizers",
        "models": [{"name": "words", "source": "hf-folder", "path": str(folder_a), "layers": [{"hook": HOOK_A_EARLY, "sae": sae}, {"hook": HOOK_A, "sae": sae}]},
                   {"name": "pieces", "source": "hf-folder", "path": str(folder_b), "layers": [{"hook": HOOK_B, "sae": sae}]}],
        "dataset": {"source": "text", "files": [str(texts / "*.txt")], "max_length": 32, "min_chars": 200},
        "alignment": {"reduce": "max", "chunk_chars": 80},
        "token_budget": 1200,
        "matching": {"threshold": None},
        "geometry": {"n_permutations": 10, "n_subset_draws": 3, "metrics": ["svcca", "cka"],
                     "controls": ["activations", "residual", "neurons"], "n_control_tokens": 400},
        "topology": {"n_landmarks": 40, "n_cubes": 4, "persistence": False},
        "interpretation": {"n_pairs": 3, "n_same_token_baseline": 10},
        "steering": {"enabled": True, "tasks": ["pronoun"], "alphas": [0.0, 4.0]},
        "crosscoder": {"enabled": True, "width_multiple": 2, "k": 4, "training_tokens": 4000, "batch_size": 256},
        "cache_dir": str(tmp / "cache"), "output_dir": str(tmp / "out"), "batch_size": 8,
    })
    from featgeom_tda.pipeline.context import RunContext

    aligned_reads = []
    read = RunContext._aligned_hook_activations
    with pytest.MonkeyPatch.context() as patch:  # record which layers each forward over the units reads
        patch.setattr(RunContext, "_aligned_hook_activations",
                      lambda ctx, layers: aligned_reads.append([x.key for x in layers]) or read(ctx, layers))
        pipe = run_recipe(recipe)
    pipe.aligned_reads = aligned_reads
    return recipe, pipe


def test_every_store_holds_the_same_units_with_unit_vocabulary_ids(run):
    recipe, pipe = run
    ctx = pipe.context
    assert ctx.sources.aligned and ctx.rows_are_units()
    acts = ctx.activations()
    a, b = acts[f"words__{HOOK_A}"], acts[f"pieces__{HOOK_B}"]
    assert a.n_tokens == b.n_tokens > 0
    assert np.array_equal(a.token_ids, b.token_ids) and np.array_equal(a.doc_index, b.doc_index)
    vocab = ctx.token_strings()
    # every unit is one word of the texts (words are one token of A), with its leading space where one precedes it
    words = set(TINY_WORDS)
    assert all(vocab[i].strip() in words for i in np.unique(a.token_ids))
    ext = pipe.results("extraction")
    assert ext.alignment["n_kept"] == a.n_tokens and ext.alignment["mean_tokens_per_unit_b"] > 1.2
    assert ext.alignment["mean_tokens_per_unit_a"] == pytest.approx(1.0)
    # each model runs as its own Hugging Face tokenizer has it: the BPE adds no BOS, so the unit holding its
    # position 0 (the first of every chunk) is never a row, although TransformerLens's wrapper would add one
    assert ext.alignment["n_dropped_position0"] == ext.n_docs
    assert a.doc_index.size == ext.alignment["n_units"] - ext.n_docs
    # the units dataset lays the rows out: tokens[doc, position] is each row's unit id
    ds = ctx.dataset()
    assert np.array_equal(ds.tokens[a.doc_index, a.position], a.token_ids)


def test_each_model_trains_its_saes_on_its_own_windows_and_compares_on_held_out_text(run):
    recipe, pipe = run
    src = pipe.context.sources
    assert set(src.model_tokens) == {"words", "pieces"}
    assert src.model_tokens["words"].train.tokenizer_hash != src.model_tokens["pieces"].train.tokenizer_hash
    # compared chunks fit one window of either model and are none of the training text
    for tok in src.tokenizers.values():
        assert max(len(tok(t, add_special_tokens=False)["input_ids"]) for t in src.compare_texts) <= 31
    assert all(len(t) <= 80 for t in src.compare_texts)


def test_matching_interpretation_and_report_read_units(run):
    recipe, pipe = run
    m = pipe.context.matchings()[f"words__{HOOK_A}--pieces__{HOOK_B}"]
    assert len(m) > 0
    interp = pipe.results("interpretation").pairs[f"words__{HOOK_A}--pieces__{HOOK_B}"]
    assert "score" in interp.same_token or interp.same_token
    html = (pipe.out_dir / "report" / "report.html").read_text()
    assert "aligned units" in html


def test_the_crosscoder_reads_both_models_on_the_aligned_units(run):
    from featgeom_tda.extraction.aligned import aligned_hook_activations
    from featgeom_tda.extraction.alignment import TokenAlignment
    from featgeom_tda.pipeline.layers import main_pair

    recipe, pipe = run
    ctx = pipe.context
    cc = pipe.results("crosscoder")
    assert cc.skipped is None, cc.skipped
    a, b = main_pair(recipe)
    n_units = ctx.activations()[a.key].n_tokens
    assert cc.rows == "aligned units" and cc.n_tokens == n_units
    assert [m.d_model for m in cc.models] == [32, 32]
    assert all(m.fvu is not None and 0.0 <= m.fvu < 1.0 for m in cc.models)  # better than the mean, never negative
    assert sum(cc.class_counts.values()) == cc.width
    # its rows: each unit at its last token in each model, the models run as their own tokenizers have them
    raw = ctx.hook_activations([a, b])
    alignment = TokenAlignment.load(ctx.alignment_dir)
    again = aligned_hook_activations(ctx.sources.models[a.model], [a.hook], ctx.sources.models[b.model], [b.hook],
                                     alignment, prepend_bos=(True, False), progress=False)
    assert np.allclose(raw[a.key], again["a"][a.hook], atol=1e-5)
    assert np.allclose(raw[b.key], again["b"][b.hook], atol=1e-5)
    html = (pipe.out_dir / "report" / "report.html").read_text()
    assert "units aligned across the two tokenizers" in html


def test_per_token_analyses_say_why_they_do_not_run_on_units(run):
    _, pipe = run
    controls = pipe.results("geometry").controls
    neurons = [row for row in controls if row.kind.startswith("MLP neurons")]
    assert neurons and all("aligned units" in row.skipped for row in neurons)
    activations = [row for row in controls if not row.kind.startswith(("MLP neurons", "raw residual"))]
    assert activations and all(row.skipped or row.metrics for row in activations)


def test_the_residual_control_compares_the_models_on_the_units_last_tokens(run):
    from featgeom_tda.pipeline.layers import main_pair

    recipe, pipe = run
    a, b = main_pair(recipe)
    rows = [r for r in pipe.results("geometry").controls if r.kind.startswith("raw residual")]
    assert len(rows) == 2 and all(r.skipped is None for r in rows)
    (row,) = [r for r in rows if (r.a, r.b) == (a.key, b.key)]
    assert 0 < row.n_rows <= 400 + 80
    # both models run over the units once, for every hook of the recipe, not once per layer pair
    assert pipe.aligned_reads == [[f"words__{HOOK_A_EARLY}", f"words__{HOOK_A}", f"pieces__{HOOK_B}"]]
    raw = pipe.context.hook_activations([a, b])
    X, Y = (raw[x.key][: row.n_rows].astype(np.float64) for x in (a, b))
    X, Y = X - X.mean(axis=0), Y - Y.mean(axis=0)  # linear CKA in float64, by hand
    cka = np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))
    assert row.metrics["cka"].score == pytest.approx(cka, abs=1e-6)
    assert row.metrics["cka"].p_value is not None and 0 < row.metrics["cka"].p_value <= 1


def test_explorer_cards_read_units_and_each_models_own_unembedding(run):
    from featgeom_tda.pipeline.layers import main_pair
    from featgeom_tda.pipeline.stages.explorer import _display_strings, _features, _model_display_strings

    recipe, pipe = run
    ctx = pipe.context
    assert (pipe.out_dir / "report" / "explorer.html").exists()
    strings = _display_strings(ctx)
    assert strings == ctx.token_strings()  # unit texts, shown as they are
    _, b = main_pair(recipe)
    pieces = set(_model_display_strings(ctx, b.model))
    feats = _features(ctx, b, strings)
    promoted = {tok for f in feats for tok, _ in f["promoted"]}
    assert promoted and promoted <= pieces  # B's decoder directions are read through B's own vocabulary


def test_steering_gives_each_model_the_task_in_its_own_tokens(run):
    recipe, pipe = run
    steering = pipe.results("steering")
    assert steering.skipped is None, steering.skipped
    for task in steering.tasks:
        assert task.rows and all(0 <= r.success_rate_b <= 1 for r in task.rows)
    assert steering.tasks or any("not run" in note for note in steering.notes)
