"""Which files a batch reads, and the output folder name each one gets.

``INPUT`` arguments name files, folders or glob patterns. A folder gives every file in it whose
suffix :func:`~napari_deeper.io.load_cube` reads (``--recursive``: its sub-folders too), except
the spectral-axis sidecars of another file there (``x_wavenumbers.npy`` beside ``x.npy``) and the
batch's own output folder. A file that is named but missing stays in the list: it fails alone,
with its error in the summary.

Each input is written to ``OUT/<stem>``. Inputs whose stems collide (``a/x.mat`` and ``b/x.mat``,
or ``x.mat`` and ``x.npy``) are told apart by the part of their paths that differs (``a_x``,
``b_x``; ``x_mat``, ``x_npy``), so no input overwrites another; the names depend only on the
set of inputs, so the same command gives the same names on a rerun.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from ..io._read import EXTENSIONS, sidecar_names

_GLOB = re.compile(r"[*?\[]")


def find_inputs(specs, recursive: bool = False, exclude=None) -> list[Path]:
    """The input files named by ``specs`` (files, folders, globs), absolute, sorted, unique.

    ``exclude`` is a folder to leave out (the output folder). Raises a ``ValueError`` when
    nothing is found, naming what was looked at.
    """
    specs = [specs] if isinstance(specs, (str, os.PathLike)) else list(specs)
    if not specs:
        raise ValueError("no INPUT given: name cube files, folders or glob patterns")
    skip = Path(exclude).resolve() if exclude is not None else None
    found: list[Path] = []
    for spec in specs:
        text = os.fspath(spec)
        if _GLOB.search(text) and not Path(text).exists():
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            found.extend(p for m in matches for p in (_folder(m, recursive, skip) if m.is_dir() else [m]))
        elif Path(text).is_dir():
            found.extend(_folder(Path(text), recursive, skip))
        else:
            found.append(Path(text))  # a file, or a missing one that will fail with its reason
    unique = sorted({p.resolve() for p in found if skip is None or not _inside(p.resolve(), skip)})
    readable = [p for p in unique if not p.exists() or p.suffix.lower() in EXTENSIONS or p in _named(specs)]
    if not readable:
        raise ValueError(
            f"no input files found in {', '.join(map(str, specs))}: napari-deeper reads {', '.join(EXTENSIONS)}"
        )
    return _without_sidecars(readable)


def _named(specs) -> set[Path]:
    """Files named one by one (kept whatever their suffix, so that they fail with the reason)."""
    return {Path(s).resolve() for s in specs if not _GLOB.search(os.fspath(s)) and not Path(s).is_dir()}


def _folder(folder: Path, recursive: bool, skip: Path | None) -> list[Path]:
    """The readable files of ``folder`` (and below it when ``recursive``), outside ``skip``."""
    walk = folder.rglob("*") if recursive else folder.iterdir()
    return [
        p for p in walk
        if p.is_file() and p.suffix.lower() in EXTENSIONS and not (skip and _inside(p.resolve(), skip))
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _without_sidecars(paths: list[Path]) -> list[Path]:
    """``paths`` less the spectral-axis files that belong to another file among them."""
    sidecars = {
        p.parent / name for p in paths for name, _unit in sidecar_names(p.stem)
    }
    return [p for p in paths if p not in sidecars]


def output_names(paths) -> dict[Path, str]:
    """Input path -> output folder name: the stem, or for colliding stems the differing part."""
    paths = [Path(p) for p in paths]
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(_safe(path.stem).lower(), []).append(path)
    names: dict[Path, str] = {}
    for group in groups.values():
        if len(group) == 1:
            names[group[0]] = _safe(group[0].stem)
            continue
        common = Path(os.path.commonpath([p.parent for p in group]))
        same_suffix = len({p.suffix.lower() for p in group}) == 1
        for path in group:
            relative = path.relative_to(common)
            parts = [*relative.parent.parts, path.stem if same_suffix else path.name]
            names[path] = _safe("_".join(parts))
    taken: set[str] = set()
    for path in sorted(names, key=lambda p: (names[p].lower(), str(p))):
        name, number = names[path], 1
        while name.lower() in taken:  # a made-up name that equals another input's stem
            number += 1
            name = f"{names[path]}-{number}"
        taken.add(name.lower())
        names[path] = name
    return {path: names[path] for path in paths}


def _safe(text: str) -> str:
    """A file-system-safe folder name (no separators, no leading dot)."""
    return re.sub(r"[^\w.+-]+", "_", text).lstrip(".") or "input"
