"""The corpus: whole stories from a seed, and word and concept counts over texts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from featgeom_tda.core._validation import check_positive_int
from featgeom_tda.sources.corpus.vocabulary import _WORD_RE
from featgeom_tda.sources.corpus.characters import _Draw, _cap
from featgeom_tda.sources.corpus.story import _Story, _family_line, _opening
from featgeom_tda.sources.corpus.episodes import _EPISODES, _EPISODE_CDF


def _ending(s: _Story) -> list[str]:
    d = s.d
    forms = [
        "From that day on, {h.name} and {f.name} were best friends.",
        "That night, {h.name} went to bed happy.",
        "{h.Name} smiled. It had been a wonderful day.",
        "And {h.he} never forgot that {season} in {month}.",
        "The end.",
        "{h.Name} learned that it is good to be kind.",
        "When the stars came out, {h.he} said good night to {fam.name} and fell asleep.",
        "{h.He} could not wait for tomorrow.",
        "It was the best {season} ever.",
        "And they all lived happily ever after.",
    ]
    return [s.fill(d.choice(forms), season=s.season, month=s.month)]


def _story(d: _Draw) -> str:
    s = _Story(d)
    sentences = _opening(s)
    if d.chance(0.7):
        sentences += _family_line(s)
    n_episodes = d.between(2, 4)
    chosen: list[int] = []
    while len(chosen) < n_episodes:
        k = int(np.searchsorted(_EPISODE_CDF, d.random(), side="right"))
        k = min(k, len(_EPISODES) - 1)
        if k not in chosen:
            chosen.append(k)
    for k in chosen:
        sentences += _EPISODES[k](s)
    sentences += _ending(s)
    return " ".join(sentences)


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------
def generate_corpus(*, n_stories: int = 12_000, seed: int = 0) -> list[str]:
    """``n_stories`` short children's stories (one string each), the same list for the same ``seed``.

    The default (12,000 stories) holds about 1.5 million words.
    """
    n_stories = check_positive_int(n_stories, "n_stories")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer; got {seed!r}")
    d = _Draw(int(seed))
    return [_story(d) for _ in range(n_stories)]


def split_words(text: str) -> list[str]:
    """Words of ``text`` as the concept counts see them: runs of letters, and single digits."""
    return _WORD_RE.findall(text)


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Iterable):
        raise ValueError(f"texts must be a list of strings; got {type(texts).__name__}")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ValueError(f"texts must be a list of strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return texts


def word_counts(texts: Iterable[str], words: Iterable[str]) -> dict[str, int]:
    """How often each of ``words`` occurs in ``texts`` as a whole word.

    Words with a capital letter (month names) match case-sensitively, so the verb "may" is not the month
    "May"; lower-case words also match their capitalised form at a sentence start ("He", "It").
    """
    texts = _check_texts(texts)
    words = list(words)
    want_exact = {w for w in words if w != w.lower()}
    want_lower = {w for w in words if w == w.lower()}
    counts = dict.fromkeys(words, 0)
    for text in texts:
        for w in split_words(text):
            if w in want_exact:
                counts[w] += 1
            else:
                lw = w.lower()
                if lw in want_lower and (w == lw or w == _cap(lw)):
                    counts[lw] += 1
    return counts


def concept_counts(texts: Iterable[str], groups: dict[str, list[str]]) -> dict[str, int]:
    """Total whole-word occurrences of each concept group's words in ``texts`` (see :func:`word_counts`)."""
    if not isinstance(groups, dict) or not groups:
        raise ValueError(f"groups must be a non-empty dict of concept -> list of words; got {groups!r}")
    texts = _check_texts(texts)
    all_words = [w for ws in groups.values() for w in ws]
    per_word = word_counts(texts, all_words)
    return {name: int(sum(per_word[w] for w in set(words))) for name, words in groups.items()}
