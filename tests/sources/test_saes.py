"""SAEs with sae_lens: hook activations, training, save/load, metrics against independent numpy."""

import numpy as np
import pytest
import torch

from featgeom_tda.sources.hooks import check_sae_matches_hook, sae_hook_name
from featgeom_tda.sources.saes import (
    collect_hook_activations,
    default_token_mask,
    default_width,
    load_pretrained_sae,
    load_sae,
    sae_metrics,
    save_sae,
    train_sae,
)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sparse_data(n=6000, d=16, n_dirs=24, k=3, seed=0):
    """Each row: a sum of k random unit directions (of n_dirs) with positive weights."""
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n_dirs, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    x = np.zeros((n, d))
    for i in range(n):
        idx = rng.choice(n_dirs, size=k, replace=False)
        x[i] = rng.uniform(0.5, 2.0, size=k) @ dirs[idx]
    return torch.tensor(x + 0.3, dtype=torch.float32)


@pytest.fixture(scope="module")
def data():
    return _sparse_data()


@pytest.fixture(scope="module")
def topk_sae(data):
    torch.set_num_threads(1)
    return train_sae(data[:5000], width=48, architecture="topk", k=4, hook_name="blocks.0.hook_resid_post",
                     model_name="toy", steps=300, batch_size=256, lr=3e-3, seed=0, progress=False)


@pytest.fixture(scope="module")
def model():
    from featgeom_tda.sources.models import ModelSpec, build_model

    return build_model(ModelSpec(n_layers=2, d_model=16, n_heads=2, d_mlp=32, n_ctx=12, d_vocab=20), seed=0)


def _numpy_topk(sae, x):
    """Independent float64 forward pass of a TopK SAE (decoder rows have unit norm)."""
    w_enc = sae.W_enc.detach().double().numpy()
    b_enc = sae.b_enc.detach().double().numpy()
    w_dec = sae.W_dec.detach().double().numpy()
    b_dec = sae.b_dec.detach().double().numpy()
    pre = (x - b_dec) @ w_enc + b_enc
    keep = np.argsort(-pre, axis=1)[:, : sae.cfg.k]
    acts = np.zeros_like(pre)
    np.put_along_axis(acts, keep, np.maximum(np.take_along_axis(pre, keep, axis=1), 0), axis=1)
    return acts, acts @ w_dec + b_dec


def test_topk_sae_reconstructs_sparse_data(topk_sae, data):
    m = sae_metrics(topk_sae, data[5000:])
    assert m["fvu"] < 0.2
    assert m["l0"] <= 4 and m["n_tokens"] == 1000 and m["d_sae"] == 48
    assert 0 <= m["dead_fraction"] < 0.5
    assert sae_hook_name(topk_sae) == "blocks.0.hook_resid_post"
    assert topk_sae.cfg.metadata.model_name == "toy"
    assert topk_sae.cfg.normalize_activations == "none"


def test_decoder_rows_are_unit_norm_and_numpy_forward_agrees(topk_sae, data):
    norms = topk_sae.W_dec.detach().norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    x = data[5000:5300].double().numpy()
    acts, recon = _numpy_topk(topk_sae, x)
    with torch.no_grad():
        f = topk_sae.encode(data[5000:5300])
        r = topk_sae.decode(f)
    np.testing.assert_allclose(f.double().numpy(), acts, atol=1e-4)
    np.testing.assert_allclose(r.double().numpy(), recon, atol=1e-4)


def test_sae_metrics_match_numpy(topk_sae, data):
    x = data[5000:].double().numpy()
    acts, recon = _numpy_topk(topk_sae, x)
    fvu = ((recon - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    m = sae_metrics(topk_sae, data[5000:], batch_size=128)
    assert m["fvu"] == pytest.approx(fvu, rel=1e-4)
    assert m["l0"] == pytest.approx((acts != 0).sum(1).mean())
    assert m["dead_fraction"] == pytest.approx(((acts != 0).sum(0) == 0).mean())


def test_save_load_gives_identical_encodings(topk_sae, data, tmp_path):
    save_sae(topk_sae, tmp_path / "sae")
    assert (tmp_path / "sae" / "cfg.json").exists()
    again = load_sae(tmp_path / "sae")
    with torch.no_grad():
        assert torch.equal(topk_sae.encode(data[:200]), again.encode(data[:200]))
        assert torch.equal(topk_sae(data[:200]), again(data[:200]))
    assert sae_hook_name(again) == "blocks.0.hook_resid_post"


def test_same_seed_same_sae(data):
    kw = dict(width=32, k=4, steps=20, batch_size=128, progress=False)
    a = train_sae(data[:1000], seed=5, **kw)
    b = train_sae(data[:1000], seed=5, **kw)
    c = train_sae(data[:1000], seed=6, **kw)
    assert torch.equal(a.W_dec, b.W_dec)
    assert not torch.equal(a.W_dec, c.W_dec)


def test_standard_sae_and_iterator_input(data):
    def batches():
        g = torch.Generator().manual_seed(0)
        while True:
            yield data[torch.randint(0, 5000, (256,), generator=g)]

    sae = train_sae(batches(), d_in=16, width=48, architecture="standard", l1_coefficient=1.0, steps=300,
                    lr=3e-3, progress=False)
    m = sae_metrics(sae, data[5000:])
    assert type(sae).__name__ == "StandardSAE"
    assert m["fvu"] < 0.3 and m["l0"] < 16


def test_collect_hook_activations(model):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 20, size=(5, 12))
    hook = "blocks.0.hook_resid_post"
    acts = collect_hook_activations(model, tokens, hook, batch_size=2, keep_bos=True)
    _, cache = model.run_with_cache(torch.from_numpy(tokens), names_filter=hook)
    assert torch.allclose(acts, cache[hook].reshape(-1, 16), atol=1e-6)
    mask = rng.random((5, 12)) < 0.5
    part = collect_hook_activations(model, tokens, hook, mask=mask)
    assert torch.allclose(part, cache[hook][torch.from_numpy(mask)], atol=1e-6)
    # attention outputs per head are flattened to one vector per token
    z = collect_hook_activations(model, tokens, "blocks.1.attn.hook_z", keep_bos=True)
    assert z.shape == (60, 16)


def test_default_mask_drops_padding_and_bos():
    from featgeom_tda.sources.corpus import generate_corpus
    from featgeom_tda.sources.models import ModelSpec, build_model
    from featgeom_tda.sources.tokenizer import train_tokenizer

    tok = train_tokenizer(generate_corpus(n_stories=20, seed=0), required_words=[])
    model = build_model(ModelSpec(n_layers=1, d_model=16, n_heads=2, n_ctx=16), tok)
    tokens = model.to_tokens(["The king", "The king and the queen"])
    mask = default_token_mask(model, tokens)
    expected = (tokens != tok.pad_token_id) & (tokens != tok.bos_token_id)
    assert np.array_equal(mask, expected.numpy())
    acts = collect_hook_activations(model, tokens, "blocks.0.hook_resid_post")
    assert acts.shape == (int(expected.sum()), 16)


def test_hook_and_width_errors(model, topk_sae, data):
    tokens = np.zeros((2, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="Valid hook names"):
        collect_hook_activations(model, tokens, "blocks.7.hook_resid_post")
    with pytest.raises(ValueError, match="mask has shape"):
        collect_hook_activations(model, tokens, "blocks.0.hook_resid_post", mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="Valid hook names"):
        train_sae(data[:500], model=model, hook_name="blocks.0.resid", steps=1, batch_size=64, progress=False)
    wrong = torch.randn(500, 8)
    with pytest.raises(ValueError, match="width 16"):
        train_sae(wrong, model=model, hook_name="blocks.0.hook_resid_post", steps=1, batch_size=64, progress=False)
    small = train_sae(wrong, width=16, k=2, steps=1, batch_size=64, progress=False, hook_name="blocks.0.hook_resid_post")
    with pytest.raises(ValueError, match="d_in=8"):
        check_sae_matches_hook(model, "blocks.0.hook_resid_post", small)
    # the right width but another hook than the SAE was trained on
    with pytest.raises(ValueError, match="trained on hook"):
        check_sae_matches_hook(model, "blocks.1.hook_resid_post", topk_sae)


def test_load_sae_checks_the_hook(model, topk_sae, tmp_path):
    save_sae(topk_sae, tmp_path / "s")
    loaded = load_sae(tmp_path / "s", model=model)
    assert type(loaded) is type(topk_sae)
    saved = topk_sae.state_dict()
    assert set(loaded.state_dict()) == set(saved)
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert (loaded.cfg.d_in, loaded.cfg.d_sae, loaded.cfg.k) == (16, 48, 4)
    assert loaded.cfg.d_in == topk_sae.cfg.d_in and loaded.cfg.d_sae == topk_sae.cfg.d_sae
    assert loaded.cfg.metadata.hook_name == "blocks.0.hook_resid_post" == sae_hook_name(loaded)
    assert loaded.cfg.metadata.model_name == "toy"
    x = torch.randn(7, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), topk_sae.encode(x))
    with pytest.raises(ValueError, match="trained on hook"):
        load_sae(tmp_path / "s", model=model, hook_name="blocks.1.hook_resid_post")
    with pytest.raises(ValueError, match="cfg.json"):
        load_sae(tmp_path / "missing")


def test_load_pretrained_sae_calls_from_pretrained(monkeypatch):
    from sae_lens import SAE

    calls = []

    def fake(release, sae_id, **kwargs):
        calls.append((release, sae_id, kwargs))
        return "sae"

    monkeypatch.setattr(SAE, "from_pretrained", staticmethod(fake))
    assert load_pretrained_sae("gpt2-small-res-jb", "blocks.8.hook_resid_pre") == "sae"
    assert calls == [("gpt2-small-res-jb", "blocks.8.hook_resid_pre", {"device": "cpu"})]
    with pytest.raises(ValueError, match="sae_id"):
        load_pretrained_sae("gpt2-small-res-jb", "")


def test_bad_arguments(data):
    with pytest.raises(ValueError, match="architecture"):
        train_sae(data, architecture="gated")
    with pytest.raises(ValueError, match="k=99"):
        train_sae(data, width=32, k=99)
    with pytest.raises(ValueError, match="not both"):
        train_sae(data, steps=3, training_tokens=1000)
    with pytest.raises(ValueError, match="d_in is required"):
        train_sae(iter([data[:10]]))
    with pytest.raises(ValueError, match="batch_size"):
        train_sae(data[:100], batch_size=1000)
    with pytest.raises(ValueError, match="NaN"):
        train_sae(torch.full((300, 4), float("nan")), batch_size=10)
    with pytest.raises(ValueError, match="activations must be"):
        train_sae("acts")
    with pytest.raises(ValueError, match="l1_coefficient"):
        train_sae(data, architecture="standard", l1_coefficient=-1)
    with pytest.raises(ValueError, match="multiple"):
        default_width(64, 0)
    assert default_width(64, 4) == 256
