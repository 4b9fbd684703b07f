"""Peak fitting maps: one or several Raman bands fitted in every pixel at once.

Each band is a window ``(center, half_window)`` in the units of the spectral axis. Bands whose
windows overlap are fitted together (one peak each, one shared background); the others each on
their own. The model in a window is a sum of peaks (Lorentzian, Gaussian or pseudo-Voigt) on a
straight-line background, fitted by Levenberg-Marquardt for all pixels at once: every iteration
builds the ``(N, p, p)`` normal equations of the ``N`` pixels still running and solves them with
one ``np.linalg.solve``; pixels that converged leave the loop. Centre and width stay inside
bounds (a step that leaves them is clipped back), heights are not negative.

A pixel whose fit did not converge, ended on a bound, found no peak (the peak lowers the sum of
squares of a straight line alone by less than ``min_snr`` squared residual variances), or gave a
value that is not finite is *failed*: its maps hold NaN, ``failed`` is True and ``reason`` says
why, and the result's ``message`` counts them per band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_cube, check_method
from ..compute import Progress, Steps, chunks, run
from ..spectral.bands import band_window, lazy_cube, spectral_axis

PEAK_SHAPES = ("lorentzian", "gaussian", "pseudo-voigt")
FAILURE_REASONS = ("", "did not converge", "centre at a bound", "width at a bound",
                   "no peak above the noise", "not finite")
"""``reason`` code -> text (0: the fit succeeded)."""

_FOUR_LN2 = 4.0 * np.log(2.0)
_GAUSS_AREA = np.sqrt(np.pi / _FOUR_LN2)  # area of a unit-height Gaussian per unit FWHM
_LORENTZ_AREA = np.pi / 2.0
_CHUNK = 8192  # pixels per chunk


@dataclass(frozen=True)
class _Group:
    """Bands fitted together: their indices, the window's band indices and the bounds."""

    members: tuple[int, ...]
    indices: np.ndarray  # band indices of the (union) window
    windows: tuple[tuple[float, float], ...]  # each member's own window (low, high)
    fwhm_bounds: tuple[float, float]


def _profile(x, center, fwhm, fraction, shape):
    """Unit-height profile and its derivatives by centre, width and Gaussian fraction.

    ``x`` is ``(n,)``, the parameters ``(N, 1)``; returns ``(P, dP/dc, dP/df, dP/dr)`` as
    ``(N, n)`` arrays (``dP/dr`` None unless pseudo-Voigt).
    """
    u = (x[None, :] - center) / fwhm
    u2 = u * u
    if shape != "gaussian":
        denominator = 1.0 / (1.0 + 4.0 * u2)
        lorentz = denominator
        lorentz_du = -8.0 * u * denominator * denominator
    if shape != "lorentzian":
        gauss = np.exp(-_FOUR_LN2 * u2)
        gauss_du = -2.0 * _FOUR_LN2 * u * gauss
    if shape == "lorentzian":
        value, du = lorentz, lorentz_du
        d_fraction = None
    elif shape == "gaussian":
        value, du = gauss, gauss_du
        d_fraction = None
    else:
        value = fraction * gauss + (1.0 - fraction) * lorentz
        du = fraction * gauss_du + (1.0 - fraction) * lorentz_du
        d_fraction = gauss - lorentz
    # u = (x - c) / f: du/dc = -1/f, du/df = -u/f
    return value, -du / fwhm, -du * u / fwhm, d_fraction


class _Model:
    """Sum of ``m`` peaks plus ``b0 + b1 t`` on one window; parameters per pixel ``(N, P)``.

    Layout: for each peak ``[height, centre, fwhm(, fraction)]``, then ``[b0, b1]``; ``t`` is
    the axis mapped onto [-1, 1] over the window, so the background is well conditioned.
    """

    def __init__(self, x: np.ndarray, n_peaks: int, shape: str):
        self.x = x
        self.shape = shape
        self.n_peaks = n_peaks
        self.per_peak = 4 if shape == "pseudo-voigt" else 3
        self.n_params = n_peaks * self.per_peak + 2
        low, high = float(x.min()), float(x.max())
        self.t = (x - 0.5 * (low + high)) / max(0.5 * (high - low), np.finfo(float).tiny)

    def evaluate(self, params: np.ndarray, jacobian: bool):
        """Model values ``(N, n)`` and, when asked, the Jacobian ``(N, n, P)``."""
        n_pixels = params.shape[0]
        value = params[:, -2:-1] + params[:, -1:] * self.t[None, :]
        jac = np.empty((n_pixels, self.x.size, self.n_params)) if jacobian else None
        for j in range(self.n_peaks):
            base = j * self.per_peak
            height = params[:, base : base + 1]
            fraction = params[:, base + 3 : base + 4] if self.per_peak == 4 else None
            p, dc, df, dr = _profile(self.x, params[:, base + 1 : base + 2],
                                     params[:, base + 2 : base + 3], fraction, self.shape)
            value = value + height * p
            if jacobian:
                jac[:, :, base] = p
                jac[:, :, base + 1] = height * dc
                jac[:, :, base + 2] = height * df
                if dr is not None:
                    jac[:, :, base + 3] = height * dr
        if jacobian:
            jac[:, :, -2] = 1.0
            jac[:, :, -1] = self.t[None, :]
        return value, jac


def _levenberg_marquardt(model: _Model, y: np.ndarray, start: np.ndarray, low: np.ndarray,
                         high: np.ndarray, max_iter: int, tol: float):
    """Bounded Levenberg-Marquardt for every row of ``y`` ``(N, n)`` at once.

    Returns ``(params (N, P), converged (N,) bool)``. A step is accepted when it lowers the
    pixel's sum of squares (damping divided by 3) and refused otherwise (damping times 4); a
    pixel converges when an accepted step changes its sum of squares by less than ``tol``
    relatively or moves no parameter by more than ``tol`` relatively, or when no step can lower
    it any more (damping beyond 1e12: a minimum to machine precision). A parameter on a bound
    that the gradient pushes outwards is held there for the step (a projected step).
    """
    n_pixels, n_params = start.shape
    params = np.clip(start, low, high)
    value, jac = model.evaluate(params, jacobian=True)
    residual = y - value
    cost = np.einsum("ij,ij->i", residual, residual)
    damping = np.full(n_pixels, 1e-3)
    result = params.copy()
    converged = np.zeros(n_pixels, dtype=bool)
    pending = np.arange(n_pixels)
    eye = np.eye(n_params)
    for _ in range(max_iter):
        normal = np.einsum("nkp,nkq->npq", jac, jac)
        gradient = np.einsum("nkp,nk->np", jac, residual)
        diagonal = np.einsum("npp->np", normal)
        # a parameter without influence (e.g. the centre of a zero-height peak) keeps a small
        # positive damping term, so every system stays solvable
        scale = np.maximum(diagonal, 1e-12 * diagonal.max(axis=1, keepdims=True) + 1e-300)
        system = normal + (damping[:, None] * scale)[:, :, None] * eye
        # a parameter on a bound that the gradient pushes outwards stays there this step: its
        # row and column become the identity (clipping the full step instead stalls the fit)
        lo, hi = low[pending], high[pending]
        frozen = ((params <= lo) & (gradient < 0)) | ((params >= hi) & (gradient > 0))
        if frozen.any():
            free = ~frozen
            system = system * (free[:, :, None] & free[:, None, :]) + frozen[:, :, None] * eye
            gradient = np.where(frozen, 0.0, gradient)
        step = np.linalg.solve(system, gradient[:, :, None])[:, :, 0]
        trial = np.clip(params + step, lo, hi)
        trial_value, _ = model.evaluate(trial, jacobian=False)
        trial_residual = y - trial_value
        trial_cost = np.einsum("ij,ij->i", trial_residual, trial_residual)
        better = np.isfinite(trial_cost) & (trial_cost < cost)
        small_step = np.all(np.abs(trial - params) <= tol * (np.abs(params) + tol), axis=1)
        small_gain = better & (cost - trial_cost <= tol * cost)
        params = np.where(better[:, None], trial, params)
        cost = np.where(better, trial_cost, cost)
        damping = np.where(better, damping / 3.0, damping * 4.0)
        done = small_gain | small_step | (damping > 1e12)
        if done.any():
            result[pending[done]] = params[done]
            converged[pending[done]] = True
            keep = ~done
            pending, params, cost, damping, y = (
                pending[keep], params[keep], cost[keep], damping[keep], y[keep]
            )
            if pending.size == 0:
                break
        value, jac = model.evaluate(params, jacobian=True)
        residual = y - value
    result[pending] = params
    return result, converged


def _start(model: _Model, x: np.ndarray, y: np.ndarray, group: _Group, low, high) -> np.ndarray:
    """First guesses: a line through the window's end points, each peak at its window's maximum."""
    n_pixels = y.shape[0]
    ends = max(1, min(3, x.size // 4))
    order = np.argsort(x)
    xs, ys = x[order], y[:, order]
    left, right = ys[:, :ends].mean(axis=1), ys[:, -ends:].mean(axis=1)
    t_left, t_right = model.t[order][:ends].mean(), model.t[order][-ends:].mean()
    slope = (right - left) / max(t_right - t_left, 1e-12)
    b0 = left - slope * t_left
    corrected = ys - (b0[:, None] + slope[:, None] * model.t[order][None, :])
    smooth = corrected.copy()
    if xs.size >= 3:
        smooth[:, 1:-1] = (corrected[:, :-2] + corrected[:, 1:-1] + corrected[:, 2:]) / 3.0
    start = np.empty((n_pixels, model.n_params))
    for j, (w_low, w_high) in enumerate(group.windows):
        inside = np.flatnonzero((xs >= w_low) & (xs <= w_high))
        peak = inside[np.argmax(smooth[:, inside], axis=1)]
        height = np.maximum(smooth[np.arange(n_pixels), peak], 0.0)
        positive = np.clip(corrected[:, inside], 0.0, None)
        area = np.trapezoid(positive, xs[inside], axis=1) if inside.size > 1 else positive[:, 0]
        fwhm = area / np.maximum(height, 1e-30) / 1.3  # between a Gaussian's 1.06 and 1.57
        base = j * model.per_peak
        start[:, base] = height
        start[:, base + 1] = xs[peak]
        start[:, base + 2] = np.clip(np.nan_to_num(fwhm, nan=group.fwhm_bounds[0]), *group.fwhm_bounds)
        if model.per_peak == 4:
            start[:, base + 3] = 0.5
    start[:, -2], start[:, -1] = b0, slope
    return np.clip(start, low, high)


def _bounds(model: _Model, group: _Group):
    low = np.full(model.n_params, -np.inf)
    high = np.full(model.n_params, np.inf)
    for j, (w_low, w_high) in enumerate(group.windows):
        base = j * model.per_peak
        low[base], low[base + 1], low[base + 2] = 0.0, w_low, group.fwhm_bounds[0]
        high[base + 1], high[base + 2] = w_high, group.fwhm_bounds[1]
        if model.per_peak == 4:
            low[base + 3], high[base + 3] = 0.0, 1.0
    return low, high


def band_pairs(bands) -> list[tuple[float, float]]:
    """``bands`` as a list of ``(center, half_window)`` floats; one pair alone is accepted."""
    if isinstance(bands, (tuple, list)) and len(bands) == 2 and all(np.isscalar(b) for b in bands):
        bands = [bands]
    try:
        pairs = [(float(center), float(half)) for center, half in bands]
    except (TypeError, ValueError):
        raise ValueError(
            f"bands must be a list of (center, half_window) pairs, got {bands!r}"
        ) from None
    if not pairs:
        raise ValueError("bands is empty; give at least one (center, half_window) pair")
    return pairs


def _groups(axis: np.ndarray, pairs, shape: str, fwhm_bounds) -> list[_Group]:
    """Check the bands and gather those whose windows overlap into joint fits."""
    windows = []
    for center, half in pairs:
        if not half > 0:
            raise ValueError(f"band {center:g}: half_window must be positive, got {half:g}")
        low, high, inside = band_window(axis, center, 2.0 * half)
        windows.append((low, high, inside))
    order = sorted(range(len(pairs)), key=lambda i: windows[i][0])
    merged: list[list[int]] = []
    for i in order:
        if merged and windows[i][0] <= max(windows[j][1] for j in merged[-1]):
            merged[-1].append(i)
        else:
            merged.append([i])
    per_peak = 4 if shape == "pseudo-voigt" else 3
    groups = []
    for members in merged:
        indices = np.unique(np.concatenate([windows[i][2] for i in members]))
        n_params = per_peak * len(members) + 2
        if indices.size <= n_params:
            names = ", ".join(f"{pairs[i][0]:g} ± {pairs[i][1]:g}" for i in members)
            raise ValueError(
                f"band {names} covers {indices.size} band{'s' if indices.size != 1 else ''} of the axis; "
                f"a {shape} fit of {len(members)} peak(s) on a linear background has {n_params} parameters and "
                f"needs at least {n_params + 1} bands: widen the window"
            )
        x = axis[indices]
        spacing = float(np.min(np.abs(np.diff(np.sort(x))))) if x.size > 1 else 1.0
        if fwhm_bounds is None:
            widest = max(windows[i][1] - windows[i][0] for i in members)
            bounds = (spacing, float(widest))
        else:
            bounds = (float(fwhm_bounds[0]), float(fwhm_bounds[1]))
            if not 0 < bounds[0] < bounds[1]:
                raise ValueError(f"fwhm_bounds must be 0 < low < high, got {fwhm_bounds!r}")
        groups.append(_Group(tuple(members), indices,
                             tuple((windows[i][0], windows[i][1]) for i in members), bounds))
    return groups


def _detection(y, fitted, params, model: _Model, ss_res) -> np.ndarray:
    """``(N, m)`` detection SNR of each peak: how much it lowers the sum of squares.

    For peak ``j``: the data less the other peaks is fitted by a straight line alone, and
    ``sqrt((SS_line - SS_fit) / s^2)`` is returned, ``s^2`` the fit's residual variance. A
    peak fitted to pure noise (its centre and width free to find the largest bump) scores
    below 4.1 in 95 % and below 5.5 in 99 % of pixels (measured at 100 photons), where the
    ratio of its height to the residual standard deviation has a long tail (8.5 at 95 %, 17
    at 99 %): a narrow peak on one high point is tall, but lowers the sum of squares little.
    """
    n_pixels, n_points = y.shape
    design = np.stack([np.ones_like(model.t), model.t], axis=1)  # (n, 2)
    project = design @ np.linalg.pinv(design)  # onto straight lines
    variance = np.maximum(ss_res / max(n_points - model.n_params, 1), np.finfo(float).tiny)
    line = params[:, -2:-1] + params[:, -1:] * model.t[None, :]
    scores = np.empty((n_pixels, model.n_peaks))
    for j in range(model.n_peaks):
        base = j * model.per_peak
        fraction = params[:, base + 3 : base + 4] if model.per_peak == 4 else None
        profile = _profile(model.x, params[:, base + 1 : base + 2], params[:, base + 2 : base + 3],
                           fraction, model.shape)[0]
        without = y - fitted + line + params[:, base : base + 1] * profile  # the data less the other peaks
        residual = without - without @ project.T
        ss_line = np.einsum("ij,ij->i", residual, residual)
        scores[:, j] = np.sqrt(np.clip(ss_line - ss_res, 0.0, None) / variance)
    return scores


def _reasons(params, converged, model: _Model, group: _Group, low, high, detection, min_snr) -> np.ndarray:
    """``(N, m)`` failure codes (see :data:`FAILURE_REASONS`) of each peak of the group."""
    n_pixels = params.shape[0]
    codes = np.zeros((n_pixels, model.n_peaks), dtype=np.int8)
    finite = np.all(np.isfinite(params), axis=1)
    span_c = np.array([w[1] - w[0] for w in group.windows])
    span_f = group.fwhm_bounds[1] - group.fwhm_bounds[0]
    for j in range(model.n_peaks):
        base = j * model.per_peak
        c, f, h = params[:, base + 1], params[:, base + 2], params[:, base]
        margin_c = 1e-6 * span_c[j]
        at_centre = (c <= low[base + 1] + margin_c) | (c >= high[base + 1] - margin_c)
        at_width = (f <= low[base + 2] + 1e-6 * span_f) | (f >= high[base + 2] - 1e-6 * span_f)
        code = codes[:, j]
        code[~((h > 0) & (detection[:, j] >= min_snr))] = 4
        code[at_width] = 3
        code[at_centre] = 2
        code[~converged] = 1
        code[~finite] = 5
    return codes


def _area(height, fwhm, fraction, shape):
    if shape == "lorentzian":
        return height * fwhm * _LORENTZ_AREA
    if shape == "gaussian":
        return height * fwhm * _GAUSS_AREA
    return height * fwhm * (fraction * _GAUSS_AREA + (1.0 - fraction) * _LORENTZ_AREA)


def fit_peaks_steps(data, wavenumbers=None, bands=((1004.0, 15.0),), shape: str = "lorentzian",
                    fwhm_bounds=None, max_iter: int = 200, tol: float = 1e-8,
                    min_snr: float = 5.0) -> Steps[dict]:
    """Steps version of :func:`fit_peaks`: yields progress per group of bands and chunk of pixels."""
    shape = check_method(shape, PEAK_SHAPES)
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if not min_snr >= 0:
        raise ValueError(f"min_snr must be a number >= 0, got {min_snr}")
    cube = lazy_cube(data)
    n_bands, n_rows, n_cols = cube.shape
    axis = spectral_axis(wavenumbers, n_bands)
    pairs = band_pairs(bands)
    groups = _groups(axis, pairs, shape, fwhm_bounds)
    n_peaks = sum(len(g.members) for g in groups)
    n_pixels = n_rows * n_cols
    keys = ["center", "fwhm", "height", "area", "r2"]
    if shape == "pseudo-voigt":
        keys.append("gaussian_fraction")
    maps = {key: np.full((n_peaks, n_pixels), np.nan, dtype=np.float32) for key in keys}
    reason = np.zeros((n_peaks, n_pixels), dtype=np.int8)
    total = len(groups) * n_pixels
    yield Progress(0, total, f"fitting {n_peaks} band(s)")
    for g_index, group in enumerate(groups):
        x = axis[group.indices]
        model = _Model(x, len(group.members), shape)
        low, high = _bounds(model, group)
        first, last = int(group.indices[0]), int(group.indices[-1])
        block = as_cube(cube[first : last + 1]).reshape(last - first + 1, -1)
        block = block[group.indices - first]
        for pixels in chunks(n_pixels, _CHUNK):
            y = block[:, pixels].T.astype(np.float64)
            lows = np.broadcast_to(low, (y.shape[0], low.size))
            highs = np.broadcast_to(high, (y.shape[0], high.size))
            start = _start(model, x, y, group, low, high)
            params, converged = _levenberg_marquardt(model, y, start, lows, highs, int(max_iter), tol)
            fitted, _ = model.evaluate(params, jacobian=False)
            ss_res = np.sum((y - fitted) ** 2, axis=1)
            ss_tot = np.sum((y - y.mean(axis=1, keepdims=True)) ** 2, axis=1)
            r2 = 1.0 - ss_res / np.maximum(ss_tot, np.finfo(float).tiny)
            detection = _detection(y, fitted, params, model, ss_res)
            codes = _reasons(params, converged, model, group, low, high, detection, float(min_snr))
            for j, member in enumerate(group.members):
                base = j * model.per_peak
                height, center, fwhm = params[:, base], params[:, base + 1], params[:, base + 2]
                fraction = params[:, base + 3] if model.per_peak == 4 else None
                values = {"center": center, "fwhm": fwhm, "height": height,
                          "area": _area(height, fwhm, fraction, shape), "r2": r2}
                if fraction is not None:
                    values["gaussian_fraction"] = fraction
                ok = codes[:, j] == 0
                for key, value in values.items():
                    maps[key][member, pixels] = np.where(ok, value, np.nan)
                reason[member, pixels] = codes[:, j]
            yield Progress(g_index * n_pixels + pixels.stop, total, f"fitting {n_peaks} band(s)")
    centres = [center for center, _ in pairs]
    result = {key: value.reshape(n_peaks, n_rows, n_cols) for key, value in maps.items()}
    result["reason"] = reason.reshape(n_peaks, n_rows, n_cols)
    result["failed"] = result["reason"] > 0
    result["bands"] = centres
    result["shape"] = shape
    result["message"] = _message(centres, reason)
    return result


def _message(centres, reason: np.ndarray) -> str:
    """One line per band: how many pixels were fitted and why the others failed."""
    lines = []
    n_pixels = reason.shape[1]
    for center, codes in zip(centres, reason, strict=True):
        failed = int(np.count_nonzero(codes))
        line = f"band {center:g}: {n_pixels - failed} of {n_pixels} pixels fitted"
        if failed:
            counts = np.bincount(codes, minlength=len(FAILURE_REASONS))
            why = ", ".join(f"{int(counts[c])} {FAILURE_REASONS[c]}"
                            for c in range(1, len(counts)) if counts[c])
            line += f"; {failed} failed ({why}), masked as NaN"
        lines.append(line)
    return "\n".join(lines)


def fit_peaks(data, wavenumbers=None, bands=((1004.0, 15.0),), shape: str = "lorentzian",
              fwhm_bounds=None, max_iter: int = 200, tol: float = 1e-8, min_snr: float = 5.0) -> dict:
    """Fit bands in every pixel; a mapping of ``(k, Y, X)`` maps for the ``k`` bands.

    ``bands`` is a list of ``(center, half_window)`` pairs in the units of ``wavenumbers``
    (band indices when None). Each peak's centre is bounded to its window and its FWHM to
    ``fwhm_bounds`` (default: from the band spacing to the window width). ``shape`` is one of
    :data:`PEAK_SHAPES`; the pseudo-Voigt's Gaussian fraction is fitted too (in [0, 1]). A
    peak whose detection SNR (the square root of how much it lowers the sum of squares of a
    straight line alone, in residual variances) is below ``min_snr`` counts as no peak.
    ``max_iter`` and ``tol`` bound the Levenberg-Marquardt iterations.

    Returns ``center``, ``fwhm``, ``height``, ``area`` (of the peak above its background),
    ``r2`` (of the window's fit), for pseudo-Voigt ``gaussian_fraction``, all float32 with NaN
    where the fit failed; ``failed`` (bool) and ``reason`` (codes into
    :data:`FAILURE_REASONS`); ``bands`` (the centres asked for), ``shape`` and ``message`` (what
    was fitted and what failed, per band).
    """
    return run(fit_peaks_steps(data, wavenumbers, bands, shape, fwhm_bounds, max_iter, tol, min_snr))
