"""Which reader napari uses for a dropped ``.npy`` / ``.npz`` / ``.zarr``: napari-deeper's keeps the
wavenumbers.

napari's own reader also claims ``*.npy``, ``*.npz`` and ``*.zarr``, and npe2 gives readers no priority
(the compatible readers of a file are an unordered set), so napari asks which reader to use,
with its own preselected, which opens the bare array: a ``.npy`` cube's ``_wavenumbers.npy``
sidecar, or the axis array of an ``.npz`` file or a zarr store, is lost. What napari offers is a per-pattern preference
(``settings.plugins.extension2reader``; the dialog's "remember" box, or Preferences > Plugins).
This module sets it for the user when asked (File > IO Utilities, or the notice below), and
:func:`notice_if_axis_dropped` tells the user when another reader opened a file that has a spectral
axis, with buttons to reopen it with napari-deeper and to make napari-deeper the reader for
these files from then on.
"""

from __future__ import annotations

import os
from pathlib import Path

PLUGIN = "napari-deeper"
#: the patterns napari-deeper is made the preferred reader for (napari's own reader claims them too);
#: napari matches a folder by its path with a separator appended, hence the zarr store's pattern
PATTERNS = ("*.npy", "*.npz", f"*.zarr{os.sep}")
SUFFIXES = tuple(pattern[1:].rstrip(os.sep) for pattern in PATTERNS)


def preferred_readers() -> dict[str, str | None]:
    """The reader napari is set to use for each of :data:`PATTERNS` (None: it asks)."""
    from napari.settings import get_settings

    current = get_settings().plugins.extension2reader
    return {pattern: current.get(pattern) for pattern in PATTERNS}


def prefer_napari_deeper() -> list[str]:
    """Make napari open :data:`PATTERNS` with napari-deeper; returns the patterns changed.

    napari keeps the choice in its settings (Preferences > Plugins, where it can be undone).
    """
    from napari.settings import get_settings
    from napari.utils.notifications import show_info

    settings = get_settings()
    current = dict(settings.plugins.extension2reader)
    changed = [pattern for pattern in PATTERNS if current.get(pattern) != PLUGIN]
    current.update({pattern: PLUGIN for pattern in PATTERNS})
    settings.plugins.extension2reader = current
    if changed:
        show_info(
            f"napari-deeper now opens {', '.join(PATTERNS)} files (their wavenumbers kept); "
            "change it in Preferences > Plugins."
        )
    return changed


def has_spectral_axis(path) -> bool:
    """Whether napari-deeper would find a spectral axis with this .npy/.npz/.zarr (a sidecar, an axis
    array); reads names only, never the data."""
    import numpy as np

    from ..io._read import WAVELENGTH_KEYS, WAVENUMBER_KEYS, sidecar_names

    path = Path(path)
    if path.suffix.lower() == ".npy":
        return any(path.with_name(name).is_file() for name, _unit in sidecar_names(path.stem))
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                names = {name.lower() for name in archive.files}
        except (OSError, ValueError):
            return False
        return bool(names & {key.lower() for key in (*WAVENUMBER_KEYS, *WAVELENGTH_KEYS)})
    if path.suffix.lower() == ".zarr":
        from ..io._zarr import AXIS_NAMES, is_store

        if not is_store(path):
            return False
        import zarr

        try:
            node = zarr.open_group(str(path), mode="r")
        except Exception:  # noqa: BLE001 - a single array or an unreadable store: no axis to keep
            return False
        return bool(set(node.array_keys()) & set(AXIS_NAMES))
    return False


def notice_if_axis_dropped(viewer, layer) -> bool:
    """When another reader opened a .npy/.npz/.zarr that has a spectral axis, say so and offer to fix it.

    The notification's buttons reopen the file with napari-deeper (replacing the layer) and make
    napari-deeper the reader for these files. Returns whether a notice was shown.
    """
    from napari.utils.notifications import Notification, NotificationSeverity, notification_manager

    source = getattr(layer, "source", None)
    path = getattr(source, "path", None)
    reader = getattr(source, "reader_plugin", None)
    if not path or reader in (None, PLUGIN) or Path(path).suffix.lower() not in SUFFIXES:
        return False
    if not has_spectral_axis(path):
        return False

    def reopen(_notification=None) -> None:
        index = viewer.layers.index(layer) if layer in viewer.layers else None
        opened = viewer.open(path, plugin=PLUGIN)
        if index is not None and opened:
            viewer.layers.remove(layer)

    def always(_notification=None) -> None:
        prefer_napari_deeper()
        reopen()

    notification_manager.dispatch(Notification(
        f"{Path(path).name} was opened by the '{reader}' reader, which drops its wavenumbers. "
        "napari-deeper's reader keeps them.",
        severity=NotificationSeverity.INFO,
        actions=[("Reopen with napari-deeper", reopen), ("Always use napari-deeper", always)],
    ))
    return True
