"""The episodes a story is built from (a lost toy, counting, the months, a dragon, a birthday, ...)."""

from __future__ import annotations

import numpy as np

from featgeom_tda.sources.corpus.vocabulary import (
    MONTHS, NUMBER_WORDS, _ANIMALS, _ANIMAL_HOME, _ANIMAL_SOUND, _COLOURS, _DAYS, _FOODS, _NEGATIVE,
    _PET_NAMES_F, _PET_NAMES_M, _PLACES, _POSITIVE, _SEASON_OF_MONTH, _SEASON_THINGS, _SEASON_WEATHER,
    _TIMES_OF_DAY, _TOYS,
)
from featgeom_tda.sources.corpus.characters import _Who, _a, _cap, _plural
from featgeom_tda.sources.corpus.story import _Story


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


