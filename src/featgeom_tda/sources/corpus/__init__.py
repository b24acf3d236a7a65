"""A seeded generator of short children's stories in plain English, the corpus of the embedded default.

Every concept group of ``sources/data/concepts.yaml`` (royalty, family, pronouns, months, numbers, colours,
animals, emotions, time) occurs in natural contexts, and the contexts that steering tasks measure are
common: month sequences ("January, February, March"), "after March comes April", counting ("one, two,
three"), and pronoun agreement (a boy or a king is followed by "he", a girl or a queen by "she", an
unnamed animal or a thing by "it", a group by "they").

Stories are built from an opening, a family line, two to four episodes drawn from many kinds (a lost
toy, counting, the months, a dragon at the castle, a birthday, a storm, baking, a new pet, a race, ...)
and an ending. Every choice comes from one ``np.random.default_rng(seed)``, so a seed fixes the corpus.
"""

from featgeom_tda.sources.corpus.generate import concept_counts, generate_corpus, split_words, word_counts
from featgeom_tda.sources.corpus.vocabulary import MONTHS, NUMBER_WORDS

__all__ = ["generate_corpus", "concept_counts", "word_counts", "split_words", "MONTHS", "NUMBER_WORDS"]
