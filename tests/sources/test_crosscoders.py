"""Acausal crosscoders: TopK SAEs on concatenated, normalised activations of two models."""

import math

import numpy as np
import pytest
import torch

from featgeom_tda.sources.crosscoders import CROSSCODER_JSON, Crosscoder, load_crosscoder, train_crosscoder
from featgeom_tda.sources.synthetic import make_synthetic_pair

FAST = dict(steps=400, batch_size=256, lr=1e-2, sampling="replacement", lr_warm_up_steps=0, normalize=False,
            init_b_dec_to_mean=False, dead_feature_window=100)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _r(cc: Crosscoder) -> np.ndarray:
    wa, wb = cc.decoder_blocks(units="normalized")
    na, nb = np.linalg.norm(wa, axis=1), np.linalg.norm(wb, axis=1)
    return nb / (na + nb)


def _live(cc: Crosscoder, a, b) -> np.ndarray:
    z = cc.encode(a, b)
    return np.bincount(z.indices, minlength=cc.width) > 0


@pytest.fixture(scope="module")
def same_pair():
    # one model seen twice, at two different scales (the normalisation must undo the factor 3)
    p = make_synthetic_pair(n_shared=12, n_private_a=0, n_private_b=0, d_a=16, d_b=16, n_samples=4000, seed=1)
    return p.acts_a, 3.0 * p.acts_a


@pytest.fixture(scope="module")
def same_cc(same_pair):
    return train_crosscoder(*same_pair, width=12, k=2, seed=0, **FAST)


@pytest.fixture(scope="module")
def disjoint_pair():
    return make_synthetic_pair(n_shared=0, n_private_a=12, n_private_b=12, d_a=20, d_b=16, n_samples=8000, seed=1)


@pytest.fixture(scope="module")
def disjoint_cc(disjoint_pair):
    return train_crosscoder(disjoint_pair.acts_a, disjoint_pair.acts_b, width=24, k=2, seed=0, **FAST)


def test_identical_models_give_only_shared_latents(same_pair, same_cc):
    a, b = same_pair
    assert same_cc.scale_b == pytest.approx(3.0 * same_cc.scale_a, rel=1e-5)
    live = _live(same_cc, a, b)
    assert live.sum() >= 10
    r = _r(same_cc)[live]
    assert np.all(np.abs(r - 0.5) < 0.05), np.round(r, 3)
    # in the original units the B block is the A block times the scale ratio (3)
    wa, wb = same_cc.decoder_blocks()
    ratio = np.linalg.norm(wb, axis=1)[live] / np.linalg.norm(wa, axis=1)[live]
    assert np.all(np.abs(ratio - 3.0) < 0.4)


def test_disjoint_features_give_exclusive_latents(disjoint_pair, disjoint_cc):
    live = _live(disjoint_cc, disjoint_pair.acts_a, disjoint_pair.acts_b)
    r = _r(disjoint_cc)[live]
    exclusive = (r < 0.1) | (r > 0.9)
    assert exclusive.mean() >= 0.9, np.round(np.sort(r), 2)
    assert (r < 0.1).sum() >= 8 and (r > 0.9).sum() >= 8


def test_metrics_per_model_fvu_against_numpy(disjoint_pair, disjoint_cc):
    a, b = disjoint_pair.acts_a, disjoint_pair.acts_b
    m = disjoint_cc.metrics(a, b)
    assert set(m) == {"fvu_a", "fvu_b", "fvu", "l0", "l0_a", "l0_b", "dead_fraction", "n_tokens", "width"}
    for key in ("fvu_a", "fvu_b", "fvu"):
        assert 0.0 <= m[key] <= 1.5
    assert m["fvu_a"] < 0.3 and m["fvu_b"] < 0.3
    assert 0 < m["l0"] <= 2 + 1e-9 and m["l0_a"] <= m["l0"] and m["l0_b"] <= m["l0"]
    assert 0.0 <= m["dead_fraction"] <= 1.0 and m["n_tokens"] == a.shape[0] and m["width"] == 24
    # independent: the SAE's own forward pass on the concatenated normalised rows, float64 numpy sums
    cc = disjoint_cc
    x = torch.from_numpy(np.concatenate([a / cc.scale_a, b / cc.scale_b], axis=1).astype(np.float32))
    with torch.no_grad():
        xhat = cc.sae.decode(cc.sae.encode(x)).double().numpy()
    for name, acts, cols, scale in (("fvu_a", a, slice(0, 20), cc.scale_a), ("fvu_b", b, slice(20, 36), cc.scale_b)):
        x64 = acts.astype(np.float64)
        fvu = ((x64 - xhat[:, cols] * scale) ** 2).sum() / ((x64 - x64.mean(axis=0)) ** 2).sum()
        assert m[name] == pytest.approx(fvu, rel=1e-4, abs=1e-6)


def test_reconstruct_is_decoder_blocks_in_original_units(disjoint_pair, disjoint_cc):
    a, b = disjoint_pair.acts_a[:500], disjoint_pair.acts_b[:500]
    z = disjoint_cc.encode(a, b).toarray().astype(np.float64)
    wa, wb = disjoint_cc.decoder_blocks()
    ba, bb = disjoint_cc.decoder_bias()
    ra, rb = disjoint_cc.reconstruct(a, b)
    np.testing.assert_allclose(ra, z @ wa + ba, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rb, z @ wb + bb, rtol=1e-4, atol=1e-4)
    na, nb = disjoint_cc.decoder_blocks(units="normalized")
    np.testing.assert_allclose(np.hstack([na, nb]), disjoint_cc.sae.W_dec.detach().double().numpy())
    # unit decoder rows over the concatenated normalised space
    np.testing.assert_allclose(np.linalg.norm(np.hstack([na, nb]), axis=1), 1.0, atol=1e-4)


def test_save_load_round_trip(tmp_path, disjoint_pair, disjoint_cc):
    a, b = disjoint_pair.acts_a[:300], disjoint_pair.acts_b[:300]
    out = disjoint_cc.save(tmp_path / "cc")
    assert {p.name for p in out.iterdir()} >= {"cfg.json", "sae_weights.safetensors", CROSSCODER_JSON}
    back = load_crosscoder(out)
    assert isinstance(back, Crosscoder) and Crosscoder.load(out).width == disjoint_cc.width
    assert (back.scale_a, back.scale_b, back.d_a, back.d_b) == (
        disjoint_cc.scale_a, disjoint_cc.scale_b, disjoint_cc.d_a, disjoint_cc.d_b)
    assert back.config == disjoint_cc.config
    np.testing.assert_array_equal(back.encode(a, b).toarray(), disjoint_cc.encode(a, b).toarray())
    for x, y in zip(back.decoder_blocks(), disjoint_cc.decoder_blocks()):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match=CROSSCODER_JSON):
        load_crosscoder(tmp_path)


def test_seeded_training_is_reproducible(same_pair):
    a, b = same_pair
    opts = dict(FAST, steps=30)
    c1 = train_crosscoder(a, b, width=8, k=2, seed=5, **opts)
    c2 = train_crosscoder(a, b, width=8, k=2, seed=5, **opts)
    np.testing.assert_array_equal(c1.decoder_blocks()[0], c2.decoder_blocks()[0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(acts_b=np.ones((99, 4), np.float32)), "acts_a has 100 rows but acts_b has 99"),
        (dict(acts_a=np.full((100, 3), np.nan, np.float32)), "acts_a contains"),
        (dict(acts_b=np.ones(100, np.float32)), "acts_b must be 2-D"),
        (dict(acts_a=np.zeros((100, 3), np.float32)), "acts_a is all zeros"),
        (dict(width=0), "width"),
        (dict(k=9), "k=9 must be at most width=8"),
        (dict(k=0), "k must be"),
        (dict(seed=1.5), "seed"),
        (dict(steps=0), "steps"),
        (dict(model_names="ab"), "model_names"),
    ],
)
def test_bad_training_inputs_are_refused(kwargs, match):
    rng = np.random.default_rng(0)
    args = dict(acts_a=rng.random((100, 3), dtype=np.float32), acts_b=rng.random((100, 4), dtype=np.float32),
                width=8, k=2, steps=5, batch_size=50)  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train_crosscoder(args.pop("acts_a"), args.pop("acts_b"), **args)


def test_bad_inputs_to_a_trained_crosscoder_are_refused(disjoint_pair, disjoint_cc):
    a, b = disjoint_pair.acts_a[:10], disjoint_pair.acts_b[:10]
    with pytest.raises(ValueError, match="acts_a has 16 columns but the crosscoder's model A has d_a=20"):
        disjoint_cc.encode(b, b)
    with pytest.raises(ValueError, match="acts_b has 20 columns"):
        disjoint_cc.encode(a, a)
    with pytest.raises(ValueError, match="acts_a has 10 rows but acts_b has 9"):
        disjoint_cc.metrics(a, b[:9])
    with pytest.raises(ValueError, match="units"):
        disjoint_cc.decoder_blocks(units="raw")
    with pytest.raises(ValueError, match="latents must be"):
        disjoint_cc.decode(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="scale_a"):
        Crosscoder(sae=disjoint_cc.sae, scale_a=-1.0, scale_b=1.0, d_a=20, d_b=16)
    with pytest.raises(ValueError, match="d_a \\+ d_b"):
        Crosscoder(sae=disjoint_cc.sae, scale_a=1.0, scale_b=1.0, d_a=20, d_b=15)
    assert math.isfinite(disjoint_cc.metrics(disjoint_pair.acts_a[:500], disjoint_pair.acts_b[:500])["fvu_a"])
