"""Report sections built from stage results: SVCCA scores stand beside the components they used."""

import numpy as np

from featgeom_tda.analyses.geometry import compare_concept_subspaces, svcca_result
from featgeom_tda.core.types import FeatureMatching
from featgeom_tda.report.sections import similarity_section, subspaces_section
from featgeom_tda.results import GeometryResult, MetricScore, PairGeometry, SpectraResult


def _geometry(grid=None, subspaces=()):
    return GeometryResult(grid=grid or {}, heatmaps={}, subspaces=list(subspaces),
                          spectra=SpectraResult(rows=[], decoder_distance_main_pair=None, plot=""))


def test_the_svcca_row_names_its_components_and_the_number_of_pairs():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((145, 64)), rng.standard_normal((145, 64))
    full = svcca_result(X, Y)
    entry = PairGeometry(a="A", b="B", n_pairs=145, metrics={"svcca": MetricScore(score=full.score), "cka": MetricScore(score=0.5)},
                         svcca_components=[full.n_components_x, full.n_components_y], svcca_details=full.summary())
    table = similarity_section(_geometry({"A|B": entry})).tables[0]
    labels = [row[3] for row in table.rows]
    assert "SVCCA (k_a=36, k_b=36 of n=145)" in labels  # capped at 145 // 4 a side, well below saturation
    assert "linear CKA" in labels


def test_a_saturated_concept_svcca_is_shown_with_its_reason_never_as_a_score():
    rng = np.random.default_rng(1)
    Wa, Wb = rng.standard_normal((12, 16)), rng.standard_normal((12, 16))
    labels = {"numbers": list(range(10))}
    matching = FeatureMatching(index_a=np.arange(10), index_b=np.arange(10), correlation=np.full(10, 0.9))
    results = compare_concept_subspaces(
        Wa, Wb, labels, labels, metrics=("svcca", "cka"), min_features=3, n_permutations=19, seed=0,
        matching=matching, metric_options={"svcca": {"n_components": 6}},  # 6 + 6 > 10 - 1
    )
    rows = subspaces_section(_geometry(subspaces=[r.to_dict() for r in results])).tables[0].rows
    svcca_rows = [row for row in rows if str(row[4]).startswith("SVCCA")]
    assert len(svcca_rows) == 1
    assert "not computed (SVCCA is saturated" in svcca_rows[0][4] and svcca_rows[0][5] is None
    assert any(row[4] == "linear CKA" and row[5] is not None for row in rows)


def test_the_subspace_table_shows_both_variants_side_by_side_with_nulls():
    from functools import partial

    import scipy.sparse as sp

    from featgeom_tda.analyses.geometry import compare_rematched_subspaces
    from featgeom_tda.analyses.matching import match_features
    from featgeom_tda.core.types import FeatureActivations

    rng = np.random.default_rng(1)
    acts = rng.exponential(size=(500, 12)) * (rng.random((500, 12)) < 0.3)
    W = rng.standard_normal((12, 8))
    labels = {"numbers": list(range(10)), "months": [0, 1]}
    matching = FeatureMatching(index_a=np.arange(12), index_b=np.arange(12), correlation=np.full(12, 0.9))
    restricted = compare_concept_subspaces(W, W, labels, labels, metrics=("svcca", "cka"), min_features=3,
                                           n_permutations=19, matching=matching)
    rematched = compare_rematched_subspaces(
        FeatureActivations(sp.csr_matrix(acts)), FeatureActivations(sp.csr_matrix(acts)), W, W, labels, labels,
        match=partial(match_features, mode="one-to-one"), metrics=("svcca", "cka"), min_features=3, n_permutations=19)
    geo = _geometry(subspaces=[r.to_dict() for r in restricted])
    geo.keyword_subspaces = [r.to_dict() for r in rematched]
    table = subspaces_section(geo).tables[0]
    assert table.columns[-2:] == ["global matching, pairs labelled on both sides",
                                  "keyword selection, re-matched in the concept"]
    cka = next(row for row in table.rows if row[0] == "numbers" and row[4] == "linear CKA")
    assert cka[1] == "10 / 10 / 10" and cka[2] == "10 / 10 / 10" and cka[3] > 0.99
    for cell in cka[5:]:
        assert cell.score > 0.99 and cell.null_mean is not None and cell.p_value == 1 / 20
    svcca = next(row for row in table.rows if row[0] == "numbers" and row[4].startswith("SVCCA"))
    assert "of n=10" in svcca[4]
    months = [row for row in table.rows if row[0] == "months"]
    assert len(months) == 1 and months[0][5].startswith("skipped: ") and months[0][6].startswith("skipped: ")
