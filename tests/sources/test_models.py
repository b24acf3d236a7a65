"""Small HookedTransformer models: build, train, save/load, evaluate."""

import math

import numpy as np
import pytest
import torch

from featgeom_tda.sources.models import (
    ModelSpec,
    build_model,
    eval_loss,
    load_hub_model,
    load_model,
    save_model,
    train_model,
    unigram_entropy,
)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cyclic_tokens(n_rows=64, seq=16, period=7, offset=3):
    """Rows of the cycle offset, offset+1, ..., offset+period-1, repeated, each starting at a random phase."""
    rng = np.random.default_rng(0)
    phase = rng.integers(0, period, size=(n_rows, 1))
    return offset + (phase + np.arange(seq)[None, :]) % period


SPEC = dict(n_layers=1, d_model=32, n_heads=2, d_mlp=64, n_ctx=16)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    tokens = _cyclic_tokens()
    model, losses = train_model(tokens, None, steps=60, batch_size=16, lr=1e-2, seed=0, progress=False, **SPEC)
    return model, losses, tokens


def test_training_learns_a_deterministic_sequence(trained):
    model, losses, tokens = trained
    # a context-free predictor cannot beat ln(period); the sequence is deterministic after one token
    assert unigram_entropy(tokens[:, 1:]) == pytest.approx(math.log(7), abs=0.02)
    assert len(losses) == 60 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.3 < math.log(7)
    assert eval_loss(model, tokens) < 0.3


def test_same_seed_same_weights_and_global_rng_untouched():
    spec = ModelSpec(d_vocab=11, **SPEC)
    state = torch.get_rng_state()
    a = build_model(spec, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = build_model(spec, seed=3)
    c = build_model(spec, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.W_E, c.W_E)


def test_save_load_gives_identical_logits(trained, tmp_path):
    model, _, tokens = trained
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    x = torch.from_numpy(tokens[:4])
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert ModelSpec.from_model(again) == ModelSpec.from_model(model)


def test_save_load_with_tokenizer(tmp_path):
    from featgeom_tda.sources.corpus import generate_corpus
    from featgeom_tda.sources.tokenizer import train_tokenizer

    texts = generate_corpus(n_stories=40, seed=0)
    tok = train_tokenizer(texts, required_words=["king"])
    model, _ = train_model(texts, tok, steps=2, batch_size=4, progress=False, name="toy", **SPEC)
    assert model.cfg.model_name == "toy" and model.cfg.d_vocab == len(tok)
    save_model(model, tmp_path / "m")
    assert (tmp_path / "m" / "tokenizer.json").exists()
    again = load_model(tmp_path / "m")
    text = "The king was happy."
    assert again.to_string(again.to_tokens(text)[0, 1:]) == text
    with torch.no_grad():
        assert torch.equal(model(text), again(text))


def test_eval_loss_matches_float64_numpy(trained):
    model, _, _ = trained
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, model.cfg.d_vocab, size=(5, 12))
    mask = rng.random((5, 12)) < 0.7
    with torch.no_grad():
        logits = model(torch.from_numpy(tokens)).double().numpy()
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp[:, :-1], tokens[:, 1:, None], axis=-1)[..., 0]
    assert eval_loss(model, tokens, batch_size=2) == pytest.approx(nll.mean(), rel=1e-5)
    m = mask[:, 1:]
    assert eval_loss(model, tokens, mask=mask, batch_size=3) == pytest.approx(nll[m].mean(), rel=1e-5)


def test_unigram_entropy_closed_forms():
    assert unigram_entropy(np.array([[4, 4, 4]])) == 0.0
    assert unigram_entropy(np.arange(8)) == pytest.approx(math.log(8))
    from scipy.stats import entropy

    x = np.random.default_rng(0).integers(0, 50, size=(30, 30))
    assert unigram_entropy(x) == pytest.approx(entropy(np.bincount(x.ravel())))
    mask = x < 10
    assert unigram_entropy(x, mask=mask) == pytest.approx(entropy(np.bincount(x[mask])))


def test_load_hub_model_calls_from_pretrained(monkeypatch):
    from transformer_lens import HookedTransformer

    calls = []

    def fake(name, **kwargs):
        calls.append((name, kwargs))
        return "model"

    monkeypatch.setattr(HookedTransformer, "from_pretrained", staticmethod(fake))
    assert load_hub_model("gpt2-small", n_devices=1) == "model"
    assert calls == [("gpt2-small", {"device": "cpu", "n_devices": 1})]
    with pytest.raises(ValueError, match="name"):
        load_hub_model("")


def test_bad_arguments(tmp_path):
    tokens = _cyclic_tokens()
    with pytest.raises(ValueError, match="steps"):
        train_model(tokens, steps=0, **SPEC)
    with pytest.raises(ValueError, match="batch_size"):
        train_model(tokens, batch_size=-1, **SPEC)
    with pytest.raises(ValueError, match="lr"):
        train_model(tokens, lr=0, **SPEC)
    with pytest.raises(ValueError, match="n_heads"):
        ModelSpec(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="act_fn"):
        ModelSpec(act_fn="swish!")
    with pytest.raises(ValueError, match="n_ctx=8"):
        train_model(tokens, **{**SPEC, "n_ctx": 8})
    with pytest.raises(ValueError, match="tokenizer is required"):
        train_model(["a story"], **SPEC)
    with pytest.raises(ValueError, match="integer token ids"):
        train_model(tokens.astype(float), **SPEC)
    with pytest.raises(ValueError, match="unknown keys"):
        ModelSpec.from_dict({"n_layers": 1, "depth": 3})
    with pytest.raises(ValueError, match="config.json"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="d_vocab"):
        ModelSpec(**SPEC).to_config()


def test_a_hub_model_that_cannot_be_downloaded_is_one_clear_error(monkeypatch):
    from transformer_lens import HookedTransformer

    from featgeom_tda.sources.models import load_hub_model

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to the hub to load the files, and couldn't find them in the cached files.")

    monkeypatch.setattr(HookedTransformer, "from_pretrained", offline)
    with pytest.raises(ValueError, match=r"cannot load model 'gpt2' here: .*not in the local hub cache.*give a local path"):
        load_hub_model("gpt2")
