"""Shared fixtures. GUI tests use napari's ``make_napari_viewer`` (pytest-qt, under Xvfb)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_deeper._sample_data import THP1_FILE

pytest_plugins = ("pytester",)


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


class RemovalDuringRun:
    """Deletes layers from the viewer while a dock's run is going, and keeps the warnings shown."""

    def __init__(self, monkeypatch):
        from napari_deeper._widgets import _runner

        self.warnings: list[str] = []
        self.busy_when_removed: bool | None = None
        monkeypatch.setattr(_runner, "show_warning", self.warnings.append)

    def arm(self, viewer, runner, *layers) -> None:
        """Delete ``layers`` (as the layer list's delete button does) at the run's first progress.

        Progress reaches the main thread before the result does, so the layers are gone before
        the dock adds its results.
        """

        def delete(value: int) -> None:
            if value <= 0 or self.busy_when_removed is not None:
                return
            self.busy_when_removed = runner.busy
            viewer.layers.selection.clear()
            viewer.layers.selection.update(layers)
            viewer.layers.remove_selected()

        runner.progress.valueChanged.connect(delete)


@pytest.fixture
def removal_during_run(monkeypatch) -> RemovalDuringRun:
    return RemovalDuringRun(monkeypatch)


@pytest.fixture
def user_models(tmp_path, monkeypatch) -> Path:
    """An empty user-model folder, so tests never see or touch the real one."""
    folder = tmp_path / "models"
    monkeypatch.setenv("NAPARI_DEEPER_MODELS", str(folder))
    return folder


@pytest.fixture
def notifications(monkeypatch) -> dict[str, list[str]]:
    """What the plugin's reader told the user, by kind (info, warning, error)."""
    from napari_deeper import _reader

    said = {"info": [], "warning": [], "error": []}
    for kind in said:
        monkeypatch.setattr(_reader, f"show_{kind}", said[kind].append)
    return said


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
