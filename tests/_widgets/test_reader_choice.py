"""Dragging a .npy / .npz / .zarr with a spectral axis into napari keeps the wavenumbers (reader choice)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QMimeData, QPointF, Qt, QUrl
from qtpy.QtGui import QDropEvent

import napari_deeper as nd
from napari_deeper._widgets import reader_choice

pytestmark = pytest.mark.gui
PLUGIN = "napari-deeper"


@pytest.fixture
def saved(tmp_path):
    """A cube saved as .npy (with its ``_wavenumbers.npy`` sidecar), as .npz and as a zarr store."""
    cell = nd.simulate.simulate_cell((6, 7), n_bands=40, seed=3)
    paths = {suffix: tmp_path / f"cube.{suffix}" for suffix in ("npy", "npz", "zarr")}
    for path in paths.values():
        nd.save_cube(cell.noisy, path, wavenumbers=cell.wavenumbers)
    assert (tmp_path / "cube_wavenumbers.npy").is_file()
    return cell, paths


def drop(viewer, path) -> None:
    """Drop ``path`` on the viewer, as dragging it from a file manager does."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    qt_viewer = viewer.window._qt_viewer
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    qt_viewer.dropEvent(event)


def test_without_a_preference_napari_has_two_readers_to_choose_from(make_napari_viewer, saved):
    from napari.errors import MultipleReaderError

    _, paths = saved
    viewer = make_napari_viewer()
    assert reader_choice.preferred_readers() == dict.fromkeys(reader_choice.PATTERNS)
    for path in paths.values():
        with pytest.raises(MultipleReaderError):  # the GUI asks, with napari's own preselected
            viewer.open(str(path), plugin=None)  # what a drop or File > Open asks


@pytest.mark.parametrize("suffix", ["npy", "npz", "zarr"])
def test_the_menu_command_makes_a_drop_keep_the_wavenumbers(make_napari_viewer, saved, suffix):
    cell, paths = saved
    path = paths[suffix]
    viewer = make_napari_viewer()
    # File > IO Utilities > Open .npy / .npz / .zarr with napari-deeper, as the menu runs it
    from napari._app_model import get_app_model

    get_app_model().commands.execute_command("napari-deeper.prefer_reader").result()
    assert reader_choice.preferred_readers() == dict.fromkeys(reader_choice.PATTERNS, PLUGIN)
    drop(viewer, path)
    (layer,) = viewer.layers
    np.testing.assert_array_equal(layer.metadata["wavenumbers"], cell.wavenumbers)
    np.testing.assert_array_equal(np.asarray(layer.data), cell.noisy)
    assert layer.source.reader_plugin == PLUGIN


def test_a_file_opened_by_napari_itself_gets_a_notice_that_fixes_it(qtbot, make_napari_viewer, saved):
    from napari.utils.notifications import notification_manager

    from napari_deeper._widgets import _display

    cell, paths = saved
    npy = paths["npy"]
    viewer = make_napari_viewer()
    _display.install(viewer)  # a napari-deeper dock or file was opened earlier in the session
    before = len(notification_manager.records)
    (bare,) = viewer.open(str(npy), plugin="napari")  # what napari's preselected reader does
    assert "wavenumbers" not in bare.metadata
    notices = [record for record in notification_manager.records[before:] if "drops its wavenumbers" in str(record.message)]
    assert len(notices) == 1
    (notice,) = notices
    labels = [label for label, _ in notice.actions]
    assert labels == ["Reopen with napari-deeper", "Always use napari-deeper"]
    dict(notice.actions)["Always use napari-deeper"](None)  # the button
    (layer,) = viewer.layers  # the bare layer was replaced
    np.testing.assert_array_equal(layer.metadata["wavenumbers"], cell.wavenumbers)
    assert reader_choice.preferred_readers()["*.npy"] == PLUGIN
    # a file without an axis gets no notice
    plain = npy.with_name("plain.npy")
    np.save(plain, cell.noisy)
    count = len(notification_manager.records)
    viewer.open(str(plain), plugin="napari")
    assert not any("drops its wavenumbers" in str(r.message) for r in notification_manager.records[count:])


def test_a_spectral_axis_is_found_from_names_only(saved, tmp_path):
    cell, paths = saved
    assert all(reader_choice.has_spectral_axis(path) for path in paths.values())
    bare = tmp_path / "bare.zarr"
    nd.save_cube(cell.noisy, bare)  # no axis given: the store holds none
    assert not reader_choice.has_spectral_axis(bare)
    assert not reader_choice.has_spectral_axis(tmp_path / "missing.zarr")
