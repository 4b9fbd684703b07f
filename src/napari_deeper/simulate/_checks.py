"""Argument checks shared by the simulator modules: each raises a ``ValueError`` naming the value."""

from __future__ import annotations

import numpy as np


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _shape2d(shape, minimum: int = 1) -> tuple[int, int]:
    try:
        dims = tuple(shape)
    except TypeError:
        dims = ()
    if len(dims) != 2:
        raise ValueError(f"shape must be (y, x), got {shape!r}")
    return tuple(_positive_int(d, "each entry of shape", minimum) for d in dims)


def _non_negative(value, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _positive(value, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _fraction(value, name: str) -> float:
    value = _non_negative(value, name)
    if value > 1:
        raise ValueError(f"{name} is a fraction of pixels and must be in [0, 1], got {value!r}")
    return value


def _axis(wavenumbers, minimum: int = 2) -> np.ndarray:
    w = np.asarray(wavenumbers, dtype=np.float64)
    if w.ndim != 1 or w.size < minimum:
        raise ValueError(
            f"wavenumbers must be a 1-D array of at least {minimum} values, got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)):
        raise ValueError("wavenumbers contains NaN or Inf")
    return w


def _range_pair(value, name: str, low_limit: float = 0.0, integer: bool = False):
    """A ``(low, high)`` pair with ``low_limit <= low <= high`` (a single number means both)."""
    pair = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
    if pair.size == 1:
        pair = np.repeat(pair, 2)
    if pair.size != 2 or not np.all(np.isfinite(pair)) or pair[0] > pair[1] or pair[0] < low_limit:
        raise ValueError(
            f"{name} must be a number or a (low, high) pair with {low_limit} <= low <= high, "
            f"got {value!r}"
        )
    if integer:
        if not np.all(pair == np.round(pair)):
            raise ValueError(f"{name} must hold integers, got {value!r}")
        return int(pair[0]), int(pair[1])
    return float(pair[0]), float(pair[1])


def _generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a numpy Generator, an integer seed or None, got {type(rng)}")
