import copy

import pytest
import yaml

from featgeom_tda.pipeline import STAGES, Pipeline
from featgeom_tda.pipeline.recipe import recipe_from_dict
from featgeom_tda.sources.concepts import DATA_RECIPES


def _recipe(**changes):
    data = yaml.safe_load((DATA_RECIPES / "embedded.yaml").read_text())
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
        def run(pipe):
            self.calls[name] += 1
            return {"stage": name, "threshold": pipe.recipe.matching.threshold}

        return run


def _run(recipe, out, fake, force=()):
    pipe = Pipeline(recipe, out, force=set(force), stage_functions=fake)
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

    def boom(pipe):
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
        Pipeline(_recipe(), "x", force={"bogus"}, stage_functions=CountingStages())
