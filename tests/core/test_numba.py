"""configure_numba: chooses the threading layer only while the choice is open, and says so at DEBUG."""

from __future__ import annotations

import logging

import pytest

from featgeom_tda.core._numba import configure_numba

numba = pytest.importorskip("numba")


@pytest.fixture
def fresh_layer(monkeypatch):
    """numba's layer reset to "default", no env override, pool reported as not started."""
    from numba.np.ufunc import parallel

    monkeypatch.delenv("NUMBA_THREADING_LAYER", raising=False)
    monkeypatch.setattr(numba.config, "THREADING_LAYER", "default")
    monkeypatch.setattr(parallel, "_is_initialized", False)
    return parallel


def test_sets_the_requested_layer_when_open(fresh_layer, caplog):
    with caplog.at_level(logging.DEBUG, logger="featgeom_tda.core._numba"):
        assert configure_numba(threading_layer="workqueue") is numba
    assert numba.config.THREADING_LAYER == "workqueue"
    assert "set to workqueue" in caplog.text


def test_environment_variable_wins(fresh_layer, monkeypatch, caplog):
    monkeypatch.setenv("NUMBA_THREADING_LAYER", "omp")
    with caplog.at_level(logging.DEBUG, logger="featgeom_tda.core._numba"):
        configure_numba()
    assert numba.config.THREADING_LAYER == "default"
    assert "NUMBA_THREADING_LAYER=omp" in caplog.text


def test_started_pool_is_left_alone(fresh_layer, monkeypatch):
    monkeypatch.setattr(fresh_layer, "_is_initialized", True)
    configure_numba(threading_layer="workqueue")
    assert numba.config.THREADING_LAYER == "default"


def test_a_layer_already_chosen_is_kept(fresh_layer, monkeypatch):
    monkeypatch.setattr(numba.config, "THREADING_LAYER", "tbb")
    configure_numba(threading_layer="workqueue")
    assert numba.config.THREADING_LAYER == "tbb"
