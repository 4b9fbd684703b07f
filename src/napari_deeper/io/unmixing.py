"""Unmixing exports: the folder the Unmix dock's *Export unmixing...* writes, without Qt.

One export folder holds, per target image, ``<target>_abundance.tif`` (k pages; component names,
the spectral axis and each map's provenance in the TIFF's JSON description),
``<target>_labels.tif`` (dominant component, 0 = unassigned) and ``<target>_residual.tif``; the
endmember spectra as ``endmembers.csv`` (which the dock loads back); and ``unmixing.json`` with the
parameters, the components, the files of each target and whatever else the caller records. The
Unmix dock and the batch (:mod:`napari_deeper.batch`) both write it with :func:`write_unmixing`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from .endmembers import save_endmembers_csv

#: Export folders are ``<prefix>NNN``: 001, 002, ...
EXPORT_PREFIX = "unmixing-"
#: The maps of one target: file suffix -> axis labels.
MAPS = {"abundance": ["component", "y", "x"], "labels": ["y", "x"], "residual": ["y", "x"]}


def next_free_folder(directory, prefix: str = EXPORT_PREFIX) -> Path:
    """Create and return ``directory/<prefix>NNN``, the first such folder that does not exist."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"cannot export into {directory}: it is not an existing folder")
    taken = [int(m.group(1)) for p in directory.iterdir() if (m := re.fullmatch(rf"{prefix}(\d+)", p.name))]
    number = max(taken, default=0) + 1
    while True:
        folder = directory / f"{prefix}{number:03d}"
        try:
            folder.mkdir()
        except FileExistsError:
            number += 1
            continue
        return folder


def file_stem(name: str) -> str:
    """A layer or input name made safe as a file name."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "layer"


def write_unmixing(
    folder,
    targets: dict,
    endmembers,
    wavenumbers,
    components,
    record: dict | None = None,
    provenance: Callable[[str, str], dict] | None = None,
    grids: dict | None = None,
) -> Path:
    """Write one unmixing run into the existing folder ``folder`` and return it.

    ``targets`` maps each target's name to its maps (an object with ``abundances`` ``(k, Y, X)``,
    ``labels`` and ``residual`` ``(Y, X)``, such as :class:`~napari_deeper.unmix.TargetResult`).
    ``provenance(target, kind)`` gives each map's provenance record; ``grids`` maps a target to
    its ``scale`` and ``translate``. ``record`` holds the other fields of ``unmixing.json``
    (parameters, where the endmembers came from, ...); the files, components and the CSV's name
    are added here.
    """
    from ..provenance import KEY
    from .layer_writers import write_labels_tiff, write_tiff

    folder = Path(folder)
    files: dict[str, dict] = {}
    for target, maps in targets.items():
        stem = file_stem(target)
        written = {}
        for kind, axis_labels in MAPS.items():
            path = folder / f"{stem}_{kind}.tif"
            attributes = {
                "name": f"{target} · {kind}",
                "metadata": {KEY: provenance(target, kind) if provenance is not None else {}},
                "axis_labels": axis_labels,
                **((grids or {}).get(target) or {}),
            }
            writer = write_labels_tiff if kind == "labels" else write_tiff
            data = {"abundance": maps.abundances, "labels": maps.labels, "residual": maps.residual}[kind]
            writer(str(path), data, attributes)
            written[kind] = path.name
        files[target] = written
    save_endmembers_csv(folder / "endmembers.csv", endmembers, wavenumbers, list(components))
    document = {
        "operation": "unmix",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "napari_deeper_version": __version__,
        **(record or {}),
        "components": list(components),
        "endmembers_csv": "endmembers.csv",
        "targets": files,
    }
    (folder / "unmixing.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    return folder
