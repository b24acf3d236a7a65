"""A recipe run stage by stage, each stage cached on disk under the output directory.

Stages, in order::

    sources -> extraction -> matching -> geometry -> topology -> interpretation -> steering -> report

Each stage writes ``OUT/<stage>/stage.json`` with a fingerprint of its inputs (the recipe sections it reads and
the results of the stages before it) and its results. A stage whose fingerprint is unchanged is skipped; a
stage named in ``force`` reruns, and the stages after it rerun only if its results changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from featgeom_tda.pipeline.recipe import Recipe, load_recipe
from featgeom_tda.core.types import json_default as _json_default

__all__ = ["RECIPE_COPY", "STAGES", "Pipeline", "StageRecord", "run_recipe", "run_recipe_file"]

log = logging.getLogger(__name__)

RECIPE_COPY = "recipe.yaml"  # the recipe of a run, kept in its output directory

STAGES = ("sources", "extraction", "matching", "geometry", "topology", "interpretation", "steering", "report")

# recipe sections each stage reads (besides the results of the stages before it)
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "sources": ("models", "seed", "cache_dir", "dataset", "embedded_size"),
    "extraction": ("dataset", "token_budget", "batch_size", "seed"),
    "matching": ("matching",),
    "geometry": ("geometry", "seed"),
    "topology": ("topology", "seed"),
    "interpretation": ("interpretation", "seed"),
    "steering": ("steering", "seed"),
    "report": (),
}


@dataclass
class StageRecord:
    """What one stage did: its fingerprint, results (JSON), time, and whether it came from the cache."""

    name: str
    fingerprint: str
    results: dict[str, Any]
    seconds: float
    cached: bool

    def digest(self) -> str:
        return _hash(self.results)


@dataclass
class Pipeline:
    """Runs a :class:`Recipe`'s stages with caching. ``context`` carries in-memory objects between stages."""

    recipe: Recipe
    out_dir: Path
    force: set[str] = field(default_factory=set)
    stage_functions: dict[str, Callable[["Pipeline"], dict[str, Any]]] | None = None
    records: dict[str, StageRecord] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        unknown = set(self.force) - set(STAGES)
        if unknown:
            raise ValueError(f"force names unknown stage {sorted(unknown)[0]!r}; stages are {', '.join(STAGES)}")
        if self.stage_functions is None:
            from featgeom_tda.pipeline.stages import legacy as stages

            self.stage_functions = stages.STAGE_FUNCTIONS

    def stage_dir(self, name: str) -> Path:
        d = self.out_dir / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def results(self, name: str) -> dict[str, Any]:
        """Results of an earlier stage of this run (from the cache or freshly computed)."""
        return self.records[name].results

    def fingerprint(self, name: str) -> str:
        recipe = self.recipe.to_dict()
        sections = {k: recipe[k] for k in STAGE_INPUTS[name]}
        upstream = {s: self.records[s].digest() for s in STAGES[: STAGES.index(name)] if s in self.records}
        from featgeom_tda import __version__

        if name == "sources":
            from featgeom_tda.pipeline.stages.legacy import source_options

            sections["source_options"] = source_options(self.recipe)
        return _hash({"stage": name, "sections": sections, "upstream": upstream, "version": __version__})

    def run(self, *, stop_after: str | None = None) -> dict[str, StageRecord]:
        """Run every stage in order (or up to ``stop_after``), skipping the cached ones."""
        from tqdm.auto import tqdm

        import yaml

        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / RECIPE_COPY).write_text(yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
        last = STAGES.index(stop_after) if stop_after else len(STAGES) - 1
        bar = tqdm(STAGES[: last + 1], desc="pipeline", unit="stage", disable=None)
        for name in bar:
            bar.set_postfix_str(name)
            self.records[name] = self._run_stage(name)
        return self.records

    def _run_stage(self, name: str) -> StageRecord:
        fp = self.fingerprint(name)
        record_path = self.out_dir / name / "stage.json"
        if name not in self.force and record_path.exists():
            try:
                saved = json.loads(record_path.read_text())
            except json.JSONDecodeError:
                saved = {}
            if saved.get("fingerprint") == fp and saved.get("complete"):
                log.info("stage %s: unchanged inputs, reusing %s", name, record_path.parent)
                return StageRecord(name, fp, saved["results"], saved.get("seconds", 0.0), cached=True)
        log.info("stage %s: running", name)
        start = time.perf_counter()
        results = self.stage_functions[name](self)
        seconds = time.perf_counter() - start
        results = json.loads(json.dumps(results, default=_json_default))
        tmp = record_path.with_suffix(".json.tmp")
        self.stage_dir(name)
        tmp.write_text(json.dumps({"fingerprint": fp, "complete": True, "seconds": seconds, "results": results}, indent=1))
        tmp.replace(record_path)
        log.info("stage %s: done in %.1f s", name, seconds)
        return StageRecord(name, fp, results, seconds, cached=False)


def run_recipe(
    recipe: Recipe, *, out_dir: str | Path | None = None, force: list[str] | None = None, stop_after: str | None = None
) -> Pipeline:
    """Run ``recipe`` and return the finished :class:`Pipeline` (its ``records`` hold every stage's results)."""
    pipe = Pipeline(recipe, Path(out_dir or recipe.output_dir), force=set(force or []))
    pipe.run(stop_after=stop_after)
    return pipe


def run_recipe_file(path: str | Path, *, out_dir: str | Path | None = None, force: list[str] | None = None) -> int:
    """CLI entry: run a recipe file and print per-stage times and where the report is."""
    recipe = load_recipe(path)
    total = time.perf_counter()
    pipe = run_recipe(recipe, out_dir=out_dir, force=force)
    total = time.perf_counter() - total
    lines = [f"{recipe.name}: finished in {total:.1f} s"]
    for name, rec in pipe.records.items():
        lines.append(f"  {name:<15} {'cached' if rec.cached else f'{rec.seconds:7.1f} s'}")
    report = pipe.results("report").get("html") if "report" in pipe.records else None
    if report:
        lines.append(f"report: {report}")
    print("\n".join(lines))
    return 0


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()[:16]
