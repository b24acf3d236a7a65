"""The synthetic self-check repeated over shared fractions and SAE widths, as rows and a markdown table."""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

from featgeom_tda.core._validation import check_fraction, check_positive_int
from featgeom_tda.pipeline.selfcheck import (
    GEOMETRY_METRICS,
    Architecture,
    Scorecard,
    _fmt,
    _fmt_p,
    _markdown_table,
    check_pipeline,
)
from featgeom_tda.sources.synthetic import make_synthetic_pair

__all__ = ["scorecard_sweep", "sweep_markdown", "run_synthetic_check"]

logger = logging.getLogger(__name__)


def _sweep_row(kind: str, fraction: float, width: float, card: Scorecard) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sweep": kind,
        "shared_fraction": float(fraction),
        "width_multiple": float(width),
        "n_shared": card.counts["n_shared"],
        "mcc_a": card.recovery_a.mcc,
        "mcc_b": card.recovery_b.mcc,
        "dead_a": card.recovery_a.dead_fraction,
        "dead_b": card.recovery_b.dead_fraction,
        "n_pairs": card.counts["n_pairs"],
        "n_correct": card.counts["n_correct"],
        "precision": card.precision,
        "precision_same_feature": card.precision_same_feature,
        "recall": card.recall,
        "recall_recovered": card.recall_recovered,
        "private_fp_rate": card.private_fp_rate,
    }
    for subspace, by_metric in card.geometry.items():
        for metric, r in by_metric.items():
            row[f"{subspace}_{metric}"] = r["score"]
            row[f"{subspace}_{metric}_null"] = r["null_mean"]
            row[f"{subspace}_{metric}_p"] = r["p_value"]
            row[f"{subspace}_{metric}_z"] = r["z_score"]
            row[f"{subspace}_rows"] = r["n_rows"]
    return row


def scorecard_sweep(
    *,
    shared_fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    width_multiples: Sequence[float] = (1.0, 2.0, 4.0),
    width_shared_fraction: float = 0.75,
    n_features: int = 40,
    d_a: int = 24,
    d_b: int = 20,
    n_samples: int = 20_000,
    seed: int = 0,
    pair_options: dict[str, Any] | None = None,
    progress: bool = False,
    **pipeline_options: Any,
) -> list[dict[str, Any]]:
    """Scorecards over the shared fraction (width 1x) and over the SAE width (at ``width_shared_fraction``).

    Each model has ``n_features`` true features, ``round(fraction * n_features)`` of them shared.

    Returns:
        One flat dict per run (``sweep`` is "shared_fraction" or "width"); see :func:`sweep_markdown`.
    """
    n_features = check_positive_int(n_features, "n_features")
    fractions = [check_fraction(f, "shared_fractions", open_low=False) for f in shared_fractions]
    widths = list(width_multiples)
    width_shared_fraction = check_fraction(width_shared_fraction, "width_shared_fraction", open_low=False)
    pair_options = dict(pair_options or {})
    unknown = set(pair_options) & {"n_shared", "n_private_a", "n_private_b", "d_a", "d_b", "n_samples", "seed"}
    if unknown:
        raise ValueError(f"pair_options must not set {sorted(unknown)}; they are arguments of scorecard_sweep")
    cache: dict[tuple[float, float], Scorecard] = {}

    def run(fraction: float, width: float) -> Scorecard:
        key = (fraction, float(width))
        if key not in cache:
            n_shared = int(round(fraction * n_features))
            pair = make_synthetic_pair(
                n_shared=n_shared, n_private_a=n_features - n_shared, n_private_b=n_features - n_shared,
                d_a=d_a, d_b=d_b, n_samples=n_samples, seed=seed, **pair_options,
            )  # fmt: skip
            logger.info("synthetic sweep: shared fraction %.2f, width %.1fx", fraction, width)
            cache[key] = check_pipeline(pair, width_multiple=width, seed=seed, progress=progress, **pipeline_options)
        return cache[key]

    from tqdm.auto import tqdm

    jobs = [("shared_fraction", f, 1.0) for f in fractions] + [("width", width_shared_fraction, w) for w in widths]
    return [_sweep_row(kind, f, w, run(f, w)) for kind, f, w in tqdm(jobs, desc="sweep", disable=not progress)]


def sweep_markdown(rows: Sequence[dict[str, Any]], *, metrics: Sequence[str] = GEOMETRY_METRICS) -> str:
    """Markdown tables of :func:`scorecard_sweep` rows, one per sweep kind.

    Similarity cells read ``score (null mean, p)``.
    """

    def cell(row: dict[str, Any], subspace: str, metric: str) -> str:
        score = row.get(f"{subspace}_{metric}")
        if score is None or not math.isfinite(float(score)):
            return "n/a"
        null, p = row[f"{subspace}_{metric}_null"], row[f"{subspace}_{metric}_p"]
        return f"{_fmt(score, 2)} ({_fmt(null, 2)}, p={_fmt_p(p)})"

    header = ["shared", "width", "MCC A/B", "pairs (correct)", "precision", "precision (same feature)", "recall",
              "private FP"]  # fmt: skip
    header += [f"shared {m}" for m in metrics] + [f"private {m}" for m in metrics]
    out = []
    for kind, title in (("shared_fraction", "Shared fraction sweep (SAE width 1x)"), ("width", "SAE width sweep")):
        sel = [r for r in rows if r.get("sweep") == kind]
        if not sel:
            continue
        body = []
        for r in sel:
            body.append(
                [
                    f"{100 * r['shared_fraction']:.0f}%",
                    f"{r['width_multiple']:g}x",
                    f"{_fmt(r['mcc_a'], 2)}/{_fmt(r['mcc_b'], 2)}",
                    f"{r['n_pairs']} ({r['n_correct']})",
                    _fmt(r["precision"], 2),
                    _fmt(r["precision_same_feature"], 2),
                    _fmt(r["recall"], 2),
                    _fmt(r["private_fp_rate"], 2),
                ]
                + [cell(r, "shared", m) for m in metrics]
                + [cell(r, "private", m) for m in metrics]
            )
        out.append(f"**{title}**\n\n" + _markdown_table(header, body))
    return "\n\n".join(out)


def run_synthetic_check(
    *,
    n_features: int = 40,
    shared_fraction: float = 0.75,
    d_a: int = 24,
    d_b: int = 20,
    n_samples: int = 20_000,
    width_multiple: float = 1.0,
    architecture: Architecture = "topk",
    threshold: float = 0.5,
    n_permutations: int = 200,
    steps: int = 1000,
    seed: int = 0,
    sweep: bool = True,
    shared_fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    width_multiples: Sequence[float] = (1.0, 2.0, 4.0),
    progress: bool = False,
    on_card: Any = None,
) -> str:
    """One scorecard (and optionally the sweeps) as markdown: the synthetic self-check of the package.

    ``on_card``, if given, is called with the main :class:`Scorecard` (e.g. to check it against thresholds).
    """
    n_features = check_positive_int(n_features, "n_features")
    shared_fraction = check_fraction(shared_fraction, "shared_fraction", open_low=False)
    n_shared = int(round(shared_fraction * n_features))
    pair = make_synthetic_pair(
        n_shared=n_shared, n_private_a=n_features - n_shared, n_private_b=n_features - n_shared,
        d_a=d_a, d_b=d_b, n_samples=n_samples, seed=seed,
    )  # fmt: skip
    options = dict(architecture=architecture, threshold=threshold, n_permutations=n_permutations, steps=steps)
    card = check_pipeline(pair, width_multiple=width_multiple, seed=seed, progress=progress, **options)
    if on_card is not None:
        on_card(card)
    text = [
        f"## Synthetic check: {n_shared} shared + {n_features - n_shared} private features per model, "
        f"d_a={d_a}, d_b={d_b}, {n_samples} samples, {architecture} SAE at {width_multiple:g}x",
        "",
        card.to_markdown(),
    ]
    if sweep:
        rows = scorecard_sweep(
            shared_fractions=shared_fractions, width_multiples=width_multiples, width_shared_fraction=shared_fraction,
            n_features=n_features, d_a=d_a, d_b=d_b, n_samples=n_samples, seed=seed, progress=progress, **options,
        )  # fmt: skip
        text += ["", "## Sweeps", "", sweep_markdown(rows)]
    return "\n".join(text)
