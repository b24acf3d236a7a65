"""The explorer's crosscoder labels and multi-node Mapper membership in the page data (no browser)."""

import pytest

from featgeom_tda.viz.explorer import CROSSCODER_CLASSES, ExplorerFeature, read_explorer_payload, write_explorer
from viz.explorer_inputs import HOSTILE, synthetic_explorer_inputs, with_crosscoder_labels


def test_crosscoder_labels_and_node_lists_round_trip(tmp_path):
    inp = with_crosscoder_labels(synthetic_explorer_inputs(40, 30, seed=2), seed=5, multi_node=(3, 4))
    data = read_explorer_payload(write_explorer(tmp_path / "e.html", **inp, crosscoder_rule=f"rule {HOSTILE}"))
    assert data["crosscoder"] == {"classes": list(CROSSCODER_CLASSES), "rule": f"rule {HOSTILE}"}
    for side in ("a", "b"):
        d, feats = data["sides"][side], inp[f"features_{side}"]
        assert [CROSSCODER_CLASSES[c] for c in d["xc"]] == [f.crosscoder_class for f in feats]
        assert d["xcl"] == [-1 if f.crosscoder_latent is None else f.crosscoder_latent for f in feats]
        assert d["xcr"] == [f.crosscoder_correlation for f in feats]
    nodes, a = data["nodes"], data["sides"]["a"]
    assert [nodes[i] for i in a["node"][3]] == list(inp["features_a"][3].mapper_node)
    assert isinstance(a["node"][5], int) and nodes[a["node"][5]] == inp["features_a"][5].mapper_node
    assert HOSTILE not in (tmp_path / "e.html").read_text()  # the rule travels in the compressed data only


def test_no_crosscoder_keys_without_labels(tmp_path):
    data = read_explorer_payload(write_explorer(tmp_path / "e.html", **synthetic_explorer_inputs(10, 10, seed=1)))
    assert "crosscoder" not in data and "xc" not in data["sides"]["a"]


def test_a_single_node_in_a_list_is_that_node():
    assert ExplorerFeature(mapper_node=["n1"]).mapper_node == "n1"
    assert ExplorerFeature(mapper_node=[]).mapper_node is None


def test_bad_crosscoder_labels_name_the_argument():
    with pytest.raises(ValueError, match=r"crosscoder_class must be one of shared, exclusive_a"):
        ExplorerFeature(crosscoder_class="both")
    with pytest.raises(ValueError, match=r"crosscoder_latent must be a non-negative integer"):
        ExplorerFeature(crosscoder_latent=-1)
    with pytest.raises(ValueError, match=r"crosscoder_correlation must be finite"):
        ExplorerFeature(crosscoder_correlation=float("nan"))
