"""Steering tasks: pronoun, month and number prompts, word checks, restriction to the baseline."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom_tda.analyses.steering import (
    SteeringTask,
    make_task,
    month_task,
    number_task,
    pronoun_task,
    restrict_to_baseline,
    task_predictions,
)
from featgeom_tda.sources.concepts import load_concept_groups


# ------------------------------------------------------------------------------------------------- tasks


def test_pronoun_task(tokenizer, task):
    assert len(task) == 12 and task.desired == "she" and set(task.baselines) == {"he"}
    assert task.desired_id == tokenizer.token_to_id("she")
    assert all(b == tokenizer.token_to_id("he") for b in task.baseline_ids)
    assert all(any(f" {s}" in p for s in ("king", "prince", "father", "brother", "grandpa")) for p in task.prompts)
    for p, toks in zip(task.prompts, task.prompt_tokens):
        assert toks == tokenizer.encode(p).ids and 0 not in toks
    again = pronoun_task(tokenizer, n_prompts=12)
    assert again.prompts == task.prompts
    assert pronoun_task(tokenizer, n_prompts=12, seed=5).prompts != task.prompts
    she = pronoun_task(tokenizer, desired="he", baseline="she", n_prompts=6)
    assert all(any(f" {s}" in p for s in ("queen", "princess", "mother", "sister", "grandma")) for p in she.prompts)
    with pytest.raises(ValueError, match="subjects is required"):
        pronoun_task(tokenizer, baseline="it")


def test_month_and_number_tasks(tokenizer):
    months = load_concept_groups()["months"]
    t = month_task(tokenizer, "July", n_prompts=20)
    assert len(t) == 20 and t.desired == "July"
    for p, b in zip(t.prompts, t.baselines):
        words = [w.strip(' ",:') for w in p.split(",") if w.strip(' ",:')]
        last = words[-1].split()[-1]
        assert b == months[(months.index(last) + 1) % 12] and b != "July"
    n = number_task(tokenizer, "seven", n_prompts=10)
    assert all(b != "seven" for b in n.baselines)
    assert any(p.startswith('"One') or p.startswith('"Two') or "counted" in p for p in n.prompts)
    with pytest.raises(ValueError, match="not one of the months"):
        month_task(tokenizer, "Smarch")


def test_make_task_drops_unknown_and_rejects_bad_words(tokenizer):
    t = make_task(tokenizer, "t", ["The king smiled, and then", "The zebra smiled, and then"], "she", "he")
    assert t.prompts == ["The king smiled, and then"] and t.config["n_dropped"] == 1
    t2 = make_task(tokenizer, "t", ["The king smiled, and then"], "she", "he", prepend_bos=1)
    assert t2.prompt_tokens[0][0] == 1
    with pytest.raises(ValueError, match="'zebra' is not a single known token"):
        make_task(tokenizer, "t", ["The king smiled"], "zebra", "he")
    with pytest.raises(ValueError, match="no prompt encodes"):
        make_task(tokenizer, "t", ["zebra"], "she", "he")
    with pytest.raises(ValueError, match="must differ"):
        SteeringTask("t", ["a"], "she", ["she"], [[2]], 5, [5])
    sub = t2.subset([0])
    assert sub.prompts == t2.prompts and sub.to_dict()["desired_id"] == t2.desired_id


def test_restrict_to_baseline(model_a, task):
    preds = task_predictions(model_a, task)
    keep = preds == np.asarray(task.baseline_ids)
    if keep.any():
        assert len(restrict_to_baseline(model_a, task)) == int(keep.sum())
    else:
        with pytest.raises(ValueError, match="predicts the baseline token on none"):
            restrict_to_baseline(model_a, task)


def test_pronoun_task_template_slots(tokenizer):
    t = pronoun_task(tokenizer, templates=["In {month}, the {subject} was so {emotion} that"], n_prompts=4)
    months = load_concept_groups()["months"]
    assert all(p.split(",")[0].split()[-1] in months for p in t.prompts)
    with pytest.raises(ValueError, match="unknown slot 'weather'"):
        pronoun_task(tokenizer, templates=["The {subject} saw the {weather}"])
