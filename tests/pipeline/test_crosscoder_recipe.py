"""The recipe's crosscoder section: off by default, and every bad value a one-line error naming the field."""

import pytest
import yaml

from featgeom_tda.pipeline.packaged import packaged_recipe
from featgeom_tda.pipeline.recipe import CrosscoderSpec, RecipeError, recipe_from_dict


def _recipe(crosscoder):
    data = yaml.safe_load(packaged_recipe("embedded").read_text())
    data["crosscoder"] = crosscoder
    return recipe_from_dict(data)


def test_off_by_default_and_the_embedded_recipe_spells_out_the_defaults():
    data = yaml.safe_load(packaged_recipe("embedded").read_text())
    assert recipe_from_dict(data).crosscoder == CrosscoderSpec()
    del data["crosscoder"]
    assert recipe_from_dict(data).crosscoder == CrosscoderSpec() and not CrosscoderSpec().enabled
    assert _recipe({"enabled": True, "k": 4}).crosscoder.k == 4


@pytest.mark.parametrize("section, message", [
    ({"k": 0}, r"crosscoder\.k must be >= 1, got 0"),
    ({"width_multiple": 0}, r"crosscoder\.width_multiple must be >= 1"),
    ({"training_tokens": -5}, r"crosscoder\.training_tokens must be >= 1"),
    ({"batch_size": 1.5}, r"crosscoder\.batch_size: expected an integer, got 1\.5"),
    ({"exclusive_threshold": 0.5}, r"crosscoder\.exclusive_threshold must be in \(0, 0\.5\), got 0\.5"),
    ({"shared_band": [0.7, 0.3]}, r"crosscoder\.shared_band must satisfy exclusive_threshold 0\.1 <= low <= high <= 0\.9"),
    ({"shared_band": [0.05, 0.5]}, r"crosscoder\.shared_band must satisfy"),
    ({"shared_band": [0.4]}, r"crosscoder\.shared_band must be two numbers \[low, high\], got \[0\.4\]"),
    ({"nu_threshold": 0}, r"crosscoder\.nu_threshold must be > 0"),
    ({"enabled": "yes"}, r"crosscoder\.enabled: expected true or false, got 'yes'"),
    ({"widht_multiple": 2}, r"unknown key 'widht_multiple'; valid keys are enabled, width_multiple"),
])
def test_bad_values_are_one_line_errors(section, message):
    with pytest.raises(RecipeError, match=message) as info:
        _recipe(section)
    assert "\n" not in str(info.value)
