"""Endmember spectra as CSV: one column for the spectral axis, one column per component.

The file a spectroscopist opens in a spreadsheet, and the way a lab reuses its reference spectra
across images::

    wavenumber,lipids,nucleic acids,proteins
    501.27,0.0132,0.0411,0.0250
    ...

The first column is the spectral axis (its header says which: ``wavenumber``, optionally with a
unit); a first column headed ``band`` holds band indices and means "no spectral axis". Commas,
semicolons and tabs are all read as separators.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

#: Header of the first column when the spectra have no spectral axis (band indices instead).
BAND_HEADER = "band"
AXIS_HEADER = "wavenumber"


def default_names(k: int) -> list[str]:
    return [f"component {i + 1}" for i in range(k)]


def save_endmembers_csv(path, endmembers, wavenumbers=None, names=None) -> Path:
    """Write ``endmembers`` ``(k, B)`` to ``path`` with the axis ``wavenumbers`` ``(B,)``.

    ``names`` (k strings) head the component columns (default ``component 1`` ...). Values are
    written as the shortest text that reads back as the same float64, so float32 endmembers
    come back from :func:`load_endmembers_csv` bit for bit. NaN / Inf values are refused (the
    reader refuses them too, so such a file could not be read back). Returns the path written.
    """
    em = np.asarray(endmembers, dtype=np.float64)
    if em.ndim == 1:
        em = em[None, :]
    if em.ndim != 2 or em.size == 0:
        raise ValueError(f"endmembers must be a non-empty (components, bands) array, got shape {em.shape}")
    bad = int(np.count_nonzero(~np.isfinite(em)))
    if bad:
        raise ValueError(
            f"endmembers hold {bad} NaN / Inf values out of {em.size}; a CSV of spectra must hold "
            "finite numbers: replace them before saving"
        )
    k, n_bands = em.shape
    names = default_names(k) if names is None else [str(name) for name in names]
    if len(names) != k:
        raise ValueError(f"{len(names)} names given for {k} endmembers")
    if len(set(names)) != k or any(not name.strip() for name in names):
        raise ValueError(f"component names must be distinct and not empty, got {names}")
    if wavenumbers is None:
        header, axis = BAND_HEADER, np.arange(n_bands, dtype=np.float64)
    else:
        axis = np.asarray(wavenumbers, dtype=np.float64).ravel()
        if axis.size != n_bands:
            raise ValueError(f"wavenumbers has {axis.size} values but the endmembers have {n_bands} bands")
        if not np.isfinite(axis).all():
            raise ValueError("wavenumbers contains NaN or Inf; a CSV of spectra must hold finite numbers")
        header = AXIS_HEADER
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([header, *names])
        # one row per band: the axis value, then each endmember's (Python floats: no NumPy scalar per cell)
        writer.writerows([_number(v) for v in row] for row in np.column_stack([axis, em.T]).tolist())
    return path


def load_endmembers_csv(path) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Read a CSV of spectra: ``(endmembers (k, B) float32, wavenumbers (B,) or None, names)``.

    Raises a ``ValueError`` that names the line when the file is not such a table (no header,
    fewer than two columns, ragged rows, text or NaN where numbers belong).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"{path.name}: expected a header line and at least one row of numbers")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(lines, dialect))
    header = [cell.strip() for cell in rows[0]]
    if len(header) < 2:
        raise ValueError(
            f"{path.name}: expected a spectral-axis column and at least one component column, "
            f"got the header {header}"
        )
    values = np.empty((len(rows) - 1, len(header)))
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path.name}, line {number}: {len(row)} values, the header has {len(header)}")
        try:
            values[number - 2] = [float(cell) for cell in row]
        except ValueError:
            raise ValueError(f"{path.name}, line {number}: not all values are numbers: {row}") from None
    if not np.isfinite(values).all():
        raise ValueError(f"{path.name}: the table holds NaN or Inf values")
    names = header[1:]
    wavenumbers = None if header[0].lower().startswith(BAND_HEADER) else values[:, 0]
    return values[:, 1:].T.astype(np.float32), wavenumbers, names


def _number(value: float) -> str:
    """Shortest text that reads back as the same float64."""
    return repr(float(value))
