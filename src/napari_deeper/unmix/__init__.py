"""Unmixing: VCA endmembers, exact NNLS/FCLS abundances, dominant-component labels.

    import napari_deeper as nd
    endmembers, pixels = nd.vca(cube, 5)               # (5, B), flat pixel indices
    abundances = nd.nnls(cube, endmembers)             # (5, Y, X), exact per-pixel NNLS
    labels = nd.unmix.classify(abundances)             # (Y, X), 1..5, 0 = unassigned
    k_hint = nd.unmix.estimate_n_endmembers(cube)      # HySime: a hint, not a rule
"""

from .abundances import check_endmembers, nnls, nnls_steps
from .endmembers import estimate_n_endmembers, estimate_snr, vca, vca_steps
from .labels import UNASSIGNED, classify
from .pipeline import TargetResult, UnmixResult, unmix, unmix_steps

__all__ = [
    "UNASSIGNED",
    "TargetResult",
    "UnmixResult",
    "check_endmembers",
    "classify",
    "estimate_n_endmembers",
    "estimate_snr",
    "nnls",
    "nnls_steps",
    "unmix",
    "unmix_steps",
    "vca",
    "vca_steps",
]
