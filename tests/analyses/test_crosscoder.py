"""Crosscoder diffing: relative decoder norms, classes, block cosines, latent scaling, SAE correlations."""

import numpy as np
import pytest
import torch

from featgeom_tda.analyses.crosscoder import (
    LATENT_CLASSES,
    BlockCosines,
    block_cosines,
    class_counts,
    classify_latents,
    crosscoder_vs_matching,
    decoder_norm_histogram,
    exclusive_but_shared,
    latent_scaling,
    relative_decoder_norm,
)
from featgeom_tda.sources.crosscoders import Crosscoder, train_crosscoder
from featgeom_tda.sources.synthetic import make_synthetic_pair


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _orthonormal(rng, n, d):
    q, _ = np.linalg.qr(rng.standard_normal((d, n)))
    return q.T  # (n, d) orthonormal rows


def hand_crosscoder(w_enc, w_dec, d_a, d_b, *, b_dec=None, scale_a=1.0, scale_b=1.0):
    """Crosscoder around a ReLU sae_lens SAE with the given (d_in, width) encoder and (width, d_in) decoder."""
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    w_enc, w_dec = np.asarray(w_enc, np.float64), np.asarray(w_dec, np.float64)
    with torch.random.fork_rng(devices=[]):
        sae = StandardSAE(StandardSAEConfig(d_in=d_a + d_b, d_sae=w_dec.shape[0]))
    with torch.no_grad():
        sae.W_enc.copy_(torch.from_numpy(w_enc))
        sae.W_dec.copy_(torch.from_numpy(w_dec))
        sae.b_enc.zero_()
        sae.b_dec.copy_(torch.zeros(d_a + d_b) if b_dec is None else torch.as_tensor(b_dec))
    sae.eval()
    return Crosscoder(sae=sae, scale_a=scale_a, scale_b=scale_b, d_a=d_a, d_b=d_b)


@pytest.fixture(scope="module")
def decoupled():
    """A shared feature s split into an A-only latent (0) and a B-only latent (1), a private A feature (2),
    and a shared feature t with a shared latent (3), in models of widths 6 and 5."""
    rng = np.random.default_rng(0)
    d_a, d_b, n = 6, 5, 4000
    da, db = _orthonormal(rng, 3, d_a), _orthonormal(rng, 2, d_b)
    s_a, p_a, t_a = da
    s_b, t_b = db
    fire = rng.random((n, 3)) < 0.2
    coef = fire * rng.uniform(0.5, 1.5, size=(n, 3))  # s, p, t
    a = coef[:, [0]] * s_a + coef[:, [1]] * p_a + coef[:, [2]] * t_a
    b = coef[:, [0]] * s_b + coef[:, [2]] * t_b
    z = np.zeros
    w_dec = np.array([
        np.r_[s_a, z(d_b)], np.r_[z(d_a), s_b], np.r_[p_a, z(d_b)], np.r_[t_a, t_b] / np.sqrt(2),
    ])  # fmt: skip
    w_enc = np.stack([np.r_[s_a, z(d_b)], np.r_[z(d_a), s_b], np.r_[p_a, z(d_b)], np.sqrt(2) * np.r_[t_a, z(d_b)]],
                     axis=1)  # fmt: skip
    cc = hand_crosscoder(w_enc, w_dec, d_a, d_b)
    return cc, a.astype(np.float32), b.astype(np.float32), coef


def test_relative_norm_classes_and_histogram(decoupled):
    cc = decoupled[0]
    r = relative_decoder_norm(cc)
    np.testing.assert_allclose(r, [0.0, 1.0, 0.0, 0.5], atol=1e-7)
    np.testing.assert_array_equal(classify_latents(r), ["exclusive_a", "exclusive_b", "exclusive_a", "shared"])
    wa, wb = cc.decoder_blocks(units="normalized")
    np.testing.assert_allclose(relative_decoder_norm(wa, wb), r)
    # closed form on given blocks; a zero latent is NaN -> "dead"
    r2 = relative_decoder_norm(np.array([[3.0, 4.0], [0, 0], [1, 0], [0, 0]]), np.array([[0, 5.0], [0, 0], [0, 3], [2, 0]]))
    np.testing.assert_allclose(r2, [0.5, np.nan, 0.75, 1.0])
    assert classify_latents([0.05, 0.2, 0.3, 0.7, 0.8, 0.95, np.nan]).tolist() == [
        "exclusive_a", "partial", "shared", "shared", "partial", "exclusive_b", "dead"]
    assert classify_latents([0.5, 0.5], dead=[False, True]).tolist() == ["shared", "dead"]
    assert classify_latents([0.15], exclusive_threshold=0.2).tolist() == ["exclusive_a"]
    counts = class_counts(classify_latents(r))
    assert set(counts) == set(LATENT_CLASSES) and counts["exclusive_a"] == 2 and counts["shared"] == 1
    counts_h, edges = decoder_norm_histogram([0.0, 0.01, 0.5, 1.0, np.nan], bins=4)
    np.testing.assert_array_equal(counts_h, [2, 0, 1, 1])
    np.testing.assert_allclose(edges, [0, 0.25, 0.5, 0.75, 1.0])


def test_identical_models_have_cosine_one_in_their_shared_basis():
    p = make_synthetic_pair(n_shared=10, n_private_a=0, n_private_b=0, d_a=12, d_b=12, n_samples=3000, seed=2)
    cc = train_crosscoder(p.acts_a, 2.0 * p.acts_a, width=10, k=2, steps=300, batch_size=256, lr=1e-2,
                          sampling="replacement", lr_warm_up_steps=0, normalize=False, init_b_dec_to_mean=False)  # fmt: skip
    res = block_cosines(cc)
    assert isinstance(res, BlockCosines) and res.alignment == "none" and "one basis" in res.note
    assert res.latents.size >= 8
    assert np.all(res.cosines > 0.98) and np.median(res.cosines) > 0.999


def test_procrustes_alignment_recovers_a_rotation_cross_fitted():
    rng = np.random.default_rng(1)
    d_a, d_b, d_latent, width = 8, 6, 5, 40
    # one latent geometry embedded in each model by its own isometry (as in the synthetic generator)
    g = rng.standard_normal((width, d_latent))
    wa = g @ _orthonormal(rng, d_latent, d_a)
    wb = g @ _orthonormal(rng, d_latent, d_b) + 0.05 * rng.standard_normal((width, d_b))
    scale = np.linalg.norm(np.hstack([wa, wb]), axis=1, keepdims=True)
    w_dec = np.hstack([wa, wb]) / scale
    cc = hand_crosscoder(np.zeros((d_a + d_b, width)), w_dec, d_a, d_b)
    res = block_cosines(cc, latents=np.arange(width), fit_latents=np.arange(width))
    assert res.alignment == "procrustes" and res.cross_fitted and "Procrustes" in res.note
    assert res.rotation.shape == (d_b, d_a)  # B (narrower) mapped into A's space
    assert np.all(res.cosines > 0.9), res.cosines
    # random B blocks: the cross-fitted cosines stay low, while a map scored on its own few fit latents
    # matches them anyway (why cross-fitting is the default)
    w_rand = np.hstack([wa, rng.standard_normal((width, d_b)) * 0.4])
    cc_rand = hand_crosscoder(np.zeros((d_a + d_b, width)), w_rand / np.linalg.norm(w_rand, axis=1, keepdims=True), d_a, d_b)
    crossed = block_cosines(cc_rand, latents=np.arange(width), fit_latents=np.arange(width))
    assert np.mean(crossed.cosines) < 0.5
    few = np.arange(4)
    self_fit = block_cosines(cc_rand, latents=few, fit_latents=few, cross_fit=False)
    assert not self_fit.cross_fitted and np.mean(self_fit.cosines) > np.mean(crossed.cosines[few]) + 0.2
    with pytest.raises(ValueError, match="alignment='none' needs d_a == d_b"):
        block_cosines(cc, alignment="none")
    with pytest.raises(ValueError, match="at least 2 fit latents"):
        block_cosines(cc, fit_latents=[0])


def test_latent_scaling_flags_a_decoupled_shared_feature(decoupled):
    cc, a, b, _ = decoupled
    sc = latent_scaling(cc, a, b)
    assert sc.own.tolist() == ["a", "b", "a", "a"]
    # own model: the latent's own decoder block is what it explains (beta 1 for unit directions)
    np.testing.assert_allclose(sc.beta["activation"]["a"][[0, 2]], 1.0, atol=0.05)
    nu = sc.nu
    # the split shared feature: the other model's activations and the other latent's reconstruction carry
    # it, while its reconstruction error does not (the other latent explains it): latent decoupling
    assert nu["activation"][0] > 0.9 and nu["reconstruction"][0] > 0.9 and nu["error"][0] < 0.1
    assert nu["activation"][1] > 0.9
    # the private feature: nothing in B along its activation
    assert nu["activation"][2] < 0.1 and nu["reconstruction"][2] < 0.1
    np.testing.assert_array_equal(exclusive_but_shared(sc), [True, True, False, False])
    assert not exclusive_but_shared(sc, target="error").any()
    assert set(sc.to_dict()) >= {"beta", "nu", "own", "r"}


def _loop_scaling(cc, a, b, latents, *, center, direction):
    """Explicit float64 least squares per latent, model and target (numpy lstsq)."""
    xa, xb = cc.normalize(a, b)
    x = torch.from_numpy(np.concatenate([xa, xb], axis=1))
    with torch.no_grad():
        z_t = cc.sae.encode(x)
        xhat = cc.sae.decode(z_t).double().numpy()
    z = z_t.double().numpy()
    w = cc.sae.W_dec.detach().double().numpy()
    parts = {"a": slice(0, cc.d_a), "b": slice(cc.d_a, cc.d_a + cc.d_b)}
    xs = {"a": xa.astype(np.float64), "b": xb.astype(np.float64)}
    out = {t: {m: [] for m in parts} for t in ("error", "reconstruction", "activation")}
    for j in latents:
        f = z[:, j]
        design = np.stack([f, np.ones_like(f)], axis=1) if center else f[:, None]
        na, nb = np.linalg.norm(w[j, parts["a"]]), np.linalg.norm(w[j, parts["b"]])
        u_block = w[j, parts["a"]] if na >= nb else w[j, parts["b"]]
        u = u_block / np.linalg.norm(u_block)
        for m, cols in parts.items():
            d = w[j, cols]
            targets = {
                "error": xs[m] - xhat[:, cols] + np.outer(f, d),
                "reconstruction": xhat[:, cols] - np.outer(f, d),
                "activation": xs[m],
            }
            for t, y in targets.items():
                coef, *_ = np.linalg.lstsq(design, y, rcond=None)
                v = coef[0]
                out[t][m].append(np.linalg.norm(v) if direction == "fitted" else float(v @ u))
    return {t: {m: np.array(v) for m, v in by.items()} for t, by in out.items()}


@pytest.fixture(scope="module")
def trained_pair():
    p = make_synthetic_pair(n_shared=6, n_private_a=3, n_private_b=3, d_a=10, d_b=10, n_samples=2000, seed=4,
                            noise=0.02)  # fmt: skip
    cc = train_crosscoder(p.acts_a, p.acts_b, width=14, k=3, steps=150, batch_size=256, lr=1e-2,
                          sampling="replacement", lr_warm_up_steps=0, seed=1)  # fmt: skip
    return cc, p


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("direction", ["fitted", "decoder"])
def test_latent_scaling_matches_an_explicit_float64_loop(trained_pair, center, direction):
    cc, p = trained_pair
    z = cc.encode(p.acts_a, p.acts_b)
    live = np.flatnonzero(np.bincount(z.indices, minlength=cc.width) > 1)
    assert live.size >= 8
    sc = latent_scaling(cc, p.acts_a, p.acts_b, latents=live, center=center, direction=direction, batch_size=333)
    ref = _loop_scaling(cc, p.acts_a, p.acts_b, live, center=center, direction=direction)
    own = np.where(sc.own == "a", ref["activation"]["a"], ref["activation"]["b"])
    for t in ref:
        for m in ("a", "b"):
            np.testing.assert_allclose(sc.beta[t][m], ref[t][m], rtol=1e-5, atol=1e-6, err_msg=f"{t} {m}")
        other = np.where(sc.own == "a", ref[t]["b"], ref[t]["a"])
        np.testing.assert_allclose(sc.nu[t], other / own, rtol=1e-4, atol=1e-6)


def test_latent_scaling_refuses_bad_inputs(decoupled):
    cc, a, b, _ = decoupled
    with pytest.raises(ValueError, match="direction='decoder' .* needs d_a == d_b"):
        latent_scaling(cc, a, b, direction="decoder")
    with pytest.raises(ValueError, match="direction must be one of"):
        latent_scaling(cc, a, b, direction="free")
    with pytest.raises(ValueError, match="acts_a has 4000 rows but acts_b has 3999"):
        latent_scaling(cc, a, b[:-1])
    with pytest.raises(ValueError, match="latents must be latent indices in \\[0, 4\\)"):
        latent_scaling(cc, a, b, latents=[7])
    with pytest.raises(ValueError, match="center must be True or False"):
        latent_scaling(cc, a, b, center="yes")
    with pytest.raises(ValueError, match="crosscoder must be a Crosscoder"):
        latent_scaling(object(), a, b)
    sc = latent_scaling(cc, a, b)
    with pytest.raises(ValueError, match="nu_threshold"):
        exclusive_but_shared(sc, nu_threshold=0)
    with pytest.raises(ValueError, match="target must be one of"):
        exclusive_but_shared(sc, target="x")


def test_relative_norm_and_classes_refuse_bad_inputs():
    with pytest.raises(ValueError, match="block_b is required"):
        relative_decoder_norm(np.ones((3, 2)))
    with pytest.raises(ValueError, match="block_a has 3 rows but block_b has 2"):
        relative_decoder_norm(np.ones((3, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="exclusive_threshold"):
        classify_latents([0.5], exclusive_threshold=0.6)
    with pytest.raises(ValueError, match="shared_band"):
        classify_latents([0.5], shared_band=(0.05, 0.5))
    with pytest.raises(ValueError, match="dead has 1 entries but r has 2"):
        classify_latents([0.5, 0.5], dead=[True])
    with pytest.raises(ValueError, match="r must lie in"):
        decoder_norm_histogram([1.5])
    with pytest.raises(ValueError, match="bins"):
        decoder_norm_histogram([0.5], bins=0)
    with pytest.raises(ValueError, match="unknown labels"):
        class_counts(["shared", "other"])


def test_crosscoder_vs_matching_finds_each_models_feature(decoupled):
    cc, a, b, coef = decoupled
    z = cc.encode(a, b)
    sae_a = coef[:, [2, 0, 1]]  # A's "SAE": t, s, p (out of order on purpose)
    sae_b = coef[:, [0, 2]]  # B's: s, t
    res = crosscoder_vs_matching(z, sae_a, sae_b)
    np.testing.assert_array_equal(res.index_a, [1, 1, 2, 0])
    np.testing.assert_array_equal(res.index_b[[0, 1, 3]], [0, 0, 1])
    np.testing.assert_allclose(res.corr_a[[0, 1, 2, 3]], 1.0, atol=1e-5)
    np.testing.assert_allclose(res.corr_b[[0, 1, 3]], 1.0, atol=1e-5)
    assert res.corr_b[2] < 0.1  # the private A feature has no partner in B
    summary = res.summary(classify_latents(relative_decoder_norm(cc)))
    assert summary["exclusive_a"]["n"] == 2 and summary["all"]["n"] == 4
    with pytest.raises(ValueError, match="same rows"):
        crosscoder_vs_matching(z, sae_a[:-1], sae_b)
