"""One module per stage of a recipe run."""
