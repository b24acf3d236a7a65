"""Sources: the corpus, tokenizer, models and SAEs that activations and weights come from."""
