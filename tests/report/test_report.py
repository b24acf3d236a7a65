import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from featgeom_tda.report import Figure, Section, Table, write_report, write_results_json

URL = re.compile(r"https?://|(src|href)=[\"']//", re.I)


@pytest.fixture
def png(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "fig.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def test_report_inlines_images_escapes_data_and_has_no_url(tmp_path, png):
    evil = "<script>alert(1)</script>"
    sections = [
        Section("pairs", "Top pairs", intro="pairs", tables=[Table("pairs", ["a", "token"], [[1, evil], [2, 0.5]], csv_name="pairs.csv")]),
        Section("fig", "Figures", figures=[Figure(f"caption {evil}", png)], links=[("mapper", "mapper_a.html")]),
    ]
    path = write_report(tmp_path, "title", sections, summary=[("pairs", 2)])
    html = path.read_text()
    assert evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "data:image/png;base64," in html
    assert not URL.search(html), URL.search(html)
    assert 'id="pairs"' in html and 'id="fig"' in html
    assert (tmp_path / "pairs.csv").read_text().splitlines()[1] == f"1,{evil}"


def test_report_refuses_external_links(tmp_path):
    with pytest.raises(ValueError, match=r"is not a local relative path"):
        write_report(tmp_path, "t", [Section("x", "X", links=[("bad", "https://example.org")])])


def test_results_json_is_strict(tmp_path):
    import numpy as np

    p = write_results_json(tmp_path / "r.json", {"a": float("nan"), "b": np.float32(1.5), "c": np.arange(2)})
    assert json.loads(p.read_text()) == {"a": None, "b": 1.5, "c": [0, 1]}


@pytest.mark.parametrize("href", [
    "https://example.org", "//example.org/x", "javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:alert(1)",
    "data:text/html,<b>x</b>", "mailto:a@b.c", "/etc/passwd", "file:///etc/passwd", "",
])
def test_report_refuses_every_non_local_link(tmp_path, href):
    with pytest.raises(ValueError, match="link"):
        write_report(tmp_path, "t", [Section("x", "X", links=[("bad", href)])])


@pytest.mark.parametrize("href", ["mapper_a.html", "../topology/mapper_a.html", "sub/dir/page.html#node-3"])
def test_report_keeps_relative_links(tmp_path, href):
    html = write_report(tmp_path, "t", [Section("x", "X", links=[("ok", href)])]).read_text()
    assert f'href="{href}"' in html
