"""A seeded generator of short children's stories in plain English, the corpus of the embedded default.

Every concept group of ``data_recipes/concepts.yaml`` (royalty, family, pronouns, months, numbers, colours,
animals, emotions, time) occurs in natural contexts, and the contexts that steering tasks measure are
common: month sequences ("January, February, March"), "after March comes April", counting ("one, two,
three"), and pronoun agreement (a boy or a king is followed by "he", a girl or a queen by "she", an
unnamed animal or a thing by "it", a group by "they").

Stories are built from an opening, a family line, two to four episodes drawn from many kinds (a lost
toy, counting, the months, a dragon at the castle, a birthday, a storm, baking, a new pet, a race, ...)
and an ending. Every choice comes from one ``np.random.default_rng(seed)``, so a seed fixes the corpus.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from featgeom_tda.core._validation import check_positive_int

__all__ = ["generate_corpus", "concept_counts", "word_counts", "split_words", "MONTHS", "NUMBER_WORDS"]

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
NUMBER_WORDS = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
)
_SEASON_OF_MONTH = {
    "December": "winter", "January": "winter", "February": "winter",
    "March": "spring", "April": "spring", "May": "spring",
    "June": "summer", "July": "summer", "August": "summer",
    "September": "autumn", "October": "autumn", "November": "autumn",
}
_SEASON_WEATHER = {
    "winter": ["cold", "snowy", "frosty", "grey"],
    "spring": ["warm", "rainy", "windy", "bright"],
    "summer": ["hot", "sunny", "bright", "warm"],
    "autumn": ["windy", "cool", "rainy", "foggy"],
}
_SEASON_THINGS = {
    "winter": ["the snow was deep", "the pond was frozen", "the trees were bare", "the wind was icy"],
    "spring": ["the flowers were growing", "the birds were singing", "the grass was green again", "baby ducks swam on the pond"],
    "summer": ["the sun was hot", "the days were long", "the berries were ripe", "the sea was warm"],
    "autumn": ["the leaves were falling", "the apples were ripe", "the leaves turned red and brown", "the nights got longer"],
}

_GIRLS = ("Lily", "Mia", "Sara", "Anna", "Emma", "Lucy", "Zoe", "Ella", "Rosa", "Nora", "Amy", "Kate",
          "Ruby", "Daisy", "Grace", "Maya", "Ivy", "Hannah", "Julia", "Lena", "Sophie", "Chloe", "Alice", "Molly")
_BOYS = ("Tom", "Ben", "Sam", "Max", "Leo", "Jack", "Finn", "Noah", "Oliver", "Jake", "Tim", "Adam",
         "Peter", "Hugo", "Oscar", "Luke", "Owen", "Theo", "Eli", "Daniel", "Henry", "Lucas", "Ryan", "Charlie")
_PET_NAMES_M = ("Rusty", "Buddy", "Bruno", "Pip", "Rocky", "Toby", "Milo", "Ziggy")
_PET_NAMES_F = ("Bella", "Daisy", "Coco", "Luna", "Rosie", "Penny", "Misty", "Poppy")
_COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "pink", "white", "black", "brown", "gold", "silver")
_ANIMALS = ("cat", "dog", "bird", "rabbit", "fox", "bear", "fish", "frog", "horse", "mouse", "owl", "duck", "lion", "cow")
_ANIMAL_PLURAL = {"fish": "fish", "mouse": "mice", "fox": "foxes"}
_ANIMAL_SOUND = {
    "cat": "meowed", "dog": "barked", "bird": "sang", "rabbit": "twitched its nose", "fox": "yelped",
    "bear": "growled", "fish": "blew bubbles", "frog": "croaked", "horse": "neighed", "mouse": "squeaked",
    "owl": "hooted", "duck": "quacked", "lion": "roared", "cow": "mooed",
}
_ANIMAL_HOME = {
    "cat": "under the bench", "dog": "by the gate", "bird": "in a tall tree", "rabbit": "in a hole by the hedge",
    "fox": "behind a big rock", "bear": "in a dark cave", "fish": "in the river", "frog": "on a lily pad",
    "horse": "in the field", "mouse": "in a tiny hole in the wall", "owl": "in an old oak tree",
    "duck": "on the pond", "lion": "in the tall grass", "cow": "in the meadow",
}
_POSITIVE = ("happy", "excited", "proud", "glad", "calm", "brave", "surprised")
_NEGATIVE = ("sad", "angry", "scared", "lonely", "worried")
_EMOTIONS = _POSITIVE + _NEGATIVE
_TOYS = ("ball", "kite", "hat", "book", "teddy bear", "toy boat", "balloon", "scarf", "drum", "robot", "doll",
         "umbrella", "bucket", "sock", "crayon", "marble", "yo-yo", "key")
_FOODS = ("apples", "cookies", "berries", "carrots", "sandwiches", "pears", "plums", "muffins", "grapes", "nuts")
_PLACES = ("park", "forest", "garden", "beach", "village", "farm", "river", "school", "hill", "lake", "market",
           "library", "meadow", "playground", "zoo", "orchard", "pond", "bakery", "harbour", "field")
_HOMES = ("a small house near the woods", "a yellow house on a hill", "a little cottage by the sea",
          "a busy town", "a quiet village", "a farm with a red barn", "a flat above a bakery",
          "a tall house with a blue door", "a cabin in the mountains", "a house next to the river")
_ADJ_CHILD = ("little", "curious", "kind", "clever", "shy", "cheerful", "funny", "small", "friendly", "busy")
_ADJ_ANIMAL = ("little", "tiny", "fluffy", "old", "young", "big", "clever", "sleepy", "hungry", "playful")
_TIMES_OF_DAY = ("morning", "afternoon", "evening", "night")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_WORD_RE = re.compile(r"[A-Za-z]+|\d")


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


# each episode returns a few sentences --------------------------------------------------------------
def _ep_lost_toy(s: _Story) -> list[str]:
    d = s.d
    spot = d.choice(("under the bed", "behind the sofa", "in the garden", "in the toy box", "under a big leaf",
                     "by the door", "in the kitchen", "on the roof of the shed"))
    return [s.fill(t, colour=s.colour, toy=s.toy, spot=spot, emo=d.choice(_NEGATIVE), emo2=d.choice(_POSITIVE))
            for t in d.choice([
                ["One day, {h.name} lost {h.his} {colour} {toy}.",
                 "{h.He} looked everywhere, but {h.he} could not find it.",
                 "{h.He} felt {emo}.",
                 "Then {f.name} came to help {h.him}.",
                 "\"Let us look {spot},\" said {f.name}.",
                 "There it was! {h.Name} was so {emo2} that {h.he} gave {f.name} a big hug."],
                ["{h.Name} could not find {h.his} {toy}. It was {colour} and very old.",
                 "\"Have you seen my {toy}?\" {h.he} asked {fam.name}.",
                 "\"I think it is {spot},\" said {fam.name}.",
                 "{h.He} ran to look, and it was there. {h.He} felt {emo2}."],
                ["The wind took {h.name}'s {colour} {toy} away.",
                 "{h.He} was {emo} and started to cry.",
                 "{f.Name} saw it first. \"Look, it is {spot}!\" {f.he} said.",
                 "Together {both.he} got it back, and {both.he} laughed."],
            ])]


def _ep_counting(s: _Story) -> list[str]:
    d = s.d
    animal = d.choice(_ANIMALS)
    start = 0 if d.chance(0.5) else d.between(1, 17)
    n = d.between(start + 3, min(start + 9, 20))
    seq = ", ".join(NUMBER_WORDS[start:n])
    count = ", ".join(_cap(w) if i == 0 else w for i, w in enumerate(NUMBER_WORDS[start:n]))
    things = d.choice((_plural(animal), "stars", "stones", "steps", d.choice(_FOODS), "shells", "flowers"))
    place = d.choice(_PLACES)
    forms = [
        ["{h.Name} wanted to count the {things} in the {place}.",
         "\"{count},\" {h.he} said.",
         "There were {n_word} {things} in all."],
        ["{f.Name} asked, \"How many {things} can you see?\"",
         "{h.Name} pointed and counted: {seq}.",
         "\"{n_cap}!\" {h.he} said, and {f.name} clapped."],
        ["At school, the teacher taught the class to count.",
         "\"{count},\" said all the children.",
         "{h.Name} counted the loudest, and {h.he} was very proud."],
        ["{h.Name} and {f.name} played hide and seek.",
         "{h.Name} closed {h.his} eyes and counted: {seq}.",
         "\"Ready or not, here I come!\" {h.he} called."],
        ["{h.Name} had {n} {food}. {h.He} gave {g} to {f.name}.",
         "Now {h.he} had {left} left, and {f.name} had {g}."],
        ["{h.Name} could count all the way to twenty.",
         "\"{to_twenty},\" {h.he} said, and {fam.name} smiled."],
    ]
    g = d.between(1, max(1, n - 1))
    return [s.fill(t, things=things, food=d.choice(_FOODS), place=place, count=count, seq=seq, n=n, n_word=NUMBER_WORDS[n - 1],
                   n_cap=_cap(NUMBER_WORDS[n - 1]), g=g, left=n - g,
                   to_twenty=", ".join([_cap(NUMBER_WORDS[0])] + list(NUMBER_WORDS[1:])))
            for t in d.choice(forms)]


def _ep_months(s: _Story) -> list[str]:
    d = s.d
    i = s.month_index
    nxt, prev = MONTHS[(i + 1) % 12], MONTHS[(i - 1) % 12]
    start = d.below(12)
    length = d.between(3, 7)
    seq_months = [MONTHS[(start + k) % 12] for k in range(length)]
    seq = ", ".join(seq_months)
    full = ", ".join(MONTHS[:11]) + " and December"
    day = d.between(1, 28)
    forms = [
        ["{h.Name} was learning the months of the year.",
         "\"{seq},\" {h.he} said slowly.",
         "\"Very good!\" said {fam.name}. \"What comes after {last}?\"",
         "\"{after_last}!\" said {h.name}."],
        ["{h.Name}'s birthday was in {month}.",
         "\"After {prev} comes {month},\" {h.he} told {f.name}. \"That is my month!\"",
         "{h.He} was so {emo} that {h.he} could not sleep."],
        ["\"What month is it?\" asked {f.name}.",
         "\"It is {month},\" said {h.name}. \"Next month is {nxt}.\"",
         "In {month}, {season_thing}."],
        ["The children sang the song of the months: {full}.",
         "{h.Name} liked {month} best, because in {month} {season_thing}."],
        ["On {month} {day}, {h.name} wrote in {h.his} diary.",
         "\"Today is a {weather} day. After {month} comes {nxt}, and then it will be {next_season}.\""],
        ["{h.Name} looked at the calendar. It said {month}.",
         "\"Before {month} comes {prev}, and after {month} comes {nxt},\" {h.he} said."],
    ]
    next_season = _SEASON_OF_MONTH[MONTHS[(i + 3) % 12]]
    return [s.fill(t, seq=seq, last=seq_months[-1], after_last=MONTHS[(start + length) % 12], month=s.month,
                   prev=prev, nxt=nxt, emo=d.choice(("happy", "excited", "glad")), season_thing=d.choice(_SEASON_THINGS[s.season]),
                   full=full, day=day, weather=d.choice(_SEASON_WEATHER[s.season]), next_season=next_season)
            for t in d.choice(forms)]


def _ep_royal(s: _Story) -> list[str]:
    d = s.d
    colour = d.choice(("red", "green", "black", "purple", "gold", "silver"))
    horse = d.choice(("white", "brown", "black"))
    forms = [
        ["One morning, a {colour} dragon flew over the castle.",
         "The king was worried, so he called his bravest knight.",
         "\"Please find out what the dragon wants,\" he said.",
         "The knight rode a {horse} horse to the dragon's cave.",
         "The dragon was not angry. It was lonely, and it only wanted a friend."],
        ["The queen sat on her throne and looked out of the window.",
         "She saw {h.name} in the garden and smiled.",
         "\"Come and have some cake,\" she said, and {h.he} ran inside."],
        ["The princess found an old crown in the castle tower.",
         "She put it on and looked in the mirror. It was too big!",
         "The prince laughed, and then he tried it on too."],
        ["A {colour} dragon lived in the hills of the kingdom.",
         "Everyone was scared of it, but {h.name} was brave.",
         "{h.He} walked up the hill and said hello to the dragon.",
         "The dragon smiled. It was a kind dragon after all."],
        ["The king lost his {metal} crown.",
         "He looked under the throne and behind the curtains.",
         "At last the queen found it in the kitchen. \"Here it is!\" she said.",
         "The king was so glad that he gave a big party for the whole kingdom."],
        ["The knight and the princess rode to the far side of the kingdom.",
         "On the way, they met a {colour} dragon.",
         "\"Who are you?\" asked the princess. She was not scared at all.",
         "\"I am the dragon of the mountain,\" it said."],
        ["{h.Name} visited the castle with {f.name}.",
         "{both.He} saw the throne, the crown and the tall tower.",
         "A kind knight showed {both.him} the king's {horse} horse."],
    ]
    if s.hero.name.startswith("the "):  # the queen should not see the queen in the garden
        forms = [f for f in forms if s.hero.name not in " ".join(f).lower()] or forms[-1:]
    return [s.fill(t, colour=colour, horse=horse, metal=d.choice(("gold", "silver"))) for t in d.choice(forms)]


def _ep_animal_meets(s: _Story) -> list[str]:
    d = s.d
    animal = d.choice(_ANIMALS)
    emo = d.choice(_NEGATIVE)
    forms = [
        ["In the {place}, {h.name} met {a_animal}.",
         "The {animal} looked {emo}.",
         "\"What is wrong?\" asked {h.name}.",
         "\"I cannot find my mother,\" said the {animal}.",
         "{h.Name} helped it look, and soon the {animal} found its mother. It was so happy."],
        ["{h.Name} heard a noise {home}.",
         "It was {a_animal}! The {animal} {sound}.",
         "{h.He} gave it some water, and the {animal} was not {emo} any more."],
        ["A {colour} {animal} came to the {place} every {tod}.",
         "{h.Name} and {f.name} gave it some food.",
         "Soon the {animal} was their friend, and {both.he} named it {pet}."],
        ["{h.Name} saw {n_word} {animals} near the {place}.",
         "One of them was very small and {emo}.",
         "{h.He} sat down quietly, and the little {animal} came closer."],
    ]
    return [s.fill(t, place=s.place, a_animal=_a(animal), animal=animal, animals=_plural(animal), emo=emo,
                   home=_ANIMAL_HOME[animal], sound=_ANIMAL_SOUND[animal], colour=d.choice(_COLOURS),
                   tod=d.choice(_TIMES_OF_DAY), pet=d.choice(_PET_NAMES_M + _PET_NAMES_F),
                   n_word=d.choice(NUMBER_WORDS[1:12]))
            for t in d.choice(forms)]


def _ep_birthday(s: _Story) -> list[str]:
    d = s.d
    age = d.between(3, 12)
    day = d.between(1, 28)
    forms = [
        ["It was {h.name}'s birthday. {h.He} was {age_word} years old today!",
         "{fam.Name} made a {colour} cake with {age} candles.",
         "{f.Name} gave {h.him} {a_gift}.",
         "{h.Name} was very {emo}."],
        ["{h.Name}'s birthday was on {month} {day}.",
         "{h.He} invited {n_word} friends to a party.",
         "They played games, sang songs and ate {food}.",
         "\"This is the best day ever,\" said {h.name}."],
        ["Tomorrow was {f.name}'s birthday, and {h.name} wanted to make a card.",
         "{h.He} used {colour} paper and {colour2} paint.",
         "The next day, {f.name} saw the card and was so {emo} that {f.he} danced."],
    ]
    return [s.fill(t, age=age, age_word=NUMBER_WORDS[age - 1] if age <= 20 else str(age), colour=d.choice(_COLOURS),
                   colour2=d.choice(_COLOURS), a_gift=_a(d.choice(_COLOURS) + " " + d.choice(_TOYS)),
                   emo=d.choice(("happy", "excited", "surprised", "glad")), month=s.month, day=day,
                   n_word=d.choice(NUMBER_WORDS[2:12]), food=d.choice(_FOODS))
            for t in d.choice(forms)]


def _ep_storm(s: _Story) -> list[str]:
    d = s.d
    forms = [
        ["That night, a big storm came.",
         "The wind blew and the rain fell hard.",
         "{h.Name} was scared, so {h.he} hid under the blanket.",
         "{fam.Name} sat with {h.him} and said, \"Be calm. The storm will pass.\"",
         "In the morning, the sky was blue again."],
        ["One {season} evening, it started to snow." if s.season == "winter" else
         "One {season} evening, it started to rain.",
         "{h.Name} and {f.name} stayed inside and played with {colour} blocks.",
         "By the next morning, everything was {wet}."],
        ["The night was dark, and {h.name} could not sleep.",
         "{h.He} heard an owl outside. \"Hoo, hoo,\" it said.",
         "{h.He} was a little worried, but then {h.he} felt brave.",
         "\"It is only an owl,\" {h.he} said, and {h.he} went back to sleep."],
    ]
    return [s.fill(t, season=s.season, colour=d.choice(_COLOURS),
                   wet="white with snow" if s.season == "winter" else "wet and shiny")
            for t in d.choice(forms)]


def _ep_baking(s: _Story) -> list[str]:
    d = s.d
    who = d.choice(("grandma", "grandpa", "mom", "dad", "mother", "father"))
    eggs = d.between(2, 6)
    forms = [
        ["{h.Name} and {h.his} {who} baked a cake.",
         "They used {eggs_word} eggs, {cups} cups of flour and some {colour} sugar.",
         "The kitchen smelled so good!",
         "When the cake was ready, they shared it with {f.name}."],
        ["On {day}, {h.name} helped {h.his} {who} make bread.",
         "{h.He} mixed the flour and water, and {h.his} {who} put it in the oven.",
         "After {minutes} minutes, the bread was ready. It was warm and brown."],
        ["\"Can I help?\" asked {h.name}.",
         "\"Yes,\" said {h.his} {who}. \"Please put {eggs} eggs in the bowl.\"",
         "{h.He} counted them carefully and did not drop a single one."],
    ]
    return [s.fill(t, who=who, eggs=eggs, eggs_word=NUMBER_WORDS[eggs - 1], cups=d.choice(NUMBER_WORDS[1:4]),
                   colour=d.choice(("white", "brown", "pink")), day=d.choice(_DAYS), minutes=d.choice((20, 30, 40, 45, 50)))
            for t in d.choice(forms)]


def _ep_pet(s: _Story) -> list[str]:
    d = s.d
    animal = d.choice(("cat", "dog", "rabbit", "fish", "mouse", "bird", "duck", "frog"))
    gender = d.choice("mf")
    pet = _Who(d.choice(_PET_NAMES_M if gender == "m" else _PET_NAMES_F), gender)
    forms = [
        ["{fam.Name} brought home a little {animal}.",
         "It was {colour} and very small.",
         "{h.Name} named {p_him} {pet}. {p_He} was the best {animal} in the world.",
         "Every {tod}, {h.name} fed {pet}, and {pet} followed {h.him} everywhere."],
        ["{h.Name} wanted a pet {animal} more than anything.",
         "\"Please, {fam.call}?\" {h.he} asked.",
         "On {month} {day}, {h.his} wish came true. The {animal} was {colour}, and {h.he} called {p_him} {pet}.",
         "{pet} was shy at first, but soon {p_he} was happy in {p_his} new home."],
        ["{pet} the {animal} ran away one {tod}.",
         "{h.Name} was so worried that {h.he} looked in every street.",
         "At last, {h.he} found {p_him} {home}.",
         "\"Silly {pet},\" {h.he} said, and {p_he} {sound}."],
    ]
    return [s.fill(t, animal=animal, pet=pet.name, p_he=pet.he, p_He=pet.He, p_him=pet.him, p_his=pet.his,
                   colour=d.choice(_COLOURS), tod=d.choice(("morning", "evening", "day")), month=s.month,
                   day=d.between(1, 28), home=_ANIMAL_HOME[animal], sound=_ANIMAL_SOUND[animal])
            for t in d.choice(forms)]


def _ep_race(s: _Story) -> list[str]:
    d = s.d
    a1, a2 = d.sample(_ANIMALS, 2)
    forms = [
        ["{h.Name} and {f.name} had a race to the {place}.",
         "\"One, two, three, go!\" shouted {fam.name}.",
         "{f.Name} ran fast, but {h.name} ran faster.",
         "{h.He} came first and {f.he} came second, and both of them were proud."],
        ["The {a1} and the {a2} had a race across the {place}.",
         "The {a1} was fast, but it stopped to sleep.",
         "The {a2} walked slowly and never stopped.",
         "In the end, the {a2} won, and it was very proud."],
        ["At school there was a sports day in {month}.",
         "{h.Name} ran in the race with {n} other children.",
         "{h.He} did not win, but {h.he} did {h.his} best and felt happy."],
    ]
    return [s.fill(t, place=s.place, a1=a1, a2=a2, month=s.month, n=d.between(3, 9)) for t in d.choice(forms)]


def _ep_garden(s: _Story) -> list[str]:
    d = s.d
    plant = d.choice(("sunflowers", "carrots", "tomatoes", "beans", "roses", "tulips", "peas"))
    seed_word = {"sunflowers": "sunflower", "carrots": "carrot", "tomatoes": "tomato", "beans": "bean",
                 "roses": "rose", "tulips": "tulip", "peas": "pea"}[plant]
    forms = [
        ["In spring, {h.name} planted {n_word} {seed_word} seeds with {h.his} grandpa.",
         "{h.He} watered them every day.",
         "By summer, the {plant} were tall and {colour}.",
         "{h.Name} was so proud of {h.his} garden."],
        ["In {month}, {h.name} and {fam.name} worked in the garden.",
         "They picked {n} {plant} and put them in a {colour} basket.",
         "\"We will eat them tomorrow,\" said {fam.name}."],
        ["{h.Name} found a tiny seed on the path.",
         "{h.He} put it in a pot and waited one week, then two weeks.",
         "One morning there was a little green leaf! {h.He} was so surprised."],
    ]
    return [s.fill(t, plant=plant, seed_word=seed_word, n=d.between(3, 15), n_word=d.choice(NUMBER_WORDS[2:12]), month=s.month,
                   colour=d.choice(("yellow", "red", "green", "orange", "purple", "pink")))
            for t in d.choice(forms)]


def _ep_trip(s: _Story) -> list[str]:
    d = s.d
    place = d.choice(("beach", "farm", "zoo", "lake", "forest", "mountains"))
    things = {
        "beach": "shells and little fish", "farm": "a cow, a horse and some ducks",
        "zoo": "a lion, a bear and a tall giraffe", "lake": "ducks and frogs",
        "forest": "a fox, an owl and a brown bear", "mountains": "goats and a big eagle",
    }[place]
    forms = [
        ["On {day}, {h.name}'s family went to the {place}.",
         "They left at {hour} o'clock in the morning.",
         "At the {place}, {h.name} saw {things}.",
         "{h.He} was tired but happy when they came home in the evening."],
        ["Last week, {h.name} and {f.name} went to the {place} with {h.his} {fam_word}.",
         "They took {n_word} sandwiches and a {colour} blanket.",
         "They saw {things}.",
         "\"Can we come back tomorrow?\" asked {f.name}."],
        ["Yesterday, {h.name} visited the {place}.",
         "{h.He} saw {things} and drew a picture of them with {h.his} {colour} crayon.",
         "Today, the picture is on the wall."],
    ]
    return [s.fill(t, place=place, things=things, day=d.choice(_DAYS), hour=d.between(6, 10),
                   n_word=d.choice(NUMBER_WORDS[1:10]), colour=d.choice(_COLOURS),
                   fam_word=d.choice(("mom", "dad", "grandma", "grandpa", "mother", "father", "brother", "sister")))
            for t in d.choice(forms)]


def _ep_feelings(s: _Story) -> list[str]:
    d = s.d
    neg = d.choice(_NEGATIVE)
    pos = d.choice(_POSITIVE)
    forms = [
        ["{f.Name} took {h.name}'s {toy} without asking.",
         "{h.Name} was angry. \"That is mine!\" {h.he} said.",
         "{f.Name} said sorry and gave it back.",
         "Then they shared it, and both of them were happy again."],
        ["{h.Name} felt {neg} because nobody wanted to play.",
         "Then {f.name} came over and asked, \"Do you want to build a sand castle with me?\"",
         "{h.Name} smiled. Now {h.he} felt {pos}."],
        ["On the first day of school, {h.name} was scared.",
         "{h.His} {fam_word} held {h.his} hand and said, \"You are brave.\"",
         "By the afternoon, {h.he} had made {n_word} new friends and felt proud."],
        ["{h.Name} had to sing in front of the whole school.",
         "{h.He} was worried, but {h.he} took a deep breath and felt calm.",
         "Everyone clapped, and {h.he} was so surprised and glad."],
    ]
    return [s.fill(t, toy=s.toy, neg=neg, pos=pos, n_word=d.choice(NUMBER_WORDS[1:5]),
                   fam_word=d.choice(("mother", "father", "mom", "dad", "grandma", "grandpa")))
            for t in d.choice(forms)]


def _ep_colours(s: _Story) -> list[str]:
    d = s.d
    c = d.sample(_COLOURS, 4)
    forms = [
        ["{h.Name} painted a picture for {fam.name}.",
         "{h.He} used {c0} for the sky, {c1} for the sun and {c2} for the grass.",
         "\"What a beautiful picture!\" said {fam.name}."],
        ["After the rain, {h.name} saw a rainbow.",
         "It was red, orange, yellow, green, blue and purple.",
         "\"Look!\" {h.he} shouted to {f.name}, and {both.he} ran outside."],
        ["{h.Name} had a box of crayons: {c0}, {c1}, {c2} and {c3}.",
         "{h.He} gave the {c3} one to {f.name}, because {f.he} liked {c3} best."],
        ["In the market, {h.name} saw {c0} apples, {c1} balloons and {c2} hats.",
         "{h.He} bought a {c2} hat with {h.his} own money."],
    ]
    return [s.fill(t, c0=c[0], c1=c[1], c2=c[2], c3=c[3]) for t in d.choice(forms)]


def _ep_time(s: _Story) -> list[str]:
    d = s.d
    forms = [
        ["Every morning, {h.name} had breakfast at {hour} o'clock.",
         "In the afternoon, {h.he} played in the {place}.",
         "In the evening, {h.he} read a book, and at night {h.he} went to sleep."],
        ["\"What will we do tomorrow?\" asked {h.name}.",
         "\"Tomorrow we will go to the {place},\" said {fam.name}.",
         "\"And yesterday we went to the {place2},\" said {h.name}. \"This week is fun!\""],
        ["In winter, {h.name} liked to build snowmen.",
         "In spring, {h.he} picked flowers, and in summer {h.he} swam in the lake.",
         "In autumn, {h.he} jumped in the leaves. Every season was fun."],
        ["It was a long day. {h.Name} worked from morning until evening.",
         "When night came, {h.he} looked at the stars and counted {n_word} of them."],
        ["One week has seven days, and {h.name} knew them all.",
         "\"Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday,\" {h.he} said.",
         "Today was {day}, {h.his} favourite day of the week."],
    ]
    p2 = d.choice([p for p in _PLACES if p != s.place])
    return [s.fill(t, hour=d.between(6, 9), place=s.place, place2=p2, n_word=d.choice(NUMBER_WORDS[4:20]),
                   day=d.choice(_DAYS)) for t in d.choice(forms)]


def _ep_help(s: _Story) -> list[str]:
    d = s.d
    forms = [
        ["{f.Name} was stuck in the mud by the {place}.",
         "{h.Name} pulled and pulled, and at last {f.name} was free.",
         "\"Thank you,\" said {f.name}. \"You are a true friend.\""],
        ["An old man dropped his {n} oranges in the street.",
         "{h.Name} helped him pick them up, one by one.",
         "The old man smiled and gave {h.him} one orange."],
        ["An old woman could not carry her bags.",
         "{h.Name} and {f.name} carried them to her house.",
         "She gave them {n_word} cookies each, and they said thank you."],
        ["A little bird fell out of its nest.",
         "{h.Name} picked it up very gently and put it back.",
         "The mother bird sang a happy song."],
    ]
    return [s.fill(t, place=s.place, n=d.between(4, 12), n_word=d.choice(NUMBER_WORDS[1:5])) for t in d.choice(forms)]


_EPISODES = (
    _ep_lost_toy, _ep_counting, _ep_months, _ep_royal, _ep_animal_meets, _ep_birthday, _ep_storm, _ep_baking,
    _ep_pet, _ep_race, _ep_garden, _ep_trip, _ep_feelings, _ep_colours, _ep_time, _ep_help,
)
# counting, months and pronoun contexts are what steering measures, so they come more often
_EPISODE_WEIGHTS = np.array([1.0, 2.0, 2.0, 1.5, 1.0, 1.0, 0.8, 0.8, 1.0, 0.8, 0.8, 0.8, 1.0, 0.8, 1.0, 0.8])
_EPISODE_CDF = np.cumsum(_EPISODE_WEIGHTS / _EPISODE_WEIGHTS.sum())


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
