"""Wavenumber-axis calibration from reference lines: silicon, polystyrene or the user's own.

A reference scan (or the cube itself, when it shows a reference band) is averaged into one
spectrum; each reference line that lies on the axis is searched for within ``search`` of its
position, accepted when it stands ``min_snr`` noise levels above a local straight-line
background, and located to a fraction of a band by a Lorentzian fit (:func:`fit_peaks`). One
line found gives a shift of the axis; two or more give a straight-line correction
``corrected = slope * axis + offset`` (least squares).

Calibrations can be saved under a name, as JSON, in the user data folder (``platformdirs``; the
environment variable ``NAPARI_DEEPER_CALIBRATIONS`` points elsewhere), and applied to later
cubes; :meth:`Calibration.record` is what to store in a layer's provenance.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._validation import as_wavenumbers
from ..compute import Progress, Steps, run
from ..spectral.preprocess import _noise_level
from .peaks import fit_peaks

REFERENCES = {
    "silicon": (520.7,),
    # ASTM E1840-96 (2022), polystyrene Raman shift standard
    "polystyrene": (620.9, 1001.4, 1031.8, 1155.3, 1450.5, 1583.1, 1602.3, 2852.4, 2904.5, 3054.3),
}
"""Reference name -> line positions in cm-1."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")


@dataclass(frozen=True)
class Calibration:
    """A straight-line correction of the spectral axis: ``corrected = slope * axis + offset``.

    ``lines`` are the reference positions that were found and ``measured`` where they were on
    the uncorrected axis; ``missing`` the reference lines on the axis that were not found.
    """

    reference: str
    lines: tuple[float, ...]
    measured: tuple[float, ...]
    slope: float = 1.0
    offset: float = 0.0
    missing: tuple[float, ...] = ()
    name: str | None = None
    created: str = field(default_factory=lambda: datetime.datetime.now().isoformat(timespec="seconds"))

    @property
    def kind(self) -> str:
        """``"shift"`` (one line) or ``"linear"`` (several)."""
        return "shift" if len(self.lines) == 1 else "linear"

    def apply(self, wavenumbers) -> np.ndarray:
        """The corrected axis (float64); the input is not modified."""
        axis = np.asarray(wavenumbers, dtype=np.float64)
        as_wavenumbers(axis, axis.size)
        return self.slope * axis + self.offset

    def record(self) -> dict:
        """What was applied, for a layer's provenance."""
        return {"operation": "calibrate_axis", **asdict(self), "kind": self.kind}

    def save(self, name: str | None = None, folder=None) -> Path:
        """Write this calibration as ``<name>.json`` in ``folder`` (the user data folder)."""
        name = _check_name(name or self.name)
        path = calibrations_dir(folder) / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**asdict(self), "name": name}
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        fields = {k: data[k] for k in ("reference", "lines", "measured", "slope", "offset",
                                       "missing", "name", "created") if k in data}
        for key in ("lines", "measured", "missing"):
            if key in fields:
                fields[key] = tuple(float(v) for v in fields[key])
        return cls(**fields)


def _check_name(name) -> str:
    if name is None or not _NAME.match(str(name)):
        raise ValueError(
            f"calibration name {name!r} must be 1-100 letters, digits, spaces, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return str(name)


def calibrations_dir(folder=None) -> Path:
    """Where named calibrations live: ``folder``, ``$NAPARI_DEEPER_CALIBRATIONS`` or the user data folder."""
    if folder is not None:
        return Path(folder)
    env = os.environ.get("NAPARI_DEEPER_CALIBRATIONS")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-deeper", appauthor=False)) / "calibrations"


def list_calibrations(folder=None) -> list[str]:
    """The names of the saved calibrations, sorted."""
    directory = calibrations_dir(folder)
    return sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []


def load_calibration(name: str, folder=None) -> Calibration:
    """The calibration saved as ``name``, or a ``ValueError`` listing the saved ones."""
    path = calibrations_dir(folder) / f"{_check_name(name)}.json"
    if not path.is_file():
        saved = ", ".join(list_calibrations(folder)) or "none"
        raise ValueError(f"no calibration named {name!r} in {path.parent}; saved: {saved}")
    return Calibration.from_dict(json.loads(path.read_text(encoding="utf-8")))


def apply_calibration(wavenumbers, calibration, folder=None) -> tuple[np.ndarray, dict]:
    """``(corrected axis, record)`` for a :class:`Calibration` or the name of a saved one."""
    if not isinstance(calibration, Calibration):
        calibration = load_calibration(calibration, folder)
    return calibration.apply(wavenumbers), calibration.record()


def _reference_lines(reference) -> tuple[str, tuple[float, ...]]:
    if isinstance(reference, str):
        key = reference.lower()
        if key not in REFERENCES:
            raise ValueError(
                f"unknown reference {reference!r}; use one of {', '.join(REFERENCES)} or a list "
                "of line positions"
            )
        return key, REFERENCES[key]
    try:
        lines = tuple(float(v) for v in np.atleast_1d(np.asarray(reference, dtype=np.float64)))
    except (TypeError, ValueError):
        raise ValueError(f"reference must be a name or a list of line positions, got {reference!r}") from None
    if not lines or not all(np.isfinite(lines)):
        raise ValueError(f"reference lines must be finite numbers, got {reference!r}")
    return "custom", lines


def _mean_spectrum(data, n_bands: int) -> np.ndarray:
    """One spectrum from a ``(B,)`` scan, ``(B, n)`` spectra or a ``(B, Y, X)`` cube."""
    array = np.asarray(data, dtype=np.float64)
    if array.ndim not in (1, 2, 3) or array.shape[0] != n_bands:
        raise ValueError(
            f"the reference data must be a ({n_bands},) spectrum or a ({n_bands}, ...) cube "
            f"matching the axis, got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError("the reference data contains NaN or Inf")
    return array.reshape(n_bands, -1).mean(axis=1)


def find_calibration_steps(wavenumbers, data_or_reference, reference="silicon", search: float = 10.0,
                           half_window: float | None = None, min_snr: float = 5.0) -> Steps[Calibration]:
    """Steps version of :func:`find_calibration`: yields progress after the mean spectrum and
    after each reference line."""
    name, lines = _reference_lines(reference)
    axis = as_wavenumbers(wavenumbers, np.asarray(wavenumbers).size)
    if axis is None or axis.size < 8:
        raise ValueError("calibration needs a spectral axis of at least 8 bands")
    yield Progress(0, 1, f"{name} lines: mean spectrum")
    spectrum = _mean_spectrum(data_or_reference, axis.size)
    spacing = float(np.median(np.abs(np.diff(axis))))
    half = float(half_window) if half_window is not None else max(8.0, 4.0 * spacing)
    noise = float(_noise_level(spectrum[:, None, None].astype(np.float32))[0, 0])
    low, high = float(axis.min()), float(axis.max())
    on_axis = [line for line in lines if low + half <= line <= high - half]
    if not on_axis:
        raise ValueError(
            f"no {name} line ({', '.join(f'{v:g}' for v in lines)} cm-1) lies on the axis, which "
            f"runs from {low:g} to {high:g} (a line needs {half:g} of axis on each side)"
        )
    found, measured, reasons = [], [], []
    for index, line in enumerate(on_axis):
        yield Progress(index, len(on_axis), f"{name} line {line:g}")
        inside = np.flatnonzero(np.abs(axis - line) <= search)
        if inside.size < 3:
            reasons.append(f"{line:g}: the search window ±{search:g} holds {inside.size} bands")
            continue
        x, y = axis[inside], spectrum[inside]
        edge = y[0] + (y[-1] - y[0]) * (x - x[0]) / (x[-1] - x[0])
        above = y - edge
        top = int(np.argmax(above))
        snr = above[top] / noise
        if snr < min_snr or top in (0, inside.size - 1):
            reasons.append(f"{line:g}: highest point {snr:.1f} noise levels above the background")
            continue
        fit = fit_peaks(spectrum[:, None, None].astype(np.float32), axis, [(float(x[top]), half)])
        if fit["failed"][0, 0, 0]:
            reasons.append(f"{line:g}: the peak fit failed ({fit['message'].split('(')[-1].rstrip(')')})")
            continue
        found.append(line)
        measured.append(float(fit["center"][0, 0, 0]))
    yield Progress(len(on_axis), len(on_axis), f"{name} lines")
    missing = tuple(line for line in on_axis if line not in found)
    if not found:
        raise ValueError(
            f"no {name} line found within ±{search:g} cm-1 of its position above {min_snr:g} noise "
            f"levels: {'; '.join(reasons)}. Check the reference scan, widen 'search' or lower 'min_snr'"
        )
    true, seen = np.array(found), np.array(measured)
    if true.size == 1:
        slope, offset = 1.0, float(true[0] - seen[0])
    else:
        slope, offset = (float(v) for v in np.polyfit(seen, true, 1))
    return Calibration(name, tuple(found), tuple(measured), slope, offset, missing)


def find_calibration(wavenumbers, data_or_reference, reference="silicon", search: float = 10.0,
                     half_window: float | None = None, min_snr: float = 5.0) -> Calibration:
    """Find the reference lines in ``data_or_reference`` and return the axis correction.

    ``reference``: ``"silicon"`` (520.7 cm-1), ``"polystyrene"`` (the ASTM E1840 lines) or a
    list of line positions. Each line on the axis is searched for within ``search`` of its
    position; a peak counts when it stands ``min_snr`` noise levels above the straight line
    between the search window's edges, and its centre is fitted over ``half_window`` around
    the maximum (default: 8 cm-1 or 4 band spacings, the larger). No line found raises a
    ``ValueError`` that says where it looked.
    """
    return run(find_calibration_steps(wavenumbers, data_or_reference, reference, search, half_window, min_snr))


def calibrate_axis(wavenumbers, data_or_reference, reference="silicon", search: float = 10.0,
                   half_window: float | None = None, min_snr: float = 5.0) -> np.ndarray:
    """The corrected spectral axis: :func:`find_calibration` applied to ``wavenumbers``."""
    calibration = find_calibration(wavenumbers, data_or_reference, reference, search, half_window, min_snr)
    return calibration.apply(wavenumbers)
