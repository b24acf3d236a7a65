"""The comparison report of a recipe run: every stage's typed result as one HTML page, results.json and CSVs.

The report reads the dataclasses of :mod:`featgeom_tda.results` by attribute; it never imports the pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from featgeom_tda.analyses.geometry.baselines import METRIC_LABELS
from featgeom_tda.report.html import Figure, Section, Table, write_report
from featgeom_tda.report.tables import write_results_json
from featgeom_tda.results import (
    SCHEMA_VERSION,
    ExtractionResult,
    GeometryResult,
    InterpretationResult,
    MatchingResult,
    CrosscoderResult,
    ReportResult,
    SourcesResult,
    SplittingResult,
    StageResult,
    SteeringResult,
    TopologyResult,
)

__all__ = ["SECTION_IDS", "OPTIONAL_SECTION_IDS", "write_comparison_report", "build_sections"]

SECTION_IDS = (
    "models", "matching", "similarity", "controls", "pairs", "subspaces", "spectra", "mapper", "persistence", "projection",
    "steering", "reproducibility",
)
# after "pairs" (crosscoder) and "similarity" (splitting), only when their stage ran (the recipe switched it on)
OPTIONAL_SECTION_IDS = ("crosscoder", "splitting")


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def write_comparison_report(
    out_dir: str | Path, *, recipe: dict[str, Any], results: Mapping[str, StageResult],
    stage_seconds: Mapping[str, float] | None = None, explorer: str | None = None,
) -> ReportResult:
    """Write ``report.html``, ``results.json`` and the CSV tables of ``results`` (stage -> typed result);
    ``explorer`` names the explorer page beside the report, linked from its first section."""
    out = Path(out_dir)
    results = {k: v for k, v in results.items() if k != "report"}
    sections = build_sections(results, recipe, report_dir=out, stage_seconds=dict(stage_seconds or {}))
    if explorer is not None:
        sections[0].links.append(("Feature explorer: both layers' features side by side, click to compare (HTML)",
                                  explorer))
    names = [m["name"] for m in recipe["models"]]
    title = f"featgeom report: {names[0]} vs {names[1]}" if len(names) == 2 else f"featgeom report: layers of {names[0]}"
    ext = results.get("extraction")
    n_tokens = ext.n_tokens if isinstance(ext, ExtractionResult) else "?"
    html = write_report(
        out, title, sections,
        subtitle=f"recipe {recipe['name']} · seed {recipe['seed']} · {n_tokens} tokens", summary=_summary_cards(results),
    )
    payload = {"schema_version": SCHEMA_VERSION, "recipe": recipe,
               "stages": {name: r.to_dict() for name, r in results.items()}}
    json_path = write_results_json(out / "results.json", payload)
    return ReportResult(html=str(html), results_json=str(json_path), sections=[s.id for s in sections],
                        explorer=str(out / explorer) if explorer else None)


def _summary_cards(results: Mapping[str, StageResult]) -> list[tuple[str, Any]]:
    cards: list[tuple[str, Any]] = []
    match, geo, interp = results.get("matching"), results.get("geometry"), results.get("interpretation")
    if not isinstance(match, MatchingResult):
        return cards
    main = match.main_pair
    cards.append(("matched pairs (main layers)", match.pairs[main].n_pairs))
    cards.append(("mean pair correlation", match.pairs[main].mean_correlation))
    if isinstance(geo, GeometryResult) and main in geo.grid:
        for key in ("svcca", "cka", "rsa"):
            s = geo.grid[main].metrics.get(key)
            if s is not None:
                cards.append((f"{_label(key)} (null {s.null_mean:.2f})", s.score))
    if isinstance(interp, InterpretationResult) and main in interp.pairs and interp.pairs[main].same_token:
        st = interp.pairs[main].same_token
        cards.append((f"same-token score (baseline {st['baseline_mean']:.2f})", st["score"]))
    return cards


def _missing(section_id: str, title: str, stage: str) -> Section:
    return Section(section_id, title, notes=[f"The {stage} stage has not run."])


def build_sections(
    results: Mapping[str, StageResult], recipe: dict[str, Any], *, report_dir: Path,
    stage_seconds: dict[str, float] | None = None,
) -> list[Section]:
    """Report sections, in reading order, from the stages' typed results."""
    from featgeom_tda.report import sections as sec

    src, ext = results.get("sources"), results.get("extraction")
    match, geo = results.get("matching"), results.get("geometry")
    topo, interp, steer = results.get("topology"), results.get("interpretation"), results.get("steering")
    checks = [
        (isinstance(src, SourcesResult) and isinstance(ext, ExtractionResult), "models", "Models and SAEs compared", "sources",
         lambda: sec.models_section(src, ext)),
        (isinstance(match, MatchingResult), "matching", "Feature matching", "matching", lambda: sec.matching_section(match)),
        (isinstance(geo, GeometryResult), "similarity", "Similarity of the paired decoder spaces", "geometry",
         lambda: sec.similarity_section(geo)),
        (isinstance(geo, GeometryResult), "controls", "Controls", "geometry", lambda: sec.controls_section(geo)),
        (isinstance(interp, InterpretationResult), "pairs", "Top matched pairs", "interpretation", lambda: sec.pairs_section(interp)),
        (isinstance(geo, GeometryResult), "subspaces", "Semantic subspaces", "geometry", lambda: sec.subspaces_section(geo)),
        (isinstance(geo, GeometryResult), "spectra", "SVD spectra", "geometry", lambda: sec.spectra_section(geo)),
        (isinstance(topo, TopologyResult), "mapper", "Mapper graphs", "topology", lambda: sec.mapper_section(topo)),
        (isinstance(topo, TopologyResult), "persistence", "Persistent homology", "topology", lambda: sec.persistence_section(topo)),
        (isinstance(topo, TopologyResult), "projection", "Projections", "topology", lambda: sec.projection_section(topo)),
        (isinstance(steer, SteeringResult), "steering", "Steering", "steering", lambda: sec.steering_section(steer)),
    ]
    sections = [build() if ok else _missing(sid, title, stage) for ok, sid, title, stage, build in checks]
    cc = results.get("crosscoder")
    enabled = bool((recipe.get("crosscoder") or {}).get("enabled"))
    if isinstance(cc, CrosscoderResult) and (cc.skipped is None or enabled):  # absent when switched off
        from featgeom_tda.report.crosscoder_section import crosscoder_section

        at = next(i for i, s in enumerate(sections) if s.id == "pairs") + 1
        sections.insert(at, crosscoder_section(cc))
    sp = results.get("splitting")
    if isinstance(sp, SplittingResult) and (sp.skipped is None or bool((recipe.get("splitting") or {}).get("enabled"))):
        from featgeom_tda.report.splitting_section import splitting_section

        at = next(i for i, s in enumerate(sections) if s.id == "controls") + 1
        sections.insert(at, splitting_section(sp))
    sections.append(_reproducibility_section(recipe, stage_seconds or {}))
    return sections


def _reproducibility_section(recipe: dict[str, Any], stage_seconds: dict[str, float]) -> Section:
    import yaml

    rows = [[k, v] for k, v in stage_seconds.items()]
    return Section(
        "reproducibility",
        "Recipe and run",
        how_to_read="rerun the recipe below with `featgeom run` to reproduce every number (seeded).",
        tables=[Table("Stage times (seconds; 0 when reused from the cache)", ["stage", "seconds"], rows)],
        code=[("Recipe (YAML; click to show)", yaml.safe_dump(recipe, sort_keys=False))],
    )
