"""Cell-level results: one row per region (label, cluster or ROI) with its spectra and bands.

Regions come as a ``(Y, X)`` label image (clusters, unmixing classes, a segmentation: 0 is
"no region") or as ``(n, Y, X)`` boolean masks (ROIs drawn as shapes, which may overlap). For
each region: pixel count, area in µm², mean and standard deviation spectra with the confidence
interval of the mean (Student's t), the mean and standard deviation of per-pixel band areas,
and band ratios of the region's mean areas. Written as one CSV table (Excel reads it) or, when
``anndata`` is installed, as an AnnData ``.h5ad`` file (regions as observations, wavenumbers as
variables).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._validation import as_cube
from ..compute import Progress, Steps, run
from ..spectral.bands import band_map, spectral_axis
from .peaks import band_pairs


@dataclass
class RegionTable:
    """Per-region results; arrays have one row per region, spectra ``(n, B)``."""

    labels: np.ndarray
    names: list[str]
    wavenumbers: np.ndarray
    pixels: np.ndarray
    area_um2: np.ndarray | None
    mean: np.ndarray
    std: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    confidence: float
    band_areas: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    ratios: dict[str, np.ndarray] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """One dict per region: label, name, pixels, area, band areas (mean, std), ratios."""
        out = []
        for i, label in enumerate(self.labels):
            row = {"label": int(label), "name": self.names[i], "pixels": int(self.pixels[i]),
                   "area_um2": None if self.area_um2 is None else float(self.area_um2[i])}
            for key, (mean, std) in self.band_areas.items():
                row[f"{key}_mean"] = float(mean[i])
                row[f"{key}_std"] = float(std[i])
            for key, value in self.ratios.items():
                row[key] = float(value[i])
            out.append(row)
        return out

    def write_csv(self, path, spectra: bool = True) -> Path:
        """One CSV table, a row per region; with ``spectra`` also the mean, std and confidence
        interval at every wavenumber (columns ``mean_<wavenumber>`` ...)."""
        path = Path(path)
        rows = self.rows()
        header = list(rows[0]) if rows else ["label", "name", "pixels", "area_um2"]
        columns = [f"{w:.6g}" for w in self.wavenumbers]
        blocks = (("mean", self.mean), ("std", self.std), ("ci_low", self.ci_low), ("ci_high", self.ci_high))
        if spectra:
            header += [f"{prefix}_{c}" for prefix, _ in blocks for c in columns]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for i, row in enumerate(rows):
                values = ["" if v is None else f"{v:.7g}" if isinstance(v, float) else v
                          for v in row.values()]
                if spectra:
                    values += [f"{v:.7g}" for _, block in blocks for v in block[i]]
                writer.writerow(values)
        return path

    def to_anndata(self):
        """An ``anndata.AnnData``: regions x wavenumbers, mean spectra in ``X``; std and the
        confidence interval in ``layers``; the table's other columns in ``obs``."""
        try:
            import anndata
            import pandas as pd
        except ImportError as error:
            raise ImportError("writing .h5ad needs the anndata package: pip install anndata") from error
        # plain object strings: pandas 3's string arrays are refused by anndata's writer
        obs = pd.DataFrame(self.rows()).astype({"name": object, "area_um2": float})
        obs.index = pd.Index([str(label) for label in self.labels], dtype=object)
        var = pd.DataFrame({"wavenumber": self.wavenumbers},
                           index=pd.Index([f"{w:.6g}" for w in self.wavenumbers], dtype=object))
        return anndata.AnnData(
            X=self.mean.astype(np.float32), obs=obs, var=var,
            layers={"std": self.std.astype(np.float32), "ci_low": self.ci_low.astype(np.float32),
                    "ci_high": self.ci_high.astype(np.float32)},
            uns={"confidence": self.confidence},
        )

    def write_h5ad(self, path) -> Path:
        """The :meth:`to_anndata` object written to ``path`` (needs ``anndata``)."""
        path = Path(path)
        self.to_anndata().write_h5ad(path)
        return path


def _regions(labels, image_shape) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(region ids, per-pixel data, is_mask_stack)`` from a label image or a mask stack."""
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape == image_shape:
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
            if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                raise ValueError(f"a label image must hold whole numbers, got dtype {array.dtype}")
        array = array.astype(np.int64)
        if array.min() < 0:
            raise ValueError("labels must not be negative (0 means no region)")
        ids = np.unique(array[array > 0])
        if ids.size == 0:
            raise ValueError("the label image has no region (every pixel is 0)")
        return ids, array, False
    if array.ndim == 3 and array.shape[1:] == image_shape:
        masks = array.astype(bool)
        empty = np.flatnonzero(~masks.reshape(masks.shape[0], -1).any(axis=1))
        if empty.size:
            raise ValueError(f"ROI mask(s) {', '.join(map(str, empty + 1))} select no pixel")
        return np.arange(1, masks.shape[0] + 1), masks, True
    raise ValueError(
        f"labels of shape {array.shape} do not match the image of {image_shape[0]} x {image_shape[1]} "
        f"pixels: give a ({image_shape[0]}, {image_shape[1]}) label image or (n, {image_shape[0]}, "
        f"{image_shape[1]}) ROI masks"
    )


def _sums(values: np.ndarray, regions: np.ndarray, ids: np.ndarray, is_masks: bool):
    """Per-region pixel count, sum and sum of squares of ``values`` ``(F, N)`` (F features)."""
    values = values.astype(np.float64)
    if is_masks:
        weights = regions.reshape(regions.shape[0], -1).astype(np.float64)  # (n, N)
        return weights.sum(axis=1), weights @ values.T, weights @ (values * values).T
    flat = regions.ravel()
    keep = np.flatnonzero(flat > 0)
    order = keep[np.argsort(flat[keep], kind="stable")]
    sorted_labels = flat[order]
    starts = np.searchsorted(sorted_labels, ids)
    counts = np.diff(np.append(starts, sorted_labels.size)).astype(np.float64)
    block = values[:, order]
    return counts, np.add.reduceat(block, starts, axis=1).T, np.add.reduceat(block * block, starts, axis=1).T


def _mean_std(count, total, squares):
    mean = total / count[:, None]
    variance = (squares - count[:, None] * mean * mean) / np.maximum(count - 1, 1)[:, None]
    std = np.sqrt(np.clip(variance, 0.0, None))
    std[count < 2] = np.nan
    return mean, std


def region_table_steps(data, wavenumbers=None, labels=None, pixel_size=None, bands=(), ratios=(),
                       names=None, confidence: float = 0.95) -> Steps[RegionTable]:
    """Steps version of :func:`region_table`."""
    from scipy.stats import t as student_t

    cube = as_cube(data)
    n_bands = cube.shape[0]
    axis = spectral_axis(wavenumbers, n_bands)
    if labels is None:
        raise ValueError("labels is None; give a (Y, X) label image or (n, Y, X) ROI masks")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    ids, regions, is_masks = _regions(labels, cube.shape[1:])
    if names is None:
        names = [f"region {i}" for i in ids]
    names = [str(n) for n in names]
    if len(names) != ids.size:
        raise ValueError(f"{len(names)} names given for {ids.size} regions")
    area = None
    if pixel_size is not None:
        dy, dx = np.broadcast_to(np.asarray(pixel_size, dtype=np.float64), (2,))
        if not (dy > 0 and dx > 0 and np.isfinite(dy * dx)):
            raise ValueError(f"pixel_size must be positive (µm, one value or (dy, dx)), got {pixel_size!r}")
    ratio_pairs = [(band_pairs(num)[0], band_pairs(den)[0]) for num, den in ratios]
    all_bands = list(dict.fromkeys(band_pairs(bands))) if len(bands) else []
    for num, den in ratio_pairs:
        all_bands += [b for b in (num, den) if b not in all_bands]
    total_steps = 2 + len(all_bands)
    yield Progress(0, total_steps, "region spectra")
    count, total, squares = _sums(cube.reshape(n_bands, -1), regions, ids, is_masks)
    mean, std = _mean_std(count, total, squares)
    t_value = student_t.ppf(0.5 + confidence / 2.0, np.maximum(count - 1, 1))
    half = t_value[:, None] * std / np.sqrt(count)[:, None]
    if pixel_size is not None:
        area = count * dy * dx
    yield Progress(1, total_steps, "region spectra")
    band_areas, band_means = {}, {}
    for index, (center, half_window) in enumerate(all_bands):
        per_pixel = band_map(cube, axis, center, 2.0 * half_window, "area", baseline=True)
        c, s, q = _sums(per_pixel.reshape(1, -1), regions, ids, is_masks)
        m, sd = _mean_std(c, s, q)
        key = f"band_{center:g}_area"
        band_areas[key] = (m[:, 0], sd[:, 0])
        band_means[(center, half_window)] = m[:, 0]
        yield Progress(2 + index, total_steps, f"band {center:g}")
    ratio_columns = {}
    for num, den in ratio_pairs:
        with np.errstate(divide="ignore", invalid="ignore"):
            value = band_means[num] / band_means[den]
        ratio_columns[f"ratio_{num[0]:g}_{den[0]:g}"] = np.where(band_means[den] > 0, value, np.nan)
    yield Progress(total_steps, total_steps, "region table")
    return RegionTable(ids, names, axis, count.astype(np.int64), area, mean, std, mean - half,
                       mean + half, float(confidence), band_areas, ratio_columns)


def region_table(data, wavenumbers=None, labels=None, pixel_size=None, bands=(), ratios=(),
                 names=None, confidence: float = 0.95) -> RegionTable:
    """Per-region spectra, areas and bands of a cube: a :class:`RegionTable`.

    ``labels``: a ``(Y, X)`` label image (0 = no region) or ``(n, Y, X)`` boolean ROI masks; any
    other shape raises a ``ValueError``. ``pixel_size`` (µm, one value or ``(dy, dx)``) gives
    areas in µm². ``bands``: ``(center, half_window)`` pairs whose per-pixel area (above the
    straight line between the window's edges) is summarised per region as mean and std;
    ``ratios``: ``(numerator band, denominator band)`` pairs, each the ratio of the region's
    mean areas (NaN where the denominator is not positive). ``confidence`` sets the interval
    of the mean spectrum (Student's t, ``n - 1`` degrees of freedom; NaN for one-pixel regions).
    """
    return run(region_table_steps(data, wavenumbers, labels, pixel_size, bands, ratios, names, confidence))
