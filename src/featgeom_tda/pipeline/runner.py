"""A recipe run stage by stage, each stage cached on disk under the output directory.

Stages, in order::

    sources -> extraction -> matching -> geometry -> topology -> interpretation -> steering -> crosscoder
        -> splitting -> report

Each stage is a module of :mod:`featgeom_tda.pipeline.stages` whose ``run(ctx)`` returns that stage's typed
result (:mod:`featgeom_tda.results`). The runner writes ``OUT/<stage>/stage.json`` with a fingerprint of the
stage's inputs (the recipe sections it reads and the results of the stages before it) and the result. A stage
whose fingerprint is unchanged is reused; a stage named in ``force`` reruns, and the stages after it rerun
only if its result changed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from featgeom_tda.core._cache import fingerprint
from featgeom_tda.core._validation import check_output_dir
from featgeom_tda.core.types import json_default
from featgeom_tda.core.version import __version__
from featgeom_tda.pipeline.context import RunContext
from featgeom_tda.pipeline.recipe import Recipe, check_hooks, load_recipe
from featgeom_tda.pipeline.sources import source_options
from featgeom_tda.results import SCHEMA_VERSION, STAGE_RESULTS, ResultError, StageResult

__all__ = ["RECIPE_COPY", "STAGES", "Pipeline", "StageRecord", "run_recipe", "run_recipe_file", "default_stages"]

log = logging.getLogger(__name__)

RECIPE_COPY = "recipe.yaml"  # the recipe of a run, kept in its output directory

# crosscoder and splitting (optional) read the matching; they sit last so that switching one on or off reruns
# only what follows it
STAGES = ("sources", "extraction", "matching", "geometry", "topology", "interpretation", "steering", "crosscoder",
          "splitting", "report")

# recipe sections each stage reads (besides the results of the stages before it)
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "sources": ("models", "seed", "cache_dir", "dataset", "embedded_size"),
    "extraction": ("dataset", "token_budget", "batch_size", "seed"),
    "matching": ("matching",),
    "geometry": ("geometry", "seed"),
    "topology": ("topology", "seed"),
    "interpretation": ("interpretation", "seed"),
    "steering": ("steering", "seed"),
    "crosscoder": ("crosscoder", "seed"),
    "splitting": ("splitting", "matching", "geometry", "seed"),
    "report": (),  # the report shows the whole recipe: every section is an input
}

StageFunction = Callable[[RunContext], StageResult]


def default_stages() -> dict[str, StageFunction]:
    """Stage name -> ``run`` of its module in :mod:`featgeom_tda.pipeline.stages`."""
    from featgeom_tda.pipeline.stages import (
        crosscoder, extraction, geometry, interpretation, matching, report, sources, splitting, steering, topology,
    )

    modules = (sources, extraction, matching, geometry, topology, interpretation, steering, crosscoder, splitting, report)
    return {name: module.run for name, module in zip(STAGES, modules)}


@dataclass
class StageRecord:
    """What one stage did: its fingerprint, typed result, time, and whether it came from the cache.

    ``digest`` fingerprints the result's JSON; the stages after this one key their caches on it.
    """

    name: str
    fingerprint: str
    result: StageResult
    seconds: float
    cached: bool
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        self.digest = fingerprint(_plain(self.result.to_dict()))


@dataclass
class Pipeline:
    """Runs a :class:`Recipe`'s stages with caching; ``context`` is the typed state the stages share."""

    recipe: Recipe
    out_dir: Path
    force: set[str] = field(default_factory=set)
    stage_functions: Mapping[str, StageFunction] | None = None
    result_types: Mapping[str, type[StageResult]] = field(default_factory=lambda: dict(STAGE_RESULTS))
    records: dict[str, StageRecord] = field(default_factory=dict)
    context: RunContext = field(init=False)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        unknown = set(self.force) - set(STAGES)
        if unknown:
            raise ValueError(f"force names unknown stage {sorted(unknown)[0]!r}; stages are {', '.join(STAGES)}")
        if self.stage_functions is None:
            self.stage_functions = default_stages()
        self.context = RunContext(self.recipe, self.out_dir)

    def results(self, name: str) -> StageResult:
        """Typed result of an earlier stage of this run (from the cache or freshly computed)."""
        return self.records[name].result

    def fingerprint(self, name: str) -> str:
        recipe = self.recipe.to_dict()
        sections: dict[str, Any] = recipe if name == "report" else {k: recipe[k] for k in STAGE_INPUTS[name]}
        if name == "sources":
            sections["source_options"] = source_options(self.recipe)
        upstream = {s: self.records[s].digest for s in STAGES[: STAGES.index(name)] if s in self.records}
        return fingerprint({"stage": name, "sections": sections, "upstream": upstream, "version": __version__,
                            "schema": SCHEMA_VERSION})

    def run(self, *, stop_after: str | None = None, on_stage: Any = None) -> dict[str, StageRecord]:
        """Run every stage in order (or up to ``stop_after``), reusing the cached ones; ``on_stage(record)`` is
        called as each stage ends."""
        import yaml
        from tqdm.auto import tqdm

        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / RECIPE_COPY).write_text(yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
        last = STAGES.index(stop_after) if stop_after else len(STAGES) - 1
        bar = tqdm(STAGES[: last + 1], desc="pipeline", unit="stage", disable=None)
        for name in bar:
            bar.set_postfix_str(name)
            record = self._run_stage(name)
            self.records[name] = record
            self.context.stage_results[name] = record.result
            self.context.stage_seconds[name] = 0.0 if record.cached else record.seconds
            if on_stage is not None:
                on_stage(record)
        return self.records

    def _cached(self, name: str, fp: str) -> StageRecord | None:
        path = self.out_dir / name / "stage.json"
        if name in self.force or not path.exists():
            return None
        try:
            saved = json.loads(path.read_text())
            if saved.get("fingerprint") != fp or not saved.get("complete"):
                return None
            result = self.result_types[name].from_dict(saved["results"], where=f"{path}")
        except (json.JSONDecodeError, ResultError, KeyError, TypeError) as exc:
            log.warning("stage %s: cached result at %s is unreadable (%s); running the stage again", name, path, exc)
            return None
        log.info("stage %s: unchanged inputs, reusing %s", name, path.parent)
        return StageRecord(name, fp, result, float(saved.get("seconds", 0.0)), cached=True)

    def _run_stage(self, name: str) -> StageRecord:
        fp = self.fingerprint(name)
        cached = self._cached(name, fp)
        if cached is not None:
            return cached
        log.info("stage %s: running", name)
        start = time.perf_counter()
        result = self.stage_functions[name](self.context)
        seconds = time.perf_counter() - start
        if not isinstance(result, self.result_types[name]):
            raise TypeError(f"stage {name!r} returned {type(result).__name__}; expected {self.result_types[name].__name__}")
        record_path = self.context.stage_dir(name) / "stage.json"
        payload = {"fingerprint": fp, "complete": True, "seconds": seconds, "results": _plain(result.to_dict())}
        tmp = record_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(record_path)  # a killed run never leaves a half-written record that reads as complete
        log.info("stage %s: done in %.1f s", name, seconds)
        return StageRecord(name, fp, result, seconds, cached=False)


def _plain(obj: Any) -> Any:
    """JSON-plain copy (numpy scalars and arrays to Python)."""
    return json.loads(json.dumps(obj, default=json_default))


def run_recipe(
    recipe: Recipe, *, out_dir: str | Path | None = None, force: list[str] | None = None, stop_after: str | None = None,
    on_stage: Any = None,
) -> Pipeline:
    """Run ``recipe`` and return the finished :class:`Pipeline` (its ``records`` hold every stage's result)."""
    pipe = Pipeline(recipe, Path(out_dir or recipe.output_dir), force=set(force or []))
    pipe.run(stop_after=stop_after, on_stage=on_stage)
    return pipe


def run_recipe_file(path: str | Path, *, out_dir: str | Path | None = None, force: list[str] | None = None,
                    engine: str | None = None, address: str | None = None) -> int:
    """CLI entry: run a recipe file and print per-stage times and where the report is."""
    from featgeom_tda.pipeline.packaged import recipe_path

    recipe = load_recipe(recipe_path(path), check_device=True)  # a run needs its device here; validate does not
    if engine is not None or address is not None:
        import dataclasses

        recipe = dataclasses.replace(recipe, engine=engine or recipe.engine, ray_address=address or recipe.ray_address)
    check_hooks(recipe, where=str(path))  # before any model is built or trained
    check_output_dir(out_dir or recipe.output_dir, "output directory")
    check_output_dir(recipe.cache_dir, "cache_dir")
    from tqdm.auto import tqdm

    def stage_line(record: StageRecord) -> None:
        tqdm.write(f"  {record.name:<15} {'cached' if record.cached else f'{record.seconds:7.1f} s'}")

    total = time.perf_counter()
    pipe = run_recipe(recipe, out_dir=out_dir, force=force, on_stage=stage_line)
    total = time.perf_counter() - total
    print(run_summary(pipe, total))
    return 0


def run_summary(pipe: Pipeline, seconds: float) -> str:
    """The lines a run ends with: models, layer pairs, the main pair's scores beside their nulls, the report."""
    recipe = pipe.recipe
    names = [m.name for m in recipe.models]
    lines = [f"{recipe.name}: finished in {seconds:.1f} s",
             f"  models      {' vs '.join(names) if len(names) == 2 else f'layers of {names[0]}'}"]
    if "matching" in pipe.records:
        match = pipe.results("matching")
        main = match.pairs[match.main_pair]
        lines.append(f"  layer pairs {len(match.pairs)}; main pair {main.a} vs {main.b}: {main.n_pairs} matched features"
                     + (f" (mean correlation {main.mean_correlation:.3f})" if main.mean_correlation is not None else ""))
        if "geometry" in pipe.records:
            entry = pipe.results("geometry").grid.get(match.main_pair)
            for metric, s in (entry.metrics.items() if entry is not None else []):
                null = f"null {s.null_mean:.3f} ± {s.null_std:.3f}, p {s.p_value:.3g}" if s.null_mean is not None else "no null"
                lines.append(f"    {metric:<12} {s.score:7.3f}  ({null})")
    if "report" in pipe.records:
        lines.append(f"  report      {pipe.results('report').html}")
    return "\n".join(lines)
