import numpy as np
import pytest
import torch

from featgeom_tda.core import _validation as v


def test_check_rank_names_argument_and_shapes():
    with pytest.raises(ValueError, match=r"X must be 2-D, got 1-D shape \(4,\)"):
        v.check_rank(np.zeros(4), "X", 2)


def test_check_finite_counts_and_locates():
    x = np.zeros((3, 3))
    x[1, 2] = np.nan
    x[2, 0] = -np.inf
    with pytest.raises(ValueError, match=r"X contains 2 NaN or inf values \(first at index \[1, 2\]\)"):
        v.check_finite(x, "X")
    with pytest.raises(ValueError, match=r"T contains 1 NaN or inf values"):
        v.check_finite(torch.tensor([1.0, float("nan")]), "T")


def test_check_same_rows_message():
    with pytest.raises(ValueError, match=r"X has 1200 rows but Y has 1199; paired metrics need the same rows"):
        v.check_same_rows(np.zeros((1200, 2)), "X", np.zeros((1199, 3)), "Y", what="paired metrics")


def test_check_not_empty():
    with pytest.raises(ValueError, match=r"X must not be empty, got shape \(3, 0\)"):
        v.check_not_empty(np.zeros((3, 0)), "X")


def test_choice_int_fraction():
    with pytest.raises(ValueError, match=r"mode must be one of 'a', 'b'; got 'c'"):
        v.check_choice("c", "mode", ["a", "b"])
    with pytest.raises(ValueError, match=r"k must be an integer >= 1; got 0"):
        v.check_positive_int(0, "k")
    with pytest.raises(ValueError, match=r"k must be an integer >= 1; got True"):
        v.check_positive_int(True, "k")
    with pytest.raises(ValueError, match=r"variance must be a number in \(0, 1\]"):
        v.check_fraction(1.5, "variance")
    assert v.check_fraction(1, "variance") == 1.0


def test_as_float_matrix_from_torch_and_errors():
    arr = v.as_float_matrix(torch.ones(3, 2), "X")
    assert arr.dtype == np.float64 and arr.shape == (3, 2)
    with pytest.raises(ValueError, match=r"X has 2 rows; this needs at least 3"):
        v.as_float_matrix(np.ones((2, 2)), "X", min_rows=3)
    with pytest.raises(ValueError, match=r"X must be a dense array, got sparse"):
        import scipy.sparse as sp

        v.as_float_matrix(sp.eye(3), "X")


@pytest.mark.parametrize("bad", [True, False, np.bool_(True)])
def test_bools_are_not_numbers(bad):
    """Issue 14, class 9: ``threshold=True`` was taken as 1.0."""
    with pytest.raises(ValueError, match=r"frac must be a number in \(0, 1\]; got (np\.)?(True|False|np\.True_)"):
        v.check_fraction(bad, "frac")
    with pytest.raises(ValueError, match=r"t must be a number in \[-1, 1\]"):
        v.check_number(bad, "t", low=-1, high=1)
    with pytest.raises(ValueError, match=r"k must be an integer >= 1"):
        v.check_positive_int(bad, "k")


def test_check_number_ranges_and_types():
    assert v.check_number(np.float32(0.5), "t", low=-1, high=1) == 0.5
    assert v.check_number(np.array(3), "t") == 3.0
    assert v.check_number(float("inf"), "t", low=0, low_open=True, allow_inf=True) == float("inf")
    with pytest.raises(ValueError, match=r"t must be a number in \(0, inf\] \(finite\); got inf"):
        v.check_number(float("inf"), "t", low=0, low_open=True)
    with pytest.raises(ValueError, match=r"t must be a number in \[-inf, inf\]; got nan"):
        v.check_number(float("nan"), "t", allow_inf=True)
    with pytest.raises(ValueError, match=r"t must be a number in \(0, 1\); got 1"):
        v.check_number(1, "t", low=0, high=1, low_open=True, high_open=True)
    with pytest.raises(ValueError, match=r"t must be a number in \[0, 1\]; got '0.5'"):
        v.check_number("0.5", "t", low=0, high=1)
    with pytest.raises(ValueError, match=r"t must be a number in \[0, 1\]; got None"):
        v.check_number(None, "t", low=0, high=1)
