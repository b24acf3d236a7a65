"""A story's state, its opening and its family line."""

from __future__ import annotations

from typing import Any

from featgeom_tda.sources.corpus.vocabulary import (
    MONTHS, NUMBER_WORDS, _ANIMAL_HOME, _BOYS, _COLOURS, _DAYS, _EMOTIONS, _GIRLS, _HOMES, _PLACES,
    _SEASON_OF_MONTH, _SEASON_WEATHER, _TOYS,
)
from featgeom_tda.sources.corpus.characters import _Draw, _Who, _animal, _cap, _child, _family_member, _royal


# --------------------------------------------------------------------------------------------------
# story parts
# --------------------------------------------------------------------------------------------------
class _Story:
    """The state one story carries across its parts."""

    def __init__(self, d: _Draw) -> None:
        self.d = d
        roll = d.random()
        if roll < 0.55:
            self.hero = _child(d)
            self.animal = None
        elif roll < 0.8:
            self.hero = _royal(d)
            self.animal = None
        else:
            self.hero, self.animal = _animal(d, named=True)
        second = d.random()
        if second < 0.45:
            self.friend = _child(d)
            while self.friend.name == self.hero.name:
                self.friend = _child(d)
            self.friend_animal = None
        elif second < 0.75:
            self.friend, self.friend_animal = _animal(d)
        else:
            self.friend = _royal(d)
            while self.friend.name == self.hero.name:
                self.friend = _royal(d)
            self.friend_animal = None
        self.month_index = d.below(12)
        self.place = d.choice(_PLACES)
        self.colour = d.choice(_COLOURS)
        self.toy = d.choice(_TOYS)
        self.family = _family_member(d, self.hero)
        self.both = _Who(f"{self.hero.name} and {self.friend.name}", "p")

    @property
    def month(self) -> str:
        return MONTHS[self.month_index]

    @property
    def season(self) -> str:
        return _SEASON_OF_MONTH[self.month]

    def fill(self, template: str, **slots: Any) -> str:
        return template.format(h=self.hero, f=self.friend, fam=self.family, both=self.both, **slots)


def _opening(s: _Story) -> list[str]:
    d, h = s.d, s.hero
    weather = d.choice(_SEASON_WEATHER[s.season])
    options = [
        "Once upon a time, there was {intro}.",
        "Long ago, in a kingdom far away, there lived {intro}.",
        "There was once {intro} who lived in {home}.",
        "One {tod} in {month}, {intro} went to the {place}.",
        "It was a {weather} day in {month}, and {intro} was feeling {emo}.",
        "In {home} lived {intro}.",
        "Every {day}, {intro} walked to the {place}.",
        "This is a story about {intro}.",
        "On a {weather} {season} morning, {intro} woke up early.",
    ]
    if h.kind == "royal" and h.name.startswith("the "):
        options += [
            "Long ago, {intro} ruled a small kingdom by the sea.",
            "In a tall castle on a hill lived {intro}.",
        ]
    first = s.fill(
        d.choice(options),
        intro=h.intro, home=d.choice(_HOMES), tod=d.choice(("morning", "afternoon", "evening")),
        month=s.month, place=s.place, weather=weather,
        emo=d.choice(_EMOTIONS), day=d.choice(_DAYS), season=s.season,
    )
    first = _cap(first)
    second = []
    if h.kind == "child":
        age = d.between(3, 11)
        second.append(s.fill(d.choice([
            "{h.He} was {age} years old.",
            "{h.He} was {age_word} years old and loved to {hobby}.",
            "{h.Name} was {age} and {h.his} favourite colour was {colour}.",
            "{h.He} liked {colour} things best of all.",
        ]), age=age, age_word=NUMBER_WORDS[age - 1], colour=s.colour,
            hobby=d.choice(("draw", "sing", "run", "read books", "climb trees", "play outside", "bake"))))
    elif h.kind == "royal":
        second.append(s.fill(d.choice([
            "{h.He} lived in a {colour} castle with a tall tower.",
            "Every morning, {h.he} put on {h.his} {metal} crown.",
            "{h.He} sat on a {metal} throne and looked after the kingdom.",
            "The people of the kingdom loved {h.him} very much.",
        ]), colour=d.choice(("white", "grey", "pink", "gold", "silver")), metal=d.choice(("gold", "silver"))))
    else:
        second.append(s.fill(d.choice([
            "{h.He} lived {home} with {h.his} family.",
            "{h.He} had {colour} fur and a short tail.",
            "{h.Name} was the fastest {animal} in the {place}.",
        ]), home=_ANIMAL_HOME[s.animal or "cat"], colour=d.choice(("brown", "white", "black", "orange", "grey")),
            animal=s.animal or "cat", place=s.place))
    return [first] + second


def _family_line(s: _Story) -> list[str]:
    d, h = s.d, s.hero
    if h.kind == "royal" and h.name in ("the king", "the queen"):
        child = d.choice(("daughter", "son"))
        partner = "queen" if h.name == "the king" else "king"
        cname = d.choice(_GIRLS) if child == "daughter" else d.choice(_BOYS)
        title = "princess" if child == "daughter" else "prince"
        pr = "she" if child == "daughter" else "he"
        return [s.fill(d.choice([
            "{h.He} had a {child} named {cname}, and {pr} was a clever {title}.",
            "The {partner} and {h.name} had one {child}, the little {title}.",
            "{h.His} {child}, the {title}, liked to play in the castle garden.",
        ]), child=child, partner=partner, cname=cname, pr=pr, title=title)]
    if h.kind == "royal" and h.name in ("the prince", "the princess"):
        return [s.fill(d.choice([
            "{h.His} father was the king and {h.his} mother was the queen.",
            "{h.He} was the {rel} of the king and the queen.",
            "{h.He} lived in the castle with {h.his} mother, the queen, and {h.his} father, the king.",
        ]), rel="son" if h.gender == "m" else "daughter")]
    if h.kind == "animal":
        return [s.fill(d.choice([
            "{h.He} lived with {h.his} mother, {h.his} father and {n} little {sib}.",
            "{h.His} mother always said, \"Be careful and stay close.\"",
            "{h.He} had a big {sib1} and a baby {sib2}.",
        ]), n=d.choice(NUMBER_WORDS[1:6]), sib=d.choice(("brothers", "sisters")),
            sib1=d.choice(("brother", "sister")), sib2=d.choice(("brother", "sister")))]
    sib = d.choice(("brother", "sister"))
    sib_name = d.choice(_BOYS if sib == "brother" else _GIRLS)
    sib_he = "he" if sib == "brother" else "she"
    return [s.fill(d.choice([
        "{h.He} lived with {h.his} mother, {h.his} father and {h.his} little {sib}, {sib_name}.",
        "{h.His} mom and dad worked hard, and {h.his} grandma told the best stories.",
        "{h.He} had a big {sib} called {sib_name}. {Sib_he} was {n} years older.",
        "{h.His} grandpa lived next door and had a {colour} bicycle.",
        "There was a new baby in the family, and {h.he} loved to make the baby laugh.",
        "{h.His} father was a baker and {h.his} mother was a doctor.",
        "{h.He} was the only {rel} in a family of {n_word} children.",
        "Every {day}, {h.his} dad made pancakes for the whole family.",
    ]), sib=sib, sib_name=sib_name, Sib_he=_cap(sib_he), n=d.between(2, 9), colour=d.choice(_COLOURS),
        n_word=d.choice(NUMBER_WORDS[2:6]), rel="daughter" if h.gender == "f" else "son", day=d.choice(_DAYS))]


