"""The analysis a cell biologist does on a clean cube: baselines, peak fits, band ratios,
clusters, axis calibration and per-region results.

Pure NumPy/SciPy (pybaselines for the baseline methods it runs per spectrum, scikit-learn for
clustering, both imported inside the functions that need them), vectorised over pixels. Every
long operation has a ``*_steps`` generator that yields :class:`napari_deeper.compute.Progress`
between chunks, so a dock can run it in a worker with a progress bar and cancel it.
"""

from .baseline import (
    BASELINE_METHODS,
    estimate_baseline,
    estimate_baseline_steps,
    remove_baseline,
    remove_baseline_steps,
)
from .calibrate import (
    REFERENCES,
    Calibration,
    apply_calibration,
    calibrate_axis,
    calibrations_dir,
    find_calibration,
    find_calibration_steps,
    list_calibrations,
    load_calibration,
)
from .cluster import CLUSTER_METHODS, cluster, cluster_steps, suggest_clusters, suggest_clusters_steps
from .peaks import FAILURE_REASONS, PEAK_SHAPES, fit_peaks, fit_peaks_steps
from .ratio import RATIO_MODES, band_ratio, band_ratio_steps
from .regions import RegionTable, region_table, region_table_steps

__all__ = [
    "BASELINE_METHODS",
    "CLUSTER_METHODS",
    "FAILURE_REASONS",
    "PEAK_SHAPES",
    "RATIO_MODES",
    "REFERENCES",
    "Calibration",
    "RegionTable",
    "apply_calibration",
    "band_ratio",
    "band_ratio_steps",
    "calibrate_axis",
    "calibrations_dir",
    "cluster",
    "cluster_steps",
    "estimate_baseline",
    "estimate_baseline_steps",
    "find_calibration",
    "find_calibration_steps",
    "fit_peaks",
    "fit_peaks_steps",
    "list_calibrations",
    "load_calibration",
    "region_table",
    "region_table_steps",
    "remove_baseline",
    "remove_baseline_steps",
    "suggest_clusters",
    "suggest_clusters_steps",
]
