"""Variance stabilisation: the generalised Anscombe transform and its exact unbiased inverse.

Under Poisson-Gaussian noise, ``var(y) = a * E[y] + b`` (:mod:`.noise`), the generalised Anscombe
transform (Murtagh, Starck & Bijaoui 1995)

    f(y) = 2 / a * sqrt(max(a * y + 3/8 a^2 + b, 0))

turns every value into one whose noise has variance about 1, whatever its level: methods made
for white Gaussian noise (PCA's rank rules, Gaussian-noise thresholds, least-squares smoothers)
then see the noise they assume. Going back by the algebraic inverse ``(a f^2 / 4 - 3/8 a^2 - b)
/ a`` is biased at low counts (``E[f(y)]`` is not ``f(E[y])``); this module inverts the
expectation instead, the **exact unbiased inverse** of Makitalo & Foi (IEEE TIP 22, 91, 2013):
the level ``lam`` for which ``E[f(y) | lam] = D``, with the expectation over the Poisson counts
and the Gaussian noise computed numerically on a grid of levels (in photon units, up to
:data:`TABLE_PHOTONS`) and the closed-form approximation of the same inverse (Makitalo & Foi
2011, minus ``sigma^2`` for the Gaussian part) above it, where the two agree to within 0.01
photons (5e-5 of the level).

Negative values (background-subtracted data):

* the argument of the square root is clipped at 0, its defined lower bound, so values far below
  the photon zero all map to 0 (a value ``a * y + b`` below ``-3/8 a^2`` has no square root);
* a negative ``b`` (a dark offset left in the data) is a shift of the photon zero to ``-b / a``
  with no Gaussian part;
* below the lowest expectation the model allows (zero photons), the inverse continues as a
  straight line with the slope it has at zero photons, so a denoised value below the photon zero
  comes back below it instead of being clamped to it.

With no shot noise (``a = 0``) the transform is the scaling ``y / sqrt(b)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Levels (photons) up to which the exact unbiased inverse is tabulated; the closed form above.
TABLE_PHOTONS = 200.0
_SQRT_3_2 = np.sqrt(1.5)


def closed_form_inverse(d: np.ndarray, sigma2: float = 0.0) -> np.ndarray:
    """Makitalo & Foi's closed-form approximation of the exact unbiased inverse (photon units)."""
    d = np.maximum(np.asarray(d, dtype=np.float64), 1e-3)
    return 0.25 * d**2 + 0.25 * _SQRT_3_2 / d - 1.375 / d**2 + 0.625 * _SQRT_3_2 / d**3 - 0.125 - sigma2


def expected_transform(lam: np.ndarray, sigma2: float) -> np.ndarray:
    """``E[2 sqrt(max(p + n + 3/8 + sigma2, 0))]`` for ``p ~ Poisson(lam)``, ``n ~ N(0, sigma2)``."""
    from scipy.special import gammaln

    lam = np.asarray(lam, dtype=np.float64)
    top = float(lam.max(initial=0.0))
    counts = np.arange(int(top + 12 * np.sqrt(top + 1) + 30))
    if sigma2 > 0:
        sigma = np.sqrt(sigma2)
        n = np.linspace(-9 * sigma, 9 * sigma, 721)
        weights = np.exp(-0.5 * (n / sigma) ** 2)
        weights /= weights.sum()
        per_count = 2.0 * np.sqrt(np.maximum(counts[:, None] + n[None] + 0.375 + sigma2, 0.0)) @ weights
    else:
        per_count = 2.0 * np.sqrt(counts + 0.375)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lam = np.log(lam)[:, None]
        log_pmf = counts[None] * log_lam - lam[:, None] - gammaln(counts + 1.0)[None]
    log_pmf[lam == 0] = np.where(counts == 0, 0.0, -np.inf)
    return np.exp(log_pmf) @ per_count


@dataclass(frozen=True)
class Anscombe:
    """The generalised Anscombe transform for ``var(y) = gain * E[y] + read_variance``.

    :meth:`forward` stabilises (noise variance about 1), :meth:`inverse` goes back with the
    exact unbiased inverse (``exact=False``: the algebraic inverse). Works on any array shape;
    float32 in, float32 out, in chunks, so a large cube needs no float64 copy.
    """

    gain: float
    read_variance: float
    _table: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        if not np.isfinite(self.gain) or self.gain < 0:
            raise ValueError(f"gain must be a finite number >= 0, got {self.gain}")
        if self.gain == 0 and not self.read_variance > 0:
            raise ValueError("with no shot noise (gain 0) the read-noise variance must be > 0")
        if self.gain > 0:
            sigma2 = self.sigma2
            lam = np.concatenate([np.linspace(0.0, 2.0, 81)[:-1], np.geomspace(2.0, TABLE_PHOTONS, 400)])
            object.__setattr__(self, "_table", (lam, expected_transform(lam, sigma2)))

    @classmethod
    def from_noise(cls, model) -> Anscombe:
        """The transform for a :class:`~napari_deeper.denoise.noise.NoiseModel`."""
        return cls(float(model.gain), float(model.read_variance))

    @property
    def sigma2(self) -> float:
        """Gaussian variance in photon units (``b / a^2``, 0 when ``b`` < 0)."""
        return max(self.read_variance, 0.0) / self.gain**2 if self.gain > 0 else np.inf

    @property
    def offset(self) -> float:
        """Photon-unit shift of the data's zero (``b / a^2`` when ``b`` < 0, else 0)."""
        return min(self.read_variance, 0.0) / self.gain**2 if self.gain > 0 else 0.0

    def _photons(self, y: np.ndarray) -> np.ndarray:
        return y / self.gain + self.offset

    def forward(self, data) -> np.ndarray:
        """``f(y)``: the stabilised values (float32), noise variance about 1."""
        return _chunked(data, self._forward)

    def _forward(self, y: np.ndarray) -> np.ndarray:
        if self.gain == 0:
            return y / np.sqrt(self.read_variance)
        return 2.0 * np.sqrt(np.maximum(self._photons(y) + 0.375 + self.sigma2, 0.0))

    def inverse(self, data, exact: bool = True) -> np.ndarray:
        """Back to data units: the exact unbiased inverse of a denoised ``f`` (or the algebraic one)."""
        return _chunked(data, self._inverse if exact else self._algebraic)

    def _algebraic(self, d: np.ndarray) -> np.ndarray:
        if self.gain == 0:
            return d * np.sqrt(self.read_variance)
        photons = 0.25 * d**2 - 0.375 - self.sigma2
        return (photons - self.offset) * self.gain

    def _inverse(self, d: np.ndarray) -> np.ndarray:
        if self.gain == 0:
            return d * np.sqrt(self.read_variance)
        lam, expected = self._table
        photons = np.interp(d, expected, lam)
        above = d > expected[-1]
        if np.any(above):
            photons[above] = closed_form_inverse(d[above], self.sigma2)
        below = d < expected[0]
        if np.any(below):
            slope = (expected[1] - expected[0]) / (lam[1] - lam[0])
            photons[below] = (d[below] - expected[0]) / slope
        return (photons - self.offset) * self.gain

    def expected(self, level) -> np.ndarray:
        """``E[f(y)]`` where ``E[y] = level`` (data units, levels at or above the photon zero)."""
        photons = np.maximum(self._photons(np.asarray(level, dtype=np.float64)), 0.0)
        if self.gain == 0:
            return np.asarray(level, dtype=np.float64) / np.sqrt(self.read_variance)
        lam, expected = self._table
        out = np.interp(photons, lam, expected)
        high = photons > lam[-1]
        # Above the table, E[f] = 2 sqrt(lam + 3/8 + sigma2) - 1/(4 sqrt(lam + sigma2)) + ...;
        # invert the closed form numerically by two Newton steps from the algebraic guess.
        if np.any(high):
            target = photons[high]
            d = 2.0 * np.sqrt(target + 0.375 + self.sigma2)
            for _ in range(3):
                value = closed_form_inverse(d, self.sigma2)
                step = 1e-4 * d
                slope = (closed_form_inverse(d + step, self.sigma2) - value) / step
                d = d - (value - target) / slope
            out[high] = d
        return out


def _chunked(data, fn, size: int = 1 << 20) -> np.ndarray:
    """``fn`` over ``data`` in float64 chunks of ``size`` values; float32 result of the same shape."""
    arr = np.asarray(data)
    out = np.empty(arr.shape, dtype=np.float32)
    flat_in, flat_out = arr.reshape(-1), out.reshape(-1)
    for start in range(0, flat_in.size, size):
        flat_out[start:start + size] = fn(flat_in[start:start + size].astype(np.float64))
    return out


STABILISE_CHOICES = ("off", "on", "auto")


def stabiliser_steps(data, stabilise: str = "auto", noise=None):
    """Steps: ``(transform, noise)``, the :class:`Anscombe` transform that ``stabilise`` calls for
    on ``data`` (None: none) and the noise model of what a method then gets.

    ``stabilise`` is "on" (always), "off" (never) or "auto" (when the cube's noise model says the
    noise depends on the intensity, see
    :attr:`~napari_deeper.denoise.noise.NoiseModel.needs_stabilising`). ``noise`` is the cube's
    :class:`~napari_deeper.denoise.noise.NoiseModel` (estimated here when needed and None; a lazy
    cube is read only where examined). After stabilisation the model is unit white noise; without
    it, the cube's own (None when it was not needed).
    """
    from ..compute import Progress
    from .noise import NoiseModel, estimate_noise

    choice = str(stabilise).lower()
    if choice not in STABILISE_CHOICES:
        raise ValueError(f"stabilise must be one of {', '.join(STABILISE_CHOICES)}; got {stabilise!r}")
    if choice == "off":
        return None, noise
    if noise is None:
        yield Progress(0, 1, "estimating the noise")
        noise = estimate_noise(data, spikes=False)
    if choice == "auto" and not noise.needs_stabilising:
        return None, noise
    return Anscombe.from_noise(noise), NoiseModel.white(1.0)


def stabilised_steps(steps, data: np.ndarray, stabilise: str = "auto", noise=None):
    """Run ``steps(cube, noise)`` (a steps generator) on the stabilised cube; result in data units.

    ``stabilise`` and ``noise`` as for :func:`stabiliser_steps`; ``steps`` receives the model of
    what it is given.
    """
    transform, noise = yield from stabiliser_steps(data, stabilise, noise)
    if transform is None:
        return (yield from steps(data, noise))
    out = yield from steps(transform.forward(data), noise)
    return transform.inverse(out)


def with_vst(method):
    """``method`` (a :class:`~napari_deeper.methods.Method`) run on the stabilised cube, always.

    The new method is named ``"<name>+vst"`` and takes the same parameters; the cube's noise
    model is estimated first, the method runs on ``f(y)`` and the result comes back through the
    exact unbiased inverse.
    """
    from dataclasses import replace

    def steps(data, wavenumbers=None, device=None, **params):
        def inner(cube, _noise):
            return method.steps(cube, wavenumbers=wavenumbers, device=device, **params)

        return (yield from stabilised_steps(inner, data, "on"))

    return replace(method, name=f"{method.name}+vst", steps=steps,
                   description=f"{method.description}, on the variance-stabilised cube")
