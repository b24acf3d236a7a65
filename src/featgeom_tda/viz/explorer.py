"""The feature explorer: one self-contained HTML page of two models' SAE features side by side.

Two scatter panels (plain canvas; one point per feature at its 2-D projection, e.g. PCA of the decoder
rows), a hover card, and on click the selected feature's card beside its matched partner's: top-activating
examples with per-token highlighting, the activation histogram, the tokens its decoder direction promotes and
suppresses through the unembedding, its concept, partners with their correlations and its Mapper node.
Filters (minimum correlation, concept, dead/alive and, when a crosscoder ran, the class of each feature's
best-correlated crosscoder latent: shared, only A, only B, other), a search box (token or feature id), arrow
keys and Escape, and the selection in the URL hash (``#a=123``, ``#b=45``).

All data travels inside the page as zlib-compressed JSON in base64 (no network, no file beside it) and is
inflated in the browser with ``DecompressionStream('deflate')``; the page's script writes every data string
with ``textContent``, never as markup. The few strings in the page's own markup (title, model names) are
autoescaped by :mod:`featgeom_tda.viz.templating`. :func:`read_explorer_payload` reads the data back.

The payload (``format`` ``featgeom-explorer/1``) keeps the page small: strings in one table, coordinates as
integers 0..10000 over per-side bounds, example activations as integers -1000..1000 of the feature's largest
absolute example activation (``s``), output-token values to 4 significant digits, correlations to 4 decimals.
"""

from __future__ import annotations

import base64
import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Union

import numpy as np

from featgeom_tda.core._validation import check_positive_int, to_numpy
from featgeom_tda.core.types import FeatureMatching
from featgeom_tda.viz.templating import render_template

__all__ = [
    "ActivationExample",
    "ExplorerFeature",
    "FeaturesInput",
    "PairsInput",
    "FORMAT",
    "CROSSCODER_CLASSES",
    "explorer_payload",
    "render_explorer_html",
    "write_explorer",
    "read_explorer_payload",
]

FORMAT = "featgeom-explorer/1"
COORD_LEVELS = 10_000
VALUE_LEVELS = 1_000
_BLOB = re.compile(r'<script type="application/octet-stream" id="explorer-data">([A-Za-z0-9+/=]*)</script>')


@dataclass(frozen=True)
class ActivationExample:
    """One top-activating context: its tokens (as display strings) and the feature's activation on each."""

    tokens: tuple[str, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        tokens = tuple(self.tokens)
        values = tuple(float(v) for v in self.values)
        if not all(isinstance(t, str) for t in tokens):
            raise ValueError("example tokens must be strings (decoded token text)")
        if len(tokens) != len(values):
            raise ValueError(f"an example has {len(tokens)} tokens but {len(values)} activation values; expected one per token")
        if not all(math.isfinite(v) for v in values):
            raise ValueError("example activation values contain NaN or inf; expected finite numbers")
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "values", values)


@dataclass(frozen=True)
class ExplorerFeature:
    """What the explorer shows of one feature (every field optional).

    Attributes:
        examples: top-activating examples, strongest first: ``ActivationExample`` or ``(tokens, values)`` pairs.
        histogram: bin counts of the feature's activations (non-negative ints, at most 256 bins).
        histogram_range: ``(low, high)`` of the histogram's bins, shown under the bars.
        promoted, suppressed: ``(token, value)`` pairs, the decoder direction through the unembedding
            (largest and most negative logits), in the order given.
        concept: a concept label, or None.
        dead: True when the feature never fired on the corpus.
        mapper_node: the id of the Mapper node holding the feature, or the ids of the nodes (a feature sits in
            several when the cover's intervals overlap), or None.
        crosscoder_class: the class of the crosscoder latent that best correlates with the feature ("shared",
            "exclusive_a", "exclusive_b", "partial", or "none" when the feature never fires), or None (no crosscoder).
        crosscoder_latent, crosscoder_correlation: that latent and its activation correlation with the feature.
    """

    examples: Sequence[Union[ActivationExample, tuple[Sequence[str], Sequence[float]]]] = ()
    histogram: Sequence[int] = ()
    histogram_range: tuple[float, float] | None = None
    promoted: Sequence[tuple[str, float]] = ()
    suppressed: Sequence[tuple[str, float]] = ()
    concept: str | None = None
    dead: bool = False
    mapper_node: str | Sequence[str] | None = None
    crosscoder_class: str | None = None
    crosscoder_latent: int | None = None
    crosscoder_correlation: float | None = None

    def __post_init__(self) -> None:
        examples = tuple(e if isinstance(e, ActivationExample) else ActivationExample(*e) for e in self.examples)
        hist = tuple(int(c) for c in self.histogram)
        if any(c < 0 for c in hist) or len(hist) > 256:
            raise ValueError(f"histogram must be at most 256 non-negative bin counts; got {len(hist)} bins, min {min(hist, default=0)}")
        hrange = self.histogram_range
        if hrange is not None:
            hrange = tuple(float(v) for v in hrange)
            if len(hrange) != 2 or not all(math.isfinite(v) for v in hrange):
                raise ValueError(f"histogram_range must be two finite numbers (low, high); got {self.histogram_range!r}")
        object.__setattr__(self, "examples", examples)
        object.__setattr__(self, "histogram", hist)
        object.__setattr__(self, "histogram_range", hrange)
        for name in ("promoted", "suppressed"):
            object.__setattr__(self, name, _token_values(getattr(self, name), name))
        if self.concept is not None and not isinstance(self.concept, str):
            object.__setattr__(self, "concept", str(self.concept))
        node = self.mapper_node
        if node is not None and not isinstance(node, str):
            nodes = tuple(str(n) for n in node) if isinstance(node, Iterable) else (str(node),)
            object.__setattr__(self, "mapper_node", nodes[0] if len(nodes) == 1 else (nodes or None))
        _check_crosscoder(self)
        object.__setattr__(self, "dead", bool(self.dead))

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> "ExplorerFeature":
        """From a dict with the field names; unknown keys are an error."""
        unknown = set(m) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown explorer feature keys {sorted(unknown)}; expected some of {[f.name for f in fields(cls)]}")
        return cls(**m)


#: per feature: a sequence aligned with the points' rows, or a mapping feature id -> feature (missing: no card)
FeaturesInput = Union[Sequence[Union[ExplorerFeature, Mapping[str, Any], None]], Mapping[int, Union[ExplorerFeature, Mapping[str, Any]]], None]
#: pairs (feature id of A, feature id of B, correlation): a FeatureMatching, an (n, 3) array or an iterable of triples
PairsInput = Union[FeatureMatching, np.ndarray, Iterable[tuple[int, int, float]]]


def _token_values(items: Iterable[Any], name: str) -> tuple[tuple[str, float], ...]:
    out = []
    for item in items:
        token, value = item
        if not isinstance(token, str):
            raise ValueError(f"{name} tokens must be strings; got {type(token).__name__}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} values must be finite; got {value} for token {token!r}")
        out.append((token, value))
    return tuple(out)


CROSSCODER_CLASSES = ("shared", "exclusive_a", "exclusive_b", "partial", "none")
CROSSCODER_RULE = "each feature takes the class of the crosscoder latent whose activation correlates best with it"


def _check_crosscoder(f: "ExplorerFeature") -> None:
    cls, latent, corr = f.crosscoder_class, f.crosscoder_latent, f.crosscoder_correlation
    if cls is not None and cls not in CROSSCODER_CLASSES:
        raise ValueError(f"crosscoder_class must be one of {', '.join(CROSSCODER_CLASSES)} or None; got {cls!r}")
    if latent is not None:
        if isinstance(latent, bool) or int(latent) != latent or latent < 0:
            raise ValueError(f"crosscoder_latent must be a non-negative integer or None; got {latent!r}")
        object.__setattr__(f, "crosscoder_latent", int(latent))
    if corr is not None:
        corr = float(corr)
        if not math.isfinite(corr):
            raise ValueError(f"crosscoder_correlation must be finite or None; got {corr}")
        object.__setattr__(f, "crosscoder_correlation", corr)


def _node(f: ExplorerFeature | None, nodes: "_Table") -> Any:
    if f is None or f.mapper_node is None:
        return -1
    return nodes(f.mapper_node) if isinstance(f.mapper_node, str) else nodes.many(f.mapper_node)


def _sig(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


class _Table:
    """A string table: each distinct string once, referred to by index (``table.items``)."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}

    def __call__(self, s: str) -> int:
        return self._index.setdefault(s, len(self._index))

    def many(self, strings: Iterable[str]) -> list[int]:
        index = self._index
        return [index.setdefault(t, len(index)) for t in strings]

    @property
    def items(self) -> list[str]:
        return list(self._index)


def _as_feature(x: Any, where: str) -> ExplorerFeature | None:
    if x is None or isinstance(x, ExplorerFeature):
        return x
    if isinstance(x, Mapping):
        return ExplorerFeature.from_mapping(x)
    raise ValueError(f"{where} must be an ExplorerFeature, a mapping of its fields or None; got {type(x).__name__}")


def _features_by_row(features: FeaturesInput, ids: np.ndarray, side: str) -> list[ExplorerFeature | None]:
    n = ids.shape[0]
    if features is None:
        return [None] * n
    if isinstance(features, Mapping):
        row_of = {int(i): r for r, i in enumerate(ids)}
        out: list[ExplorerFeature | None] = [None] * n
        for key, value in features.items():
            if int(key) not in row_of:
                raise ValueError(f"features_{side} has feature id {key}, which is not among ids_{side} ({n} features)")
            out[row_of[int(key)]] = _as_feature(value, f"features_{side}[{key}]")
        return out
    items = list(features)
    if len(items) != n:
        raise ValueError(f"features_{side} has {len(items)} entries but points_{side} has {n} rows; expected one per row (or a mapping id -> feature)")
    return [_as_feature(x, f"features_{side}[{r}]") for r, x in enumerate(items)]


def _ids(ids: Any, n: int, side: str) -> np.ndarray:
    if ids is None:
        return np.arange(n, dtype=np.int64)
    arr = to_numpy(ids, f"ids_{side}").ravel()
    if arr.shape[0] != n:
        raise ValueError(f"ids_{side} has {arr.shape[0]} ids but points_{side} has {n} rows; expected one per row")
    if not np.issubdtype(arr.dtype, np.integer) or (arr.size and arr.min() < 0):
        raise ValueError(f"ids_{side} must be non-negative integers; got dtype {arr.dtype}")
    if np.unique(arr).size != n:
        raise ValueError(f"ids_{side} has repeated feature ids; expected each once")
    return arr.astype(np.int64)


def _points(points: Any, side: str) -> np.ndarray:
    p = to_numpy(points, f"points_{side}", dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points_{side} must have shape (n_features, 2); got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"points_{side} contains NaN or inf; expected finite 2-D coordinates")
    return p


def _pairs(pairs: PairsInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(pairs, FeatureMatching):
        return pairs.index_a, pairs.index_b, pairs.correlation.astype(np.float64)
    arr = np.asarray(list(pairs) if not isinstance(pairs, np.ndarray) else pairs, dtype=np.float64)
    if arr.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"pairs must be (feature a, feature b, correlation) triples, shape (n, 3); got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("pairs contain NaN or inf; expected finite ids and correlations")
    a, b = arr[:, 0], arr[:, 1]
    if (a != np.round(a)).any() or (b != np.round(b)).any():
        raise ValueError("pair feature ids must be integers")
    return a.astype(np.int64), b.astype(np.int64), arr[:, 2]


def _trim(ex: ActivationExample, width: int) -> tuple[tuple[str, ...], tuple[float, ...], int]:
    """At most ``width`` tokens around the peak (three quarters of them before it); bit 1: cut on the left, 2: right."""
    n = len(ex.tokens)
    if n <= width:
        return ex.tokens, ex.values, 0
    peak = int(np.argmax(np.abs(ex.values)))
    start = max(0, min(n - width, peak - (3 * width) // 4))
    stop = start + width
    return ex.tokens[start:stop], ex.values[start:stop], (1 if start > 0 else 0) | (2 if stop < n else 0)


def _card(f: ExplorerFeature, strings: _Table, max_examples: int, max_example_tokens: int, max_output_tokens: int) -> dict[str, Any] | None:
    card: dict[str, Any] = {}
    examples = [_trim(e, max_example_tokens) for e in f.examples[:max_examples] if e.tokens]
    if examples:
        values = np.concatenate([np.asarray(vals, dtype=np.float64) for _, vals, _ in examples])
        scale = float(np.abs(values).max())
        card["s"] = _sig(scale, 6)
        q = np.rint(values * (VALUE_LEVELS / (scale if scale > 0 else 1.0))).astype(np.int64).tolist()
        card["e"], start = [], 0
        for toks, _, cut in examples:
            card["e"].append([strings.many(toks), q[start : start + len(toks)], cut])
            start += len(toks)
    if f.histogram:
        card["h"] = list(f.histogram)
        if f.histogram_range is not None:
            card["hr"] = [_sig(v, 6) for v in f.histogram_range]
    if f.promoted:
        card["p"] = [[strings(t), _sig(v)] for t, v in f.promoted[:max_output_tokens]]
    if f.suppressed:
        card["n"] = [[strings(t), _sig(v)] for t, v in f.suppressed[:max_output_tokens]]
    return card or None


def _side(points: np.ndarray, ids: np.ndarray, feats: list[ExplorerFeature | None], strings: _Table, concepts: _Table,
          nodes: _Table, limits: tuple[int, int, int]) -> dict[str, Any]:
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    q = np.rint((points - lo) / span * COORD_LEVELS).astype(np.int64)
    out: dict[str, Any] = {
        "ids": ids.tolist(),
        "xy": q.ravel().tolist(),
        "bounds": [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])],
        "dead": [int(f.dead) if f else 0 for f in feats],
        "concept": [concepts(f.concept) if f and f.concept is not None else -1 for f in feats],
        "node": [_node(f, nodes) for f in feats],
        "cards": [_card(f, strings, *limits) if f else None for f in feats],
    }
    if any(f is not None and f.crosscoder_class is not None for f in feats):
        out["xc"] = [CROSSCODER_CLASSES.index(f.crosscoder_class) if f and f.crosscoder_class is not None else -1
                     for f in feats]
        out["xcl"] = [f.crosscoder_latent if f and f.crosscoder_latent is not None else -1 for f in feats]
        out["xcr"] = [round(f.crosscoder_correlation, 4) if f and f.crosscoder_correlation is not None else None
                      for f in feats]
    return out


def explorer_payload(
    *,
    model_a: str,
    model_b: str,
    points_a: Any,
    points_b: Any,
    features_a: FeaturesInput = None,
    features_b: FeaturesInput = None,
    pairs: PairsInput = (),
    ids_a: Any = None,
    ids_b: Any = None,
    title: str = "Feature explorer",
    max_examples: int = 10,
    max_example_tokens: int = 48,
    max_output_tokens: int = 10,
    crosscoder_rule: str = CROSSCODER_RULE,
) -> dict[str, Any]:
    """The page's data as a JSON-ready dict (see the module docstring for its encoding)."""
    limits = (check_positive_int(max_examples, "max_examples"), check_positive_int(max_example_tokens, "max_example_tokens"),
              check_positive_int(max_output_tokens, "max_output_tokens"))
    pa, pb = _points(points_a, "a"), _points(points_b, "b")
    ia, ib = _ids(ids_a, pa.shape[0], "a"), _ids(ids_b, pb.shape[0], "b")
    fa, fb = _features_by_row(features_a, ia, "a"), _features_by_row(features_b, ib, "b")
    a, b, r = _pairs(pairs)
    for side, got, have in (("a", a, ia), ("b", b, ib)):
        missing = np.setdiff1d(got, have)
        if missing.size:
            raise ValueError(f"pairs name {missing.size} feature id(s) of model {side} that are not among its points, e.g. {int(missing[0])}")
    strings, concepts, nodes = _Table(), _Table(), _Table()
    payload: dict[str, Any] = {
        "format": FORMAT,
        "title": str(title),
        "models": {"a": str(model_a), "b": str(model_b)},
        "coord_levels": COORD_LEVELS,
        "value_levels": VALUE_LEVELS,
        "sides": {
            "a": _side(pa, ia, fa, strings, concepts, nodes, limits),
            "b": _side(pb, ib, fb, strings, concepts, nodes, limits),
        },
        "pairs": {"a": a.tolist(), "b": b.tolist(), "r": [round(float(v), 4) for v in r]},
    }
    payload["strings"], payload["concepts"], payload["nodes"] = strings.items, concepts.items, nodes.items
    if any("xc" in side for side in payload["sides"].values()):
        payload["crosscoder"] = {"classes": list(CROSSCODER_CLASSES), "rule": str(crosscoder_rule)}
    return payload


def _encode(payload: dict[str, Any], compresslevel: int) -> str:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return base64.b64encode(zlib.compress(text.encode("utf-8"), compresslevel)).decode("ascii")


def render_explorer_html(payload: dict[str, Any], *, compresslevel: int = 6) -> str:
    """The page for ``payload`` (from :func:`explorer_payload`) as a string."""
    from markupsafe import Markup

    blob = _encode(payload, compresslevel)
    sides = payload["sides"]
    return render_template(
        "explorer.html.j2", title=payload["title"], model_a=payload["models"]["a"], model_b=payload["models"]["b"],
        n_a=len(sides["a"]["ids"]), n_b=len(sides["b"]["ids"]), n_pairs=len(payload["pairs"]["r"]),
        blob=Markup(blob),  # base64 alphabet only: inert in a script element
    )


def write_explorer(
    path: str | Path,
    *,
    model_a: str,
    model_b: str,
    points_a: Any,
    points_b: Any,
    features_a: FeaturesInput = None,
    features_b: FeaturesInput = None,
    pairs: PairsInput = (),
    ids_a: Any = None,
    ids_b: Any = None,
    title: str = "Feature explorer",
    max_examples: int = 10,
    max_example_tokens: int = 48,
    max_output_tokens: int = 10,
    crosscoder_rule: str = CROSSCODER_RULE,
    compresslevel: int = 6,
    max_bytes: int | None = None,
) -> Path:
    """Write the self-contained explorer page of two models' features to ``path`` (e.g. ``explorer.html``).

    Args:
        model_a, model_b: display names of the two models (left and right panel).
        points_a, points_b: (n_a, 2) and (n_b, 2) float coordinates, one row per feature (e.g. PCA of the decoder rows).
        features_a, features_b: per feature an :class:`ExplorerFeature` (or a dict of its fields), as a
            sequence aligned with the rows or a mapping feature id -> feature (features left out get no card).
        pairs: matched pairs (feature id of A, feature id of B, correlation): a FeatureMatching, an (n, 3)
            array or triples. A feature may have several partners.
        ids_a, ids_b: the feature id of each row (default 0..n-1); pairs, mappings, search and the URL hash use them.
        title: the page title.
        max_examples, max_example_tokens, max_output_tokens: what is kept per feature (examples longer than
            ``max_example_tokens`` are cut around their peak, shown with an ellipsis).
        crosscoder_rule: how the features' crosscoder classes were assigned, shown beside the filter.
        compresslevel: zlib level of the embedded data.
        max_bytes: raise ValueError instead of writing a page larger than this.

    Returns the path written.
    """
    payload = explorer_payload(
        model_a=model_a, model_b=model_b, points_a=points_a, points_b=points_b, features_a=features_a,
        features_b=features_b, pairs=pairs, ids_a=ids_a, ids_b=ids_b, title=title, max_examples=max_examples,
        max_example_tokens=max_example_tokens, max_output_tokens=max_output_tokens, crosscoder_rule=crosscoder_rule,
    )
    data = render_explorer_html(payload, compresslevel=compresslevel).encode("utf-8")
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"the explorer page would be {len(data):,} bytes, over max_bytes={max_bytes:,}; "
                         "lower max_examples / max_example_tokens or pass fewer features")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read_explorer_payload(page: str | Path) -> dict[str, Any]:
    """The data embedded in an explorer page (a path, or the page's text), inflated and parsed."""
    text = page if isinstance(page, str) and page.lstrip().startswith("<") else Path(page).read_text(encoding="utf-8")
    match = _BLOB.search(text)
    if match is None:
        raise ValueError("no explorer data found; expected a page written by write_explorer")
    return json.loads(zlib.decompress(base64.b64decode(match.group(1))).decode("utf-8"))
