"""Word lists of the generated stories: names, animals, colours, months, numbers, places, feelings."""

from __future__ import annotations

import re


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


