"""Typed stage results: exact round trips through JSON, and loud failures on renamed or missing keys."""

import json

import pytest

from featgeom_tda.results import STAGE_RESULTS, MetricScore, PairGeometry, ResultError

from report.test_comparison_report import stage_payloads


def test_every_stage_result_round_trips_through_json(tmp_path):
    for name, data in stage_payloads(tmp_path).items():
        typed = STAGE_RESULTS[name].from_dict(data)
        again = STAGE_RESULTS[name].from_dict(json.loads(json.dumps(typed.to_dict())))
        assert again == typed, name


def test_nested_values_become_dataclasses(tmp_path):
    geo = STAGE_RESULTS["geometry"].from_dict(stage_payloads(tmp_path)["geometry"])
    entry = geo.grid["A__h--B__h"]
    assert isinstance(entry, PairGeometry) and isinstance(entry.metrics["svcca"], MetricScore)
    assert entry.metrics["svcca"].p_value == 0.001


def test_renamed_key_is_an_error_naming_it():
    with pytest.raises(ResultError, match=r"unknown key 'nul_mean'; MetricScore has score, null_mean"):
        MetricScore.from_dict({"score": 1.0, "nul_mean": 0.2})


def test_missing_key_is_an_error_naming_it():
    with pytest.raises(ResultError, match=r"GeometryResult: missing key 'heatmaps'"):
        STAGE_RESULTS["geometry"].from_dict({"grid": {}, "subspaces": [], "spectra": {"rows": [], "plot": "",
                                                                                     "decoder_distance_main_pair": None}})


def test_wrong_shape_is_an_error_with_its_path():
    with pytest.raises(ResultError, match=r"MatchingResult.pairs: expected a mapping, got list"):
        STAGE_RESULTS["matching"].from_dict({"pairs": [], "main_pair": "x", "histogram": "h"})
