"""The Mapper HTML page: self-contained, every data string escaped; KeplerMapper's page escaped too."""

import json
import re

import numpy as np
import pytest

from analyses.topology.shapes import noisy_circle, toy_graph, two_clusters
from featgeom_tda.analyses.topology import mapper_graph
from featgeom_tda.viz.mapper_html import save_mapper_html

EXTERNAL = re.compile(r"https?://|//cdn|\bsrc\s*=|<link\b|@import|url\(", re.IGNORECASE)
XSS = "<script>alert(1)</script>"


def test_self_contained_html_has_no_external_url_and_escapes(tmp_path):
    x = noisy_circle(n=150)
    ann = {"top_tokens": [[XSS, "the"]] * 150, "names": [f"</script><b>{i}</b>" for i in range(150)],
           "concept": ["a&b"] * 150}
    g = mapper_graph(x, metric="euclidean", lens_components=1, n_cubes=5, annotations=ann)
    path = save_mapper_html(g, tmp_path / "m.html", title=f"title {XSS}", color_by=np.arange(150.0), color_name="<i>idx</i>")
    text = path.read_text(encoding="utf-8")
    assert EXTERNAL.search(text) is None
    assert XSS not in text and "<b>0</b>" not in text and "<i>idx</i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # shown as text in the tooltips
    assert text.count("<script") == 2 and text.count("</script>") == 2  # only the page's own two scripts
    assert text.count('<circle class="node"') == len(g.nodes)
    assert text.count('<line class="edge"') == len(g.edges)
    # the embedded JSON decodes back to the original strings
    blob = re.search(r'<script type="application/json" id="mapper-data">(.*?)</script>', text, re.S).group(1)
    data = json.loads(blob)
    assert data["features"][0].count(XSS) == 1 and len(data["nodes"]) == len(g.nodes)
    assert data["nodes"][0]["color"] == pytest.approx(float(np.mean(g.nodes[g.node_ids[0]])))


def test_kmapper_html_escapes_tooltips(tmp_path):
    g = mapper_graph(two_clusters(n=30, d=4), metric="euclidean", n_cubes=3,
                     annotations={"top_tokens": [[XSS]] * 60})
    text = save_mapper_html(g, tmp_path / "k.html", self_contained=False, title="<b>t</b>").read_text(encoding="utf-8")
    assert XSS not in text and "<b>t</b>" not in text
    assert "KeplerMapper" in text


def test_page_of_a_graph_without_annotations(tmp_path):
    g = toy_graph()
    text = save_mapper_html(g, tmp_path / "t.html").read_text(encoding="utf-8")
    assert EXTERNAL.search(text) is None
    assert text.count('<circle class="node"') == 5 and text.count('<line class="edge"') == 2
    blob = re.search(r'<script type="application/json" id="mapper-data">(.*?)</script>', text, re.S).group(1)
    data = json.loads(blob)
    assert "features" not in data and data["color_name"] == "lens 0"
    assert [n["size"] for n in data["nodes"]] == [3, 2, 2, 1, 2]


def test_bad_inputs_raise_value_errors(tmp_path):
    g = toy_graph()
    with pytest.raises(ValueError, match="color_by"):
        save_mapper_html(g, tmp_path / "x.html", color_by=np.zeros(3))
    with pytest.raises(ValueError, match="color_by contains NaN"):
        save_mapper_html(g, tmp_path / "x.html", color_by=np.full(9, np.nan))
    with pytest.raises(ValueError, match="MapperGraph"):
        save_mapper_html({"nodes": {}}, tmp_path / "x.html")
