"""Spatial super-resolution of hyperspectral cubes: interpolation baselines and compact networks.

One entry point, :func:`upscale` (``nd.upscale``), and its steps generator :func:`upscale_steps`
for widgets. Low resolution means skip-sampling: LR pixel ``i`` is HR pixel ``f*i + f//2`` along
each axis, and every method returns a ``(B, Y*f, X*f)`` cube on that grid, so output pixel
``f*i + f//2`` lies on input pixel ``i``.

Methods (the registry :data:`METHODS`, name -> :class:`~napari_deeper.methods.Method`, in the
family :data:`FAMILY` whose shared parameter is ``scale``):

- ``nearest``, ``bilinear``, ``bicubic``: per band, separable, on the skip-sampling grid.
- ``hyrisr``: compact HyRISR (residual groups of channel-attention blocks) on principal-component
  images of the cube, correcting their bicubic upscale; any band count, tiled for large images.
- ``srresnet``: SRResNet (16 residual blocks, sub-pixel upsampling) used the same way.

The networks keep the measured pixels, treat what the cube's noise level says is noise as noise
between them (:mod:`napari_deeper.superres.deep`), and by default (``adapt="auto"``) adapt to the
cube: fine-tuned on its own pairs (the cube skip-sampled again) when it is large enough, and
weighed against interpolation by a self-check on those pairs (:mod:`napari_deeper.superres.adapt`).

Models the user fine-tuned (task ``"superres"`` in the model registry) are methods too, under
their own names: see :func:`available_methods`. A user model shadows a shipped one of the same
name, as in every family (see :mod:`napari_deeper.methods`).

:func:`restore_steps` is the "fast scan restore" pipeline: denoise a low-SNR, low-resolution scan,
then super-resolve it; it keeps both results and reports the imaging-time saving.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import compute
from .._validation import as_cube, as_wavenumbers
from ..methods import Family, Method, Param, saved_models
from .adapt import ADAPT_SECONDS, ADAPT_STEPS
from .deep import NOISE_CHOICES

SCALES = (2, 3, 4)
DEFAULT = "hyrisr"
MIN_SIZE = 2

__all__ = [
    "DEFAULT",
    "FAMILY",
    "METHODS",
    "SCALES",
    "Method",
    "RestoreResult",
    "available_methods",
    "check_scale",
    "check_size",
    "restore",
    "restore_choice_steps",
    "restore_plan",
    "restore_steps",
    "upscale",
    "upscale_steps",
]


def check_scale(scale) -> int:
    """Return ``scale`` as an int in :data:`SCALES` or raise a ``ValueError`` saying what is accepted."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        value = float("nan")
    if not value.is_integer() or int(value) not in SCALES:
        raise ValueError(f"scale must be 2, 3 or 4, got {scale!r}")
    return int(value)


#: The family parameter every method takes.
SCALE = Param("scale", int, 2, choices=SCALES, help="upscaling factor along y and x", parse=check_scale)
ADAPT_CHOICES = ("auto", "on", "off")


def check_adapt(value) -> str:
    """``adapt`` as "auto", "on" or "off" (True/False/None accepted), or a ``ValueError``."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    aliases = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}
    text = aliases.get(text, text)
    if text not in ADAPT_CHOICES:
        raise ValueError(f"parameter 'adapt' must be auto, on or off (or True/False), got {value!r}")
    return text


_NETWORK_PARAMS = (
    Param("tile", int, 96, (8, 1024), help="low-resolution tile size (pixels); smaller tiles use less memory"),
    Param("overlap", int, 12, (0, 64), help="context added on each side of a tile (low-resolution pixels)"),
    Param("adapt", str, "auto", choices=ADAPT_CHOICES, parse=check_adapt,
          help="adapt the network to this cube: fine-tune on its own pairs (at least 16 x 16 pixels at 2x) "
               "and choose its weight by a self-check; auto: whenever the cube is large enough"),
    Param("adapt_steps", int, ADAPT_STEPS, (0, 100000), help="most fine-tuning steps on the cube's own pairs"),
    Param("adapt_seconds", float, ADAPT_SECONDS, (0.1, 3600.0), help="time budget of the fine-tuning (seconds)"),
    Param("noise", str, "auto", choices=NOISE_CHOICES,
          help="auto: the cube's own noise level (measured along its spectra) decides how much of each part is "
               "kept between measured pixels; none: the cube is taken as noise-free; denoised: a denoised cube, "
               "its own noise level used only where the self-check guards the result (Fast scan restore)"),
)


def _interpolation(name: str):
    def steps(data, scale: int, device=None) -> compute.Steps[np.ndarray]:
        from .interpolation import interpolate_steps

        return (yield from interpolate_steps(data, scale, name))

    return steps


def _network(model_name: str):
    def steps(data, scale: int, device, tile: int, overlap: int, adapt: str, adapt_steps: int,
              adapt_seconds: float, noise: str) -> compute.Steps[np.ndarray]:
        return (yield from network_steps(model_name, data, scale, device, model_name, tile, overlap,
                                         adapt=adapt, adapt_steps=adapt_steps, adapt_seconds=adapt_seconds,
                                         noise=noise))

    return steps


def _network_method(name: str, description: str) -> Method:
    return Method(name, _network(name), _NETWORK_PARAMS, description, kind="network", model=name, uses_device=True)


METHODS: dict[str, Method] = {
    name: Method(name, _interpolation(name), (), description, kind="interpolation")
    for name, description in (
        ("nearest", "pixel replication (each LR pixel becomes an f x f block)"),
        ("bilinear", "linear between LR sample positions, per band"),
        ("bicubic", "cubic spline through LR sample positions, per band"),
    )
}
METHODS["hyrisr"] = _network_method(
    "hyrisr", "compact HyRISR: channel-attention residual groups on principal-component images"
)
METHODS["srresnet"] = _network_method(
    "srresnet", "SRResNet: 16 residual blocks and sub-pixel upsampling on principal-component images"
)


def _saved_model(info) -> Method:
    """A saved super-resolution model (shipped or the user's) as a method, under its own name."""
    base = info.card.get("base_model", "user model")
    return _network_method(info.name, info.card.get("description") or f"fine-tuned {info.arch} ({base})")


def check_size(shape, scale: int) -> None:
    """Refuse an image smaller than the scale (or than 2 pixels) along either axis.

    With fewer input pixels than the scale factor there is too little to interpolate between:
    every output pixel would be an extrapolation.
    """
    least = max(MIN_SIZE, scale)
    if min(shape[-2:]) < least:
        raise ValueError(
            f"the image is {shape[-2]} x {shape[-1]} pixels; {scale}x super-resolution needs at "
            f"least {least} x {least}"
        )


def _run(data, method: Method, wavenumbers, device, params) -> compute.Steps[np.ndarray]:
    params = dict(params)
    scale = params.pop("scale")
    cube = as_cube(data)
    as_wavenumbers(wavenumbers, cube.shape[0])
    check_size(cube.shape, scale)
    return (yield from method.steps(cube, scale, device, **params))


#: The super-resolution family of the method schema (see :mod:`napari_deeper.methods`).
FAMILY = Family(
    "superres", METHODS, DEFAULT, _run, params=(SCALE,), title="super-resolution",
    models=saved_models("superres", _saved_model),
)
available_methods = FAMILY.available


def network_steps(model_name: str, data, scale: int, device, label: str,
                  tile: int, overlap: int, **options) -> compute.Steps[np.ndarray]:
    """The network ``model_name`` (shipped or saved) on ``data``: its scales checked, then
    :func:`~napari_deeper.superres.deep.network_upscale_steps` with ``options``."""
    from ..models.registry import cached_model
    from .deep import network_upscale_steps

    model, _card = cached_model(model_name)
    if scale not in getattr(model, "scales", ()):
        raise ValueError(
            f"model {model_name!r} was trained for scales {tuple(model.scales)}, not {scale}"
        )
    return (yield from network_upscale_steps(model, data, scale, device, tile, overlap,
                                             f"{label} x{scale}", **options))


def upscale_steps(data, scale: int = 2, method: str = DEFAULT, wavenumbers=None, device=None,
                  **params) -> compute.Steps[np.ndarray]:
    """Generator version of :func:`upscale`: yields progress, returns the ``(B, Y*f, X*f)`` cube."""
    return FAMILY.steps(data, method, wavenumbers, device, scale=scale, **params)


def upscale(data, scale: int = 2, method: str = DEFAULT, wavenumbers=None, device=None,
            **params) -> np.ndarray:
    """Super-resolve a ``(B, Y, X)`` cube by ``scale`` (2, 3 or 4) -> ``(B, Y*scale, X*scale)``.

    ``method`` is a name from :func:`available_methods` (default ``"hyrisr"``). Output pixel
    ``scale*i + scale//2`` lies on input pixel ``i`` (the skip-sampling grid); values are in the
    input's units. ``device`` (None/"auto", "cpu", "cuda"...) runs the networks; ``tile`` and
    ``overlap`` bound their memory on large images. The input is not modified.
    """
    return compute.run(upscale_steps(data, scale, method, wavenumbers, device, **params))


@dataclass
class RestoreResult:
    """What :func:`restore_steps` returns: both stages and the imaging-time saving.

    ``time_saving`` is ``scale**2 * exposure_ratio``: a scan with ``scale`` times the step along
    both axes takes ``scale**2`` fewer points, each ``exposure_ratio`` times shorter than the
    reference dwell time.
    """

    denoised: np.ndarray
    upscaled: np.ndarray
    scale: int
    exposure_ratio: float
    time_saving: float
    denoise_method: str
    upscale_method: str
    #: the upscaler's parameters as run (a network's ``noise`` is "denoised" unless given)
    upscale_params: dict = field(default_factory=dict)
    #: why the upscaler run is not the one asked for (:func:`restore_choice_steps`), or ""
    note: str = ""


def restore_steps(data, scale: int = 2, denoise_method: str | None = None,
                  upscale_method: str | None = None, wavenumbers=None, device=None,
                  exposure_ratio: float | None = None, upscale_params: dict | None = None
                  ) -> compute.Steps[RestoreResult]:
    """Fast scan restore: denoise a low-SNR LR scan, then super-resolve it by ``scale``.

    ``denoise_method`` / ``upscale_method`` default to each family's default; ``upscale_params``
    are the upscaler's parameters (e.g. ``{"adapt": "off"}``; checked before anything runs).
    ``exposure_ratio`` is how many times longer the reference dwell time is than this scan's
    (None: 1, only the fewer points count). Returns a :class:`RestoreResult` holding the denoised
    LR cube and the upscaled one. The upscaler keeps the values it is given at the measured
    pixels: here the denoised ones, so the result is the clean estimate everywhere. A network
    upscaler runs with ``noise="denoised"`` unless ``upscale_params`` says otherwise: its noise
    estimate, made along the spectra, may read what the denoiser kept as noise and shrink it
    away between the measured pixels, so it is used only where the self-check guards the result
    (:mod:`napari_deeper.superres.deep`; measured in docs/superres.md). At 2x a self-check on
    the raw scan, whose noise is independent between pixels, may run plain bilinear or bicubic
    instead (:func:`restore_choice_steps`); ``upscale_method`` and ``note`` then say so.
    """
    cube = as_cube(data)
    as_wavenumbers(wavenumbers, cube.shape[0])
    plan = restore_plan(cube.shape, scale, denoise_method, upscale_method, exposure_ratio, upscale_params)
    from .. import denoise

    denoised = yield from compute.stage(
        denoise.denoise_steps(cube, plan["denoise_method"], wavenumbers, device), 0, 3, "denoising"
    )
    denoised = np.asarray(denoised, dtype=np.float32)
    plan = yield from compute.stage(restore_choice_steps(cube, plan, device), 1, 3, "self-check on the scan")
    upscaled = yield from compute.stage(
        upscale_steps(denoised, plan["scale"], plan["upscale_method"], wavenumbers, device, **plan["upscale_params"]),
        2, 3, "super-resolving"
    )
    return RestoreResult(denoised, upscaled, **plan)


def restore_choice_steps(scan, plan: dict, device) -> compute.Steps[dict]:
    """``plan`` (:func:`restore_plan`) with the upscaler Fast scan restore runs on the denoised scan.

    At 2x, for an adapting network and a scan of at least
    :data:`~napari_deeper.superres.adapt.CHECK_MIN` pixels a side (its central part,
    :func:`~napari_deeper.superres.adapt.check_region`), the self-check on the raw ``scan``
    (:func:`~napari_deeper.superres.adapt.scan_check_steps`, with the plan's denoiser) may put
    plain bilinear or bicubic in its place, when the network is not significantly better on it;
    ``note`` then says so. Otherwise ``plan`` is returned as it is.
    """
    from .adapt import CHECK_MIN, check_region, scan_check_steps

    chosen, checked = FAMILY.check(plan["upscale_method"], {"scale": plan["scale"], **plan["upscale_params"]})
    if chosen.kind != "network" or plan["scale"] != 2 or checked["adapt"] == "off" or min(scan.shape[1:]) < CHECK_MIN:
        return plan
    from ..models.registry import cached_model

    model, _card = cached_model(chosen.model)
    check = yield from scan_check_steps(model, check_region(scan), compute.select_device(device), checked["tile"],
                                        checked["overlap"], plan["denoise_method"])
    if check is None or check.method == "network":
        return plan
    note = (f"{check.method} chosen by the self-check on the raw scan: {chosen.name} was not significantly better "
            "on it")
    return {**plan, "upscale_method": check.method, "upscale_params": {}, "note": note}


def restore_plan(shape, scale, denoise_method, upscale_method, exposure_ratio, upscale_params) -> dict:
    """What :func:`restore_steps` will run, checked before anything runs: ``scale``,
    ``exposure_ratio``, ``time_saving``, both method names and the upscaler's parameters (a
    network's ``noise`` is "denoised" unless given), as :class:`RestoreResult` fields."""
    from .. import denoise

    scale = check_scale(scale)
    ratio = 1.0 if exposure_ratio is None else float(exposure_ratio)
    if not np.isfinite(ratio) or ratio < 1.0:
        raise ValueError(f"exposure_ratio must be a number >= 1, got {exposure_ratio!r}")
    denoise_method = denoise.get_method(denoise_method).name
    upscale_params = dict(upscale_params or {})
    chosen = FAMILY.check(upscale_method, {"scale": scale, **upscale_params})[0]
    if chosen.kind == "network":
        upscale_params.setdefault("noise", "denoised")
    check_size(shape, scale)
    return {"scale": scale, "exposure_ratio": ratio, "time_saving": float(scale * scale * ratio),
            "denoise_method": denoise_method, "upscale_method": chosen.name, "upscale_params": upscale_params}


def restore(data, scale: int = 2, denoise_method: str | None = None,
            upscale_method: str | None = None, wavenumbers=None, device=None,
            exposure_ratio: float | None = None, upscale_params: dict | None = None) -> RestoreResult:
    """Plain-call version of :func:`restore_steps`."""
    return compute.run(restore_steps(data, scale, denoise_method, upscale_method, wavenumbers,
                                     device, exposure_ratio, upscale_params))
