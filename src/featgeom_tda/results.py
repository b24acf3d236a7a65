"""Typed results of the pipeline's stages: one dataclass a stage, shared by the pipeline and the report.

Each stage returns one of these; the runner stores ``to_dict()`` in ``OUT/<stage>/stage.json`` and rebuilds
the object with ``from_dict`` when the stage is reused from its cache. ``from_dict`` refuses unknown and
missing keys, so a renamed field fails loudly instead of blanking a report section. Values that an analysis
module returns as its own JSON (Mapper statistics, diagram summaries, subspace results) are kept as dicts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args, get_origin

__all__ = [
    "ControlRow",
    "SCHEMA_VERSION",
    "ResultError",
    "StageResult",
    "ModelInfo",
    "SAEInfo",
    "SourcesResult",
    "LayerActivations",
    "ExtractionResult",
    "AssignmentTotals",
    "PairMatching",
    "MatchingResult",
    "MetricScore",
    "PairGeometry",
    "SpectrumRow",
    "SpectraResult",
    "GeometryResult",
    "MapperSide",
    "MapperResult",
    "PersistenceRun",
    "PersistenceResult",
    "ProjectionResult",
    "TopologyResult",
    "ExampleContext",
    "TopPair",
    "ConceptAgreement",
    "PairInterpretation",
    "InterpretationResult",
    "SteeringRow",
    "SteeringTaskResult",
    "SteeringResult",
    "CrosscoderModelFit",
    "CrosscoderClassAgreement",
    "CrosscoderResult",
    "SplittingWidth",
    "SplitStep",
    "SplittingResult",
    "ReportResult",
    "STAGE_RESULTS",
]

SCHEMA_VERSION = 2  # of results.json; 1 was the untyped layout

T = TypeVar("T", bound="StageResult")


class ResultError(ValueError):
    """A stored result that does not fit its dataclass (unknown, missing or mistyped key)."""


class StageResult:
    """Base of every result dataclass: ``to_dict`` / ``from_dict`` with strict keys."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: Any, *, where: str | None = None) -> T:
        return _build(cls, data, where or cls.__name__)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ResultError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ResultError(f"{where}: unknown key {unknown[0]!r}; {cls.__name__} has {', '.join(fields)}")
    missing = [
        n for n, f in fields.items()
        if n not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ResultError(f"{where}: missing key {missing[0]!r} of {cls.__name__}")
    return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ResultError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ResultError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {k: _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------- sources
@dataclass
class ModelInfo(StageResult):
    """Size of a compared model and, for the embedded default, its training outcome (nats per token)."""

    n_layers: int
    d_model: int
    d_mlp: int | None
    n_params: int
    source: str = "embedded"
    final_loss: float | None = None
    unigram_entropy: float | None = None
    train_steps: int | None = None


@dataclass
class SAEInfo(StageResult):
    """The SAE of one (model, hook): where it came from, width, FVU, L0, dead fraction, the CE-loss with its
    reconstruction spliced in against zero-ablation of the hook; ``training`` the rest."""

    model: str
    hook: str
    kind: str
    width: int
    fvu: float | None = None
    l0: float | None = None
    dead_fraction: float | None = None
    spec: str = ""  # the recipe's SAE spec, e.g. "topk k=16, 4x d_model"
    # next-token cross-entropy (nats) on compared rows: clean, SAE spliced in, hook zero-ablated
    ce_clean: float | None = None
    ce_spliced: float | None = None
    ce_zero_ablation: float | None = None
    ce_loss_increase: float | None = None  # spliced - clean
    ce_recovered: float | None = None  # (zero - spliced) / (zero - clean)
    training: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourcesResult(StageResult):
    models: dict[str, ModelInfo]
    saes: dict[str, SAEInfo]  # by layer key "<model>__<hook>"
    n_texts: int


# ------------------------------------------------------------------------------------------ extraction
@dataclass
class LayerActivations(StageResult):
    n_tokens: int
    n_features: int
    mean_l0: float
    dead_on_data: float  # fraction of features that never fire on the compared tokens
    store: str


@dataclass
class ExtractionResult(StageResult):
    n_docs: int
    n_tokens: int  # compared rows: tokens, or aligned units when the tokenizers differ
    layers: dict[str, LayerActivations]
    alignment: dict[str, Any] | None = None  # TokenAlignment.stats() and the kept units, when aligned


# -------------------------------------------------------------------------------------------- matching
@dataclass
class AssignmentTotals(StageResult):
    """Total correlation of the one-to-one matching (mutual pairs fixed, the rest assigned) against the optimal
    one-to-one assignment of the same candidate graph, both at the recipe's threshold and before token filters."""

    one_to_one_pairs: int
    one_to_one_total: float
    optimal_pairs: int
    optimal_total: float

    @property
    def ratio(self) -> float | None:
        return self.one_to_one_total / self.optimal_total if self.optimal_total > 0 else None


@dataclass
class PairMatching(StageResult):
    a: str
    b: str
    n_pairs: int
    n_features_a: int
    n_features_b: int
    mean_correlation: float | None
    median_correlation: float | None
    filtered: dict[str, int]  # reason -> features or pairs removed
    assignment: AssignmentTotals | None = None  # matching.compare_assignment


@dataclass
class MatchingResult(StageResult):
    pairs: dict[str, PairMatching]  # by pair key "<layer A>--<layer B>"
    main_pair: str
    histogram: str


# -------------------------------------------------------------------------------------------- geometry
@dataclass
class MetricScore(StageResult):
    """A metric on matched pairs beside its random-pairing null (p = (k+1)/(n+1)) and a random-subset baseline."""

    score: float
    null_mean: float | None = None
    null_std: float | None = None
    p_value: float | None = None
    subset_mean: float | None = None
    subset_std: float | None = None


@dataclass
class PairGeometry(StageResult):
    a: str
    b: str
    n_pairs: int
    metrics: dict[str, MetricScore] = field(default_factory=dict)
    svcca_single_component: float | None = None  # the single-component SVCCA, for published comparisons
    svcca_components: list[int] = field(default_factory=list)  # [k_a, k_b] kept by the grid's SVCCA
    svcca_details: dict[str, Any] = field(default_factory=dict)  # SVCCAResult.summary(): k, n, n_forced, rule
    skipped: str | None = None


@dataclass
class SpectrumRow(StageResult):
    matrix: str
    shape: list[int]
    effective_rank: float
    random_effective_rank: float
    tail_slope: float
    random_tail_slope: float
    distance_to_random: float


@dataclass
class SpectraResult(StageResult):
    rows: list[SpectrumRow]
    decoder_distance_main_pair: float | None
    plot: str


@dataclass
class ControlRow(StageResult):
    """A control of one layer pair: raw neurons or the matched features' token activations, with nulls."""

    a: str
    b: str
    kind: str  # "SAE features, token activations" or "MLP neurons (W_out rows)"
    n_pairs: int
    n_rows: int | None = None  # token rows the activations were read on
    mean_correlation: float | None = None
    metrics: dict[str, MetricScore] = field(default_factory=dict)
    skipped: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the random-model control's SAE and its training


@dataclass
class GeometryResult(StageResult):
    grid: dict[str, PairGeometry]
    heatmaps: dict[str, str]  # metric -> PNG
    subspaces: list[dict[str, Any]]  # SubspaceResult.to_dict() per concept
    spectra: SpectraResult
    controls: list[ControlRow] = field(default_factory=list)
    # the main pair's concepts selected by keyword per side and re-matched inside the concept
    keyword_subspaces: list[dict[str, Any]] = field(default_factory=list)  # SubspaceResult.to_dict() per concept


# -------------------------------------------------------------------------------------------- topology
@dataclass
class MapperSide(StageResult):
    layer: str
    html: str  # file name inside the topology stage directory
    statistics: dict[str, Any]  # MapperGraph.statistics()
    membership: str | None = None  # JSON file (in the stage directory): node id -> its features


@dataclass
class MapperResult(StageResult):
    a: MapperSide
    b: MapperSide
    comparison: dict[str, Any]  # compare_mapper_graphs(...)


@dataclass
class PersistenceRun(StageResult):
    engine: str
    n_points: int
    threshold: float | None
    exact: bool
    seconds: float


@dataclass
class PersistenceResult(StageResult):
    summaries: dict[str, dict[str, Any]]  # cloud -> PersistenceDiagrams.summary()
    distances: dict[str, dict[str, float]]  # "<kind>_H<dim>" -> comparison -> distance
    runs: dict[str, PersistenceRun]
    plot: str


@dataclass
class ProjectionResult(StageResult):
    png: str
    html: str
    method: str


@dataclass
class TopologyResult(StageResult):
    main_pair: str
    projection: ProjectionResult
    mapper: MapperResult | None = None
    persistence: PersistenceResult | None = None


# -------------------------------------------------------------------------------------- interpretation
@dataclass
class ExampleContext(StageResult):
    feature: int
    row: int
    doc: int
    position: int
    activation: float
    token_id: int
    token: str
    context: str


@dataclass
class TopPair(StageResult):
    feature_a: int
    feature_b: int
    correlation: float
    concept_a: str | None
    concept_b: str | None
    examples_a: list[ExampleContext]
    examples_b: list[ExampleContext]


@dataclass
class ConceptAgreement(StageResult):
    pairs_with_a_concept: int
    same_concept: int


@dataclass
class PairInterpretation(StageResult):
    n_pairs: int
    same_token: dict[str, Any] | None = None  # SameTokenScore.to_dict()
    top_pairs: list[TopPair] = field(default_factory=list)
    concept_agreement: ConceptAgreement | None = None


@dataclass
class InterpretationResult(StageResult):
    pairs: dict[str, PairInterpretation]
    main_pair: str


# -------------------------------------------------------------------------------------------- steering
@dataclass
class SteeringRow(StageResult):
    alpha: float
    success_rate_a: float
    success_rate_b: float
    success_rate_b_random_feature: float | None
    kl_a: float | None
    kl_b: float | None


@dataclass
class SteeringTaskResult(StageResult):
    name: str
    desired: str
    n_prompts: int
    feature_a: int
    feature_b: int
    partner_correlation: float
    alpha_units: str
    rows: list[SteeringRow]


@dataclass
class SteeringResult(StageResult):
    tasks: list[SteeringTaskResult] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)  # caption -> PNG
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None


# ------------------------------------------------------------------------------------------ crosscoder
@dataclass
class CrosscoderModelFit(StageResult):
    """How well the crosscoder reconstructs one model's activations: FVU and active latents per row writing to it."""

    layer: str
    d_model: int
    fvu: float | None
    l0: float | None


@dataclass
class CrosscoderClassAgreement(StageResult):
    """Crosscoder latents of one class against the two SAEs: mean best activation correlation with any feature
    of SAE A / B, and how many of them pick a matched pair (their best A and best B features are matched)."""

    latent_class: str
    n_latents: int
    mean_corr_a: float | None
    mean_corr_b: float | None
    n_on_matched_pair: int


@dataclass
class CrosscoderResult(StageResult):
    """The crosscoder of the main layer pair: fit, relative decoder norms, classes, block cosines, latent
    scaling and the agreement with post-hoc matching. ``skipped`` says why it did not run (switched off)."""

    skipped: str | None = None
    main_pair: str = ""
    width: int = 0
    k: int = 0
    n_tokens: int = 0
    rows: str = "tokens"  # "tokens", or "aligned units" (tokenizers differ: each unit at its last token)
    training_steps: int = 0
    fvu: float | None = None  # over both models' normalised activations together
    l0: float | None = None
    dead_fraction: float | None = None
    models: list[CrosscoderModelFit] = field(default_factory=list)  # [A, B]
    exclusive_threshold: float = 0.1
    shared_band: list[float] = field(default_factory=lambda: [0.3, 0.7])
    histogram_counts: list[int] = field(default_factory=list)  # relative decoder norm r over [0, 1]
    histogram_edges: list[float] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)  # shared / exclusive_a / exclusive_b / partial / dead
    block_cosines: dict[str, Any] | None = None  # BlockCosines.to_dict() of the shared latents
    block_cosines_skipped: str | None = None
    nu_threshold: float = 0.5
    n_flagged: int = 0  # exclusive-looking latents that latent scaling says the other model carries
    flagged_latents: list[int] = field(default_factory=list)  # the first of them
    agreement: list[CrosscoderClassAgreement] = field(default_factory=list)
    n_matched_pairs: int = 0  # pairs of the main matching
    n_pairs_explained: int = 0  # matched pairs that are some shared latent's best A and best B features
    feature_classes_a: dict[str, int] = field(default_factory=dict)  # SAE A features by their best latent's class
    feature_classes_b: dict[str, int] = field(default_factory=dict)
    histogram: str = ""  # PNG
    directory: str = ""  # the saved crosscoder (sae_lens format + crosscoder.json)
    feature_labels: str = ""  # per SAE feature: best latent, its correlation and class (JSON, for the explorer)


# ----------------------------------------------------------------------------------------------- splitting
@dataclass
class SplittingWidth(StageResult):
    """One SAE width at the splitting layer: its fit on the compared rows and its matching against B's SAE,
    scored like the grid (each metric beside its random-pairing null)."""

    width_multiple: int
    n_features: int
    fvu: float | None
    l0: float | None
    dead_fraction: float | None  # features that never fire on the compared rows
    n_pairs: int  # matched against B's main-pair SAE
    mean_correlation: float | None
    metrics: dict[str, MetricScore] = field(default_factory=dict)
    reused: bool = False  # the layer's own SAE (not retrained)
    skipped: str | None = None


@dataclass
class SplitStep(StageResult):
    """Split families between two consecutive widths (:meth:`SplitFamilies.summary` and its size distribution)."""

    narrow: int  # width multiples
    wide: int
    summary: dict[str, Any]
    size_distribution: dict[str, int]  # family size -> narrow features with that many children
    examples: list[dict[str, Any]] = field(default_factory=list)  # largest families: parent, children, cosines


@dataclass
class SplittingResult(StageResult):
    """Feature splitting at one layer across SAE widths: how features split and how each score moves with width."""

    skipped: str | None = None
    layer: str = ""  # the layer whose SAE width varies (model A of the main pair)
    against: str = ""  # the layer every width is matched against (model B of the main pair)
    widths: list[SplittingWidth] = field(default_factory=list)
    steps: list[SplitStep] = field(default_factory=list)
    min_correlation: float = 0.3
    min_cosine: float = 0.3
    figures: dict[str, str] = field(default_factory=dict)  # caption -> PNG


# ---------------------------------------------------------------------------------------------- report
@dataclass
class ReportResult(StageResult):
    html: str
    results_json: str
    sections: list[str]
    explorer: str | None = None  # the explorer page beside the report


STAGE_RESULTS: dict[str, type[StageResult]] = {
    "sources": SourcesResult,
    "extraction": ExtractionResult,
    "matching": MatchingResult,
    "geometry": GeometryResult,
    "topology": TopologyResult,
    "interpretation": InterpretationResult,
    "steering": SteeringResult,
    "crosscoder": CrosscoderResult,
    "splitting": SplittingResult,
    "report": ReportResult,
}
