"""Steering tasks: prompts whose next token the model predicts, and a different token to steer it towards.

Prompts are generated from the concept groups (``data_recipes/concepts.yaml``) with templates of their
own and a seed of their own (defaults 1201-1203, not the corpus generator's). They are held out in that
sense: the corpus style and vocabulary, other sentences (a short prompt can still coincide with a corpus
phrase). Every prompt must encode without unknown tokens; the desired and baseline words must each be a
single known token. ``restrict_to_baseline`` (in ``measures``) keeps the prompts on which a model
really predicts the baseline token.

- ``pronoun_task``: "The king laughed, and then" (model: "he") -> steer towards "she".
- ``month_task``: "March, April, May," (model: "June") -> steer towards a chosen month.
- ``number_task``: "one, two, three," (model: "four") -> steer towards a chosen number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from featgeom_tda.core._validation import check_positive_int
from featgeom_tda.sources.concepts import load_concept_groups
from ._common import encode_text, unknown_token_id, word_token_id

__all__ = [
    "SteeringTask",
    "make_task",
    "pronoun_task",
    "month_task",
    "number_task",
    "MALE_WORDS",
    "FEMALE_WORDS",
]

log = logging.getLogger(__name__)

#: words of the royalty / family concept groups that name a male or a female person
MALE_WORDS = ("king", "prince", "father", "brother", "grandpa")
FEMALE_WORDS = ("queen", "princess", "mother", "sister", "grandma")

#: phrasings of the held-out prompts, in the corpus style (capitalised sentences, quoted lists); the slots are
#: filled with a seed of their own, so most prompts are new sentences (a short one may also occur in the corpus)
PRONOUN_TEMPLATES = (
    "The {subject} laughed, and then",
    "The {subject} smiled, and then",
    "The {subject} nodded, and then",
    "The {subject} was so {emotion} that",
    "One {time}, the {subject} was {emotion}, so",
    "In {month}, the {subject} was so {emotion} that",
)
MONTH_TEMPLATES = ('"{seq},', "The months of the year are {seq},", "Then we said the months: {seq},")
NUMBER_TEMPLATES = ('"{Seq},', "The children counted {seq},", "Then we counted: {seq},")


@dataclass
class SteeringTask:
    """Prompts (n) with the token each is expected to continue with (baseline) and the desired token.

    ``prompt_tokens``: token ids of each prompt; ``desired_id``: the desired word's single token;
    ``baseline_ids``: one token per prompt (the unsteered continuation); ``config``: how it was built.
    """

    name: str
    prompts: list[str]
    desired: str
    baselines: list[str]
    prompt_tokens: list[list[int]]
    desired_id: int
    baseline_ids: list[int]
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if n == 0:
            raise ValueError(f"task {self.name!r} has no prompts")
        for attr in ("baselines", "prompt_tokens", "baseline_ids"):
            if len(getattr(self, attr)) != n:
                raise ValueError(f"task {self.name!r}: {attr} has {len(getattr(self, attr))} entries but there are {n} prompts")
        clash = [i for i, b in enumerate(self.baseline_ids) if b == self.desired_id]
        if clash:
            raise ValueError(
                f"task {self.name!r}: prompt {clash[0]} ({self.prompts[clash[0]]!r}) already continues with the "
                f"desired token {self.desired!r}; desired and baseline tokens must differ"
            )

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def baseline(self) -> list[str]:
        """The distinct baseline words, in first-seen order."""
        return list(dict.fromkeys(self.baselines))

    def subset(self, keep: Sequence[int] | np.ndarray) -> "SteeringTask":
        """Task restricted to prompt indices ``keep`` (or a boolean mask of length n)."""
        keep = np.asarray(keep)
        if keep.dtype == bool:
            if keep.shape != (len(self),):
                raise ValueError(f"keep mask has shape {keep.shape}; expected ({len(self)},)")
            keep = np.flatnonzero(keep)
        idx = [int(i) for i in keep]
        if any(i < 0 or i >= len(self) for i in idx):
            raise ValueError(f"keep has indices outside [0, {len(self)})")
        return SteeringTask(
            name=self.name,
            prompts=[self.prompts[i] for i in idx],
            desired=self.desired,
            baselines=[self.baselines[i] for i in idx],
            prompt_tokens=[list(self.prompt_tokens[i]) for i in idx],
            desired_id=self.desired_id,
            baseline_ids=[self.baseline_ids[i] for i in idx],
            config=dict(self.config),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prompts": list(self.prompts),
            "desired": self.desired,
            "baselines": list(self.baselines),
            "prompt_tokens": [list(t) for t in self.prompt_tokens],
            "desired_id": int(self.desired_id),
            "baseline_ids": [int(b) for b in self.baseline_ids],
            "config": dict(self.config),
        }


def make_task(
    tokenizer: Any,
    name: str,
    prompts: Sequence[str],
    desired: str,
    baselines: Sequence[str] | str,
    *,
    prepend_bos: int | None = None,
    config: dict[str, Any] | None = None,
) -> SteeringTask:
    """Encode prompts; drop (with a log message) prompts with unknown tokens or whose baseline is ``desired``.

    ``baselines``: one word for all prompts or one per prompt. ``prepend_bos``: a token id put in front of
    each prompt unless the tokenizer already starts it with that id.
    """
    prompts = [str(p) for p in prompts]
    if isinstance(baselines, str):
        baselines = [baselines] * len(prompts)
    baselines = [str(b) for b in baselines]
    if len(baselines) != len(prompts):
        raise ValueError(f"baselines has {len(baselines)} entries but prompts has {len(prompts)}")
    desired_id = word_token_id(tokenizer, desired, "desired")
    unk = unknown_token_id(tokenizer)
    word_ids: dict[str, int] = {}
    kept: dict[str, list[Any]] = {"prompts": [], "baselines": [], "tokens": [], "ids": []}
    dropped = 0
    for prompt, base in zip(prompts, baselines):
        if base not in word_ids:
            word_ids[base] = word_token_id(tokenizer, base, "baseline")
        ids = encode_text(tokenizer, prompt)
        if prepend_bos is not None and (not ids or ids[0] != prepend_bos):
            ids = [int(prepend_bos)] + ids
        if not ids or (unk is not None and unk in ids) or word_ids[base] == desired_id:
            dropped += 1
            continue
        kept["prompts"].append(prompt)
        kept["baselines"].append(base)
        kept["tokens"].append(ids)
        kept["ids"].append(word_ids[base])
    if dropped:
        log.info("task %s: dropped %d of %d prompts (unknown tokens or baseline equal to desired)", name, dropped, len(prompts))
    if not kept["prompts"]:
        raise ValueError(f"task {name!r}: no prompt encodes without unknown tokens; check the tokenizer's vocabulary")
    return SteeringTask(
        name=name,
        prompts=kept["prompts"],
        desired=desired,
        baselines=kept["baselines"],
        prompt_tokens=kept["tokens"],
        desired_id=desired_id,
        baseline_ids=kept["ids"],
        config=dict(config or {}, prepend_bos=prepend_bos, n_dropped=dropped),
    )


def _sample(candidates: list[Any], n: int, seed: int) -> list[Any]:
    rng = np.random.default_rng(seed)
    if len(candidates) <= n:
        order = rng.permutation(len(candidates))
    else:
        order = rng.choice(len(candidates), size=n, replace=False)
    return [candidates[i] for i in order]


def _known_words(tokenizer: Any, words: Sequence[str]) -> list[str]:
    out = []
    for w in words:
        try:
            word_token_id(tokenizer, w)
        except ValueError:
            continue
        out.append(w)
    return out


def pronoun_task(
    tokenizer: Any,
    *,
    desired: str = "she",
    baseline: str = "he",
    subjects: Sequence[str] | None = None,
    templates: Sequence[str] = PRONOUN_TEMPLATES,
    n_prompts: int = 32,
    seed: int = 1201,
    prepend_bos: int | None = None,
) -> SteeringTask:
    """Prompts about a ``subjects`` person ("The king laughed, and then") expected to continue with ``baseline``.

    ``subjects`` default: the male words of the concept groups for baseline "he", the female ones for "she".
    Template slots ``{subject} {animal} {time} {emotion} {colour} {month}`` are filled from the concept groups.
    """
    n_prompts = check_positive_int(n_prompts, "n_prompts")
    groups = load_concept_groups()
    if subjects is None:
        by_pronoun = {"he": MALE_WORDS, "she": FEMALE_WORDS}
        if baseline not in by_pronoun:
            raise ValueError(f"subjects is required for baseline {baseline!r}; defaults exist for 'he' and 'she'")
        people = set(groups.get("royalty", [])) | set(groups.get("family", []))
        subjects = [w for w in by_pronoun[baseline] if w in people]
    subjects = _known_words(tokenizer, subjects)
    if not subjects:
        raise ValueError("subjects has no word that is a single known token of this tokenizer")
    fillers = {k: _known_words(tokenizer, groups.get(g, [])) for k, g in
               (("animal", "animals"), ("time", "time"), ("emotion", "emotions"), ("colour", "colours"),
                ("month", "months"))}
    for template in templates:
        try:
            template.format(subject="", **{k: "" for k in fillers})
        except (KeyError, IndexError) as exc:
            raise ValueError(
                f"template {template!r} has an unknown slot {exc}; slots are {{subject}}, "
                + ", ".join("{" + k + "}" for k in fillers)
            ) from None
    rng = np.random.default_rng(seed)
    prompts: list[str] = []
    seen: set[str] = set()
    for _ in range(50 * n_prompts):
        if len(prompts) == n_prompts:
            break
        template = templates[int(rng.integers(len(templates)))]
        slots = {"subject": subjects[int(rng.integers(len(subjects)))]}
        for key, words in fillers.items():
            if "{" + key + "}" in template:
                if not words:
                    break
                slots[key] = words[int(rng.integers(len(words)))]
        else:
            text = template.format(**slots)
            if text not in seen:
                seen.add(text)
                prompts.append(text)
    if not prompts:
        raise ValueError("no pronoun prompt could be generated; the templates need words the tokenizer knows")
    return make_task(
        tokenizer, f"pronoun {baseline}->{desired}", prompts, desired, baseline, prepend_bos=prepend_bos,
        config={"kind": "pronoun", "seed": seed, "n_prompts": n_prompts, "subjects": list(subjects),
                "templates": list(templates)},
    )


def _succession_task(
    tokenizer: Any,
    kind: str,
    words: Sequence[str],
    target: str,
    *,
    cyclic: bool,
    n_prompts: int,
    seed: int,
    min_len: int,
    max_len: int,
    templates: Sequence[str],
    prepend_bos: int | None,
) -> SteeringTask:
    n_prompts = check_positive_int(n_prompts, "n_prompts")
    min_len = check_positive_int(min_len, "min_len")
    max_len = check_positive_int(max_len, "max_len", minimum=min_len)
    if target not in words:
        raise ValueError(f"target {target!r} is not one of the {kind}: {', '.join(words)}")
    n = len(words)
    candidates = []
    for length in range(min_len, max_len + 1):
        for start in range(n):
            if not cyclic and start + length >= n:
                continue
            seq = [words[(start + j) % n] for j in range(length)]
            nxt = words[(start + length) % n]
            if nxt == target:
                continue
            joined = ", ".join(seq)
            for template in templates:
                candidates.append((template.format(seq=joined, Seq=joined[:1].upper() + joined[1:]), nxt))
    if not candidates:
        raise ValueError(f"no {kind} prompt: every sequence of length {min_len}..{max_len} continues with {target!r}")
    chosen = _sample(candidates, n_prompts, seed)
    return make_task(
        tokenizer, f"{kind} -> {target}", [c[0] for c in chosen], target, [c[1] for c in chosen],
        prepend_bos=prepend_bos,
        config={"kind": kind, "seed": seed, "n_prompts": n_prompts, "min_len": min_len, "max_len": max_len,
                "templates": list(templates)},
    )


def month_task(
    tokenizer: Any,
    target_month: str,
    *,
    n_prompts: int = 24,
    seed: int = 1202,
    min_len: int = 2,
    max_len: int = 4,
    templates: Sequence[str] = MONTH_TEMPLATES,
    prepend_bos: int | None = None,
) -> SteeringTask:
    """Runs of consecutive months ("March, April, May,"); baseline = the next month, desired = ``target_month``.

    Runs wrap from December to January; runs that naturally continue with ``target_month`` are left out.
    Template slots: ``{seq}`` ("March, April, May") and ``{Seq}`` (the same, first letter capitalised).
    """
    months = load_concept_groups()["months"]
    return _succession_task(
        tokenizer, "months", months, target_month, cyclic=True, n_prompts=n_prompts, seed=seed,
        min_len=min_len, max_len=max_len, templates=templates, prepend_bos=prepend_bos,
    )


def number_task(
    tokenizer: Any,
    target_number: str,
    *,
    digits: bool = False,
    n_prompts: int = 24,
    seed: int = 1203,
    min_len: int = 2,
    max_len: int = 4,
    templates: Sequence[str] = NUMBER_TEMPLATES,
    prepend_bos: int | None = None,
) -> SteeringTask:
    """Counting runs ("one, two, three,"); baseline = the next number, desired = ``target_number``.

    Number words one..twenty (or the digits 0..9 with ``digits=True``) from the concept groups; no wrap.
    """
    numbers = load_concept_groups()["numbers"]
    words = [w for w in numbers if w.isdigit() == digits]
    return _succession_task(
        tokenizer, "numbers", words, target_number, cyclic=False, n_prompts=n_prompts, seed=seed,
        min_len=min_len, max_len=max_len, templates=templates, prepend_bos=prepend_bos,
    )
