"""Shared fixtures. GUI tests use napari's ``make_napari_viewer`` (pytest-qt, under Xvfb)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
THP1 = SHARED_DATA / "thp1_witec_40x40x500.mat"


@pytest.fixture
def thp1_path() -> Path:
    """The real WITec THP-1 export beside the repository, or a skip that says why."""
    if not THP1.exists():
        pytest.skip(f"real data not found at {THP1} (the shared data folder is not beside the checkout)")
    return THP1


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
