"""Shared fixtures. GUI tests use napari's ``make_napari_viewer`` (pytest-qt, under Xvfb)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_deeper._sample_data import THP1_FILE

pytest_plugins = ("pytester",)

#: The project's shared data folder beside the checkout; optional (a fresh clone has none).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: The shared copy of the THP-1 map that the package ships; tests that compare with it skip
#: at collection when it is absent.
SHARED_THP1 = SHARED_DATA / "thp1_witec_40x40x500.mat"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Give a test whose setup skipped or failed a ``rep_call`` too (the setup's report).

    napari's ``make_napari_viewer`` teardown reads ``request.node.rep_call``, which only exists
    when the test body ran: a fixture that skips or fails after it is set up would add an
    ``AttributeError`` at teardown. With the setup's report as ``rep_call``, a skipped setup
    tears down like a passed test (leak check included) and a failed one like a failed test.
    ``tests/test_fixture_order.py`` checks this.
    """
    report = yield
    if report.when == "setup" and not report.passed and not hasattr(item, "rep_call"):
        item.rep_call = report
    return report


@pytest.fixture
def thp1_path() -> Path:
    """The real WITec THP-1 export that the package ships as sample data (BSD-3-Clause)."""
    return THP1_FILE


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
