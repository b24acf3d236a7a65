"""Seeded draws and the characters of a story (children, royals, animals, family) with their pronouns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from featgeom_tda.sources.corpus.vocabulary import (
    _ADJ_ANIMAL, _ADJ_CHILD, _ANIMALS, _ANIMAL_PLURAL, _BOYS, _GIRLS, _PET_NAMES_F, _PET_NAMES_M,
)


# --------------------------------------------------------------------------------------------------
# seeded draws
# --------------------------------------------------------------------------------------------------
class _Draw:
    """Fast seeded choices: buffered uniforms from ``np.random.default_rng(seed)``."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._buf = self._rng.random(1 << 16)
        self._i = 0

    def random(self) -> float:
        if self._i >= self._buf.shape[0]:
            self._buf = self._rng.random(1 << 16)
            self._i = 0
        u = float(self._buf[self._i])
        self._i += 1
        return u

    def below(self, n: int) -> int:
        return min(int(self.random() * n), n - 1)

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[self.below(len(seq))]

    def chance(self, p: float) -> bool:
        return self.random() < p

    def between(self, low: int, high: int) -> int:
        """Integer in [low, high] (both included)."""
        return low + self.below(high - low + 1)

    def sample(self, seq: Sequence[Any], k: int) -> list[Any]:
        pool = list(seq)
        out = []
        for _ in range(min(k, len(pool))):
            out.append(pool.pop(self.below(len(pool))))
        return out


# --------------------------------------------------------------------------------------------------
# characters
# --------------------------------------------------------------------------------------------------
_PRONOUNS = {
    "m": ("he", "him", "his"),
    "f": ("she", "her", "her"),
    "n": ("it", "it", "its"),
    "p": ("they", "them", "their"),
}


class _Who:
    """A character or group with a noun phrase and pronouns that agree with its gender."""

    def __init__(
        self, name: str, gender: str, intro: str | None = None, kind: str = "child", call: str | None = None
    ) -> None:
        self.name = name
        self.call = call if call is not None else name  # how others address it in dialogue
        self.gender = gender
        self.intro = intro if intro is not None else name
        self.kind = kind
        self.he, self.him, self.his = _PRONOUNS[gender]

    @property
    def Name(self) -> str:  # noqa: N802 - capitalised form for sentence starts
        return _cap(self.name)

    @property
    def He(self) -> str:  # noqa: N802
        return _cap(self.he)

    @property
    def His(self) -> str:  # noqa: N802
        return _cap(self.his)

    @property
    def was(self) -> str:
        return "were" if self.gender == "p" else "was"

    @property
    def has(self) -> str:
        return "have" if self.gender == "p" else "has"

    @property
    def self_(self) -> str:
        return {"m": "himself", "f": "herself", "n": "itself", "p": "themselves"}[self.gender]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _a(word: str) -> str:
    """'a' or 'an' before ``word``."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _plural(animal: str) -> str:
    return _ANIMAL_PLURAL.get(animal, animal + "s")


def _child(d: _Draw, gender: str | None = None) -> _Who:
    gender = gender or d.choice("mf")
    name = d.choice(_GIRLS if gender == "f" else _BOYS)
    noun = d.choice(("girl", "little girl") if gender == "f" else ("boy", "little boy"))
    adj = d.choice(_ADJ_CHILD)
    intro = d.choice((
        f"{_a(noun)} named {name}",
        f"{_a(adj)} {noun.split()[-1]} called {name}",
        f"{_a(adj)} {noun.split()[-1]} named {name}",
        name,
    ))
    return _Who(name, gender, intro, "child")


def _royal(d: _Draw) -> _Who:
    kind = d.choice(("king", "queen", "prince", "princess", "knight", "knight"))
    adj = d.choice(("kind", "wise", "old", "young", "brave", "proud", "gentle", "clever"))
    if kind == "knight":
        gender = d.choice("mf")
        name = ("Sir " + d.choice(_BOYS)) if gender == "m" else ("Lady " + d.choice(_GIRLS))
        return _Who(name, gender, f"{_a(adj)} knight called {name}", "royal")
    gender = "m" if kind in ("king", "prince") else "f"
    return _Who(f"the {kind}", gender, f"{_a(adj)} {kind}", "royal")


def _animal(d: _Draw, *, named: bool | None = None) -> tuple[_Who, str]:
    animal = d.choice(_ANIMALS)
    adj = d.choice(_ADJ_ANIMAL)
    if named is None:
        named = d.chance(0.5)
    if named:
        gender = d.choice("mf")
        name = d.choice(_PET_NAMES_M if gender == "m" else _PET_NAMES_F)
        return _Who(name, gender, f"{_a(adj)} {animal} named {name}", "animal"), animal
    return _Who(f"the {animal}", "n", f"{_a(adj)} {animal}", "animal"), animal


def _family_member(d: _Draw, hero: _Who) -> _Who:
    """A relative of ``hero``: "Mom", "Grandpa", or "her mother", "his little brother", ..."""
    m = d.choice(("mother", "father", "mom", "dad", "grandma", "grandpa", "sister", "brother"))
    gender = "f" if m in ("mother", "mom", "grandma", "sister") else "m"
    if m in ("mom", "dad", "grandma", "grandpa"):
        return _Who(_cap(m), gender, _cap(m), "family")
    call = {"mother": "Mom", "father": "Dad"}.get(m) or d.choice(_GIRLS if gender == "f" else _BOYS)
    if m in ("sister", "brother") and d.chance(0.5):
        m = d.choice(("big ", "little ")) + m
    return _Who(f"{hero.his} {m}", gender, f"{hero.his} {m}", "family", call=call)


