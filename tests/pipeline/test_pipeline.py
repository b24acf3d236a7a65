import copy
import json
from dataclasses import dataclass

import pytest
import yaml

from featgeom_tda.pipeline import STAGES, Pipeline
from featgeom_tda.pipeline.packaged import packaged_recipe
from featgeom_tda.pipeline.recipe import recipe_from_dict
from featgeom_tda.results import StageResult


@dataclass
class FakeResult(StageResult):
    stage: str
    threshold: float | None


FAKE_TYPES = {s: FakeResult for s in STAGES}


def _recipe(**changes):
    data = yaml.safe_load(packaged_recipe("embedded").read_text())
    for key, value in changes.items():
        data[key] = value
    return recipe_from_dict(data)


class CountingStages(dict):
    """Fake stage functions that count their calls and return results derived from the recipe."""

    def __init__(self):
        super().__init__()
        self.calls = {s: 0 for s in STAGES}
        for s in STAGES:
            self[s] = self._make(s)

    def _make(self, name):
        def run(ctx):
            self.calls[name] += 1
            return FakeResult(stage=name, threshold=ctx.recipe.matching.threshold)

        return run


def _run(recipe, out, fake, force=()):
    pipe = Pipeline(recipe, out, force=set(force), stage_functions=fake, result_types=FAKE_TYPES)
    pipe.run()
    return pipe


def test_second_run_is_all_cached(tmp_path):
    fake = CountingStages()
    _run(_recipe(), tmp_path, fake)
    pipe = _run(_recipe(), tmp_path, fake)
    assert all(v == 1 for v in fake.calls.values())
    assert all(rec.cached for rec in pipe.records.values())


def test_changed_section_reruns_that_stage_and_dependents_only(tmp_path):
    fake = CountingStages()
    _run(_recipe(), tmp_path, fake)
    changed = _recipe(matching={"mode": "one-to-one", "threshold": 0.5})
    pipe = _run(changed, tmp_path, fake)
    assert fake.calls["sources"] == 1 and fake.calls["extraction"] == 1
    # matching's results changed (threshold is in them), so every later stage reruns
    assert all(fake.calls[s] == 2 for s in STAGES[STAGES.index("matching"):])
    assert not pipe.records["matching"].cached


def test_force_reruns_one_stage_and_keeps_unchanged_dependents(tmp_path):
    fake = CountingStages()
    _run(_recipe(), tmp_path, fake)
    _run(_recipe(), tmp_path, fake, force=["geometry"])
    assert fake.calls["geometry"] == 2
    # its results are the same, so later stages stay cached
    assert fake.calls["topology"] == 1 and fake.calls["report"] == 1


def test_interrupted_stage_is_not_reused(tmp_path):
    fake = CountingStages()

    def boom(ctx):
        raise RuntimeError("killed")

    broken = copy.copy(fake)
    broken["geometry"] = boom
    with pytest.raises(RuntimeError):
        _run(_recipe(), tmp_path, broken)
    _run(_recipe(), tmp_path, fake)
    assert fake.calls["matching"] == 1  # finished stages were kept
    assert fake.calls["geometry"] == 1  # the interrupted one ran again


def test_unknown_force_stage():
    with pytest.raises(ValueError, match=r"force names unknown stage 'bogus'; stages are sources, extraction"):
        Pipeline(_recipe(), "x", force={"bogus"}, stage_functions=CountingStages(), result_types=FAKE_TYPES)


def test_cached_result_comes_back_typed(tmp_path):
    fake = CountingStages()
    _run(_recipe(), tmp_path, fake)
    pipe = _run(_recipe(), tmp_path, fake)
    assert pipe.results("matching") == FakeResult(stage="matching", threshold=0.3)


def test_unreadable_cached_result_reruns_the_stage(tmp_path):
    fake = CountingStages()
    _run(_recipe(), tmp_path, fake)
    record = tmp_path / "geometry" / "stage.json"
    saved = json.loads(record.read_text())
    saved["results"] = {"stage": "geometry", "renamed_key": 1}  # a result that no longer fits its dataclass
    record.write_text(json.dumps(saved))
    pipe = _run(_recipe(), tmp_path, fake)
    assert fake.calls["geometry"] == 2 and not pipe.records["geometry"].cached
    assert fake.calls["topology"] == 1  # the rerun gave the same result, so later stages stay cached


def test_stage_returning_the_wrong_type_is_refused(tmp_path):
    fake = CountingStages()
    fake["sources"] = lambda ctx: {"stage": "sources"}
    with pytest.raises(TypeError, match=r"stage 'sources' returned dict; expected FakeResult"):
        _run(_recipe(), tmp_path, fake)


def test_renaming_the_recipe_rebuilds_the_report_only(tmp_path):
    fake = CountingStages()
    _run(_recipe(), tmp_path, fake)
    _run(_recipe(name="renamed"), tmp_path, fake)
    assert fake.calls["report"] == 2
    assert all(fake.calls[s] == 1 for s in STAGES[:-1])
