"""The per-spectrum denoising networks (shipped or fine-tuned): adapted to the cube, then applied.

**Adaptation** (``adapt="auto"``, the default). The networks were trained on simulated spectra;
an instrument we never simulated gives them spectra of another shape, and as trained they can
be worse than the noisy input (measured on a Trivista map: docs/denoise.md). So before it is
applied the network learns from the user's cube itself, with no clean answer:

1. The cube's Poisson-Gaussian noise model and its whitened spectral subspace, the components
   above the noise's Marchenko-Pastur edge (the steps of ``n2s``,
   :mod:`~napari_deeper.denoise.selfsupervised`): the network sees every spectrum projected on
   them (:class:`Projection`), where much of the noise is already gone and the spectra look
   like the cube's own.
2. **Recorrupted-to-Recorrupted** training (Pang et al., CVPR 2021): with ``z`` drawn from the
   noise model, the network maps ``y + z`` to ``y - z``. For Gaussian noise the two are
   independent given the clean spectrum, so the squared error against ``y - z`` is the error
   against the clean spectrum plus a constant: the loss the network would have with the clean
   answer. Training stops when the time budget says so.
3. Every :data:`VALIDATE_EVERY` steps the same loss on held-out spectra picks the weights kept
   (the pretrained ones included), and the projection alone is a candidate too: the network is
   used only where it is estimated to help.

Cubes with fewer than :data:`MIN_ADAPT_SPECTRA` spectra, or whose noise cannot be modelled (a
constant cube), get the network as trained, with a warning.

**Inference.** Each spectrum is divided by its largest absolute value before the network and
multiplied back after it, as the networks were trained, so users get their own units back. The
cube is walked in blocks of pixels (bounded host memory: one block of float32 copies beyond the
output); inside a block, :func:`napari_deeper.compute.map_batches` runs device-sized batches,
halves the batch on a GPU out-of-memory error and falls back to the CPU, and progress is
yielded after every batch.
"""

from __future__ import annotations

import copy
import time
import warnings

import numpy as np

from ..compute import Progress, chunk_size, chunks, map_batches, select_device, share

#: Fewest bands a network accepts: below this a spectrum has no shape to learn from.
MIN_BANDS = 32
#: Spectra per batch on the CPU (larger batches fall out of the caches and run slower).
CPU_BATCH = 256
ADAPT_CHOICES = ("auto", "off")
#: Fewest spectra a network adapts on (fewer: the network as trained).
MIN_ADAPT_SPECTRA = 64
#: Default time budget of an adapting run, seconds (about 45 s of training on a 40 x 40 x 500 cube).
DEFAULT_BUDGET = 60.0
#: Spectra the adaptation draws from at most (evenly spaced over the image), and held out of them.
ADAPT_SPECTRA, HELD_OUT = 16384, 512
#: Spectra per training step, Adam's learning rate, and steps between two held-out losses.
ADAPT_BATCH, LEARNING_RATE, VALIDATE_EVERY = 128, 5e-4, 25
#: Most spectral components the projection keeps, and spectra projected at a time.
MAX_COMPONENTS, PROJECT_SPECTRA = 32, 4096


def load_denoiser(name: str, device):
    """``(model, card)`` for the denoising model ``name`` on ``device`` (the registry's cache)."""
    from ..models.registry import cached_model, find_model

    task = find_model(name).card.get("task")
    if task != "denoise":
        raise ValueError(f"model {name!r} is a {task!r} model, not a denoising one")
    return cached_model(name, device)


def normalised_apply(model, spectra, device):
    """Run ``model`` on ``(n, B)`` spectra, each scaled to a maximum |value| of 1 and back."""
    import torch

    with torch.inference_mode():
        x = torch.as_tensor(np.ascontiguousarray(spectra), dtype=torch.float32).to(device)
        scale = x.abs().amax(dim=1, keepdim=True)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        y = model(x / safe) * safe
        y = torch.where(scale > 0, y, torch.zeros_like(y))
        return y.cpu().numpy().astype(np.float32, copy=False)


class Projection:
    """Spectra onto the cube's whitened spectral subspace (see :mod:`~napari_deeper.denoise.selfsupervised`).

    A spectrum ``y`` of pixel ``p`` becomes ``(mean + B B' (w y - mean)) / w`` with ``w`` the
    whitening's weights of that pixel and the bands (``FIT_POWER``), ``B`` the subspace's basis:
    linear in ``y``, so a recorrupted spectrum is projected with its pixel's own weights.
    """

    def __init__(self, white, subspace):
        self.white, self.subspace = white, subspace

    @property
    def components(self) -> int:
        return self.subspace.basis.shape[1]

    def weights(self, pixels) -> np.ndarray:
        """``(n, B)`` weights of the pixels ``pixels`` (an index or a slice of the flat image)."""
        from .selfsupervised import FIT_POWER

        u = self.subspace.pixel_scale[pixels]
        if self.white.noise is None:
            return np.ones((len(u), len(self.subspace.mean)), dtype=np.float32)
        pixel, band = self.white.scales(u, FIT_POWER)
        return pixel[:, None] * band[None, :]

    def __call__(self, spectra: np.ndarray, pixels) -> np.ndarray:
        """The ``(n, B)`` spectra of the pixels ``pixels``, projected."""
        w = self.weights(pixels)
        mean, basis = self.subspace.mean[None, :], self.subspace.basis
        centred = np.asarray(spectra, dtype=np.float32) * w - mean
        return ((centred @ basis) @ basis.T + mean) / w


def projection_steps(data: np.ndarray):
    """Steps generator: ``(Projection, noise variance factor, words)`` of a ``(B, Y, X)`` cube."""
    from ..compute import one_blas_thread
    from .selfsupervised import subspace_steps, whitening

    white, _model, words = whitening(data)
    with one_blas_thread():  # thin products: BLAS threads only add contention
        subspace = yield from subspace_steps(data, white, None, MAX_COMPONENTS, "spectral components")
    return Projection(white, subspace), subspace.noise_factor, words


class Adaptation:
    """Recorrupted-to-Recorrupted training of a per-spectrum network on a cube's own spectra.

    ``spectra`` ``(n, B)`` are a sample of the cube (``pixels``: where they are in the flat
    image) and ``variance`` their noise variance. :data:`HELD_OUT` of them drawn at random (at
    most an eighth) are held out, with one fixed recorruption, to score weights (:meth:`held_out_loss`).
    """

    def __init__(self, net, spectra, variance, pixels, projection: Projection, device, seed: int = 0):
        import torch

        self.net, self.projection, self.device = net, projection, device
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        order = self.rng.permutation(len(spectra))
        n_held = min(HELD_OUT, len(spectra) // 8)
        held, self.train = order[:n_held], order[n_held:]
        self.spectra, self.sd, self.pixels = spectra, np.sqrt(variance).astype(np.float32), np.asarray(pixels)
        self.held_in, self.held_target = self.recorrupted(held)
        self.batch_size = ADAPT_BATCH
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=LEARNING_RATE)

    def to(self, device) -> None:
        """Go on on ``device`` (after a GPU ran out of memory); the optimiser's state moves too."""
        self.device = device
        self.net.to(device)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if hasattr(value, "to"):
                    state[key] = value.to(device)

    def recorrupted(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """``(projected y + z, y - z)`` of the sample's spectra ``rows``, ``z`` drawn from the noise."""
        y = self.spectra[rows]
        z = self.sd[rows] * self.rng.standard_normal(y.shape, dtype=np.float32)
        return self.projection(y + z, self.pixels[rows]), y - z

    def step(self) -> float:
        """One training step; returns its loss (mean squared error of spectra scaled to 1)."""
        import torch

        x, target = self.recorrupted(self.train[self.rng.integers(0, len(self.train), self.batch_size)])
        x = torch.as_tensor(x, device=self.device)
        target = torch.as_tensor(target, device=self.device)
        scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
        self.net.train()
        loss = torch.mean((self.net(x / scale) - target / scale) ** 2)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def held_out_loss(self, use_net: bool = True) -> float:
        """The training loss on the held-out spectra: of the network, or of the projection alone."""
        self.net.eval()
        out = normalised_apply(self.net, self.held_in, self.device) if use_net else self.held_in
        scale = np.maximum(np.abs(self.held_in).max(axis=1, keepdims=True), 1e-12)
        return float(np.mean(((out - self.held_target) / scale) ** 2))


def adapt_steps(net, data: np.ndarray, flat, device, time_budget: float, steps: int | None, seed: int, started: float):
    """Steps generator: the network adapted to ``data`` (a copy; see the module notes); ``flat``:
    its ``(B, N)`` pixels (:func:`~napari_deeper.denoise.classical.pixel_blocks`).

    Returns ``(network or None, projection, words)``: None when the projection alone scored
    better than every network tried. Training stops after ``steps`` steps, or early enough for
    the run (started at ``started``, ``time.perf_counter()``) to finish within ``time_budget``.
    """
    from .selfsupervised import Clock, cpu_threads, torch_threads, weights_copy, with_oom_fallback

    budget = float(time_budget)
    clock = Clock(budget, started)
    elapsed, tick = clock.elapsed, clock.tick
    yield tick("adapting: estimating the noise")
    projection, noise_factor, words = yield from projection_steps(data)
    n = flat.shape[1]
    pixels = np.unique(np.linspace(0, n - 1, min(n, ADAPT_SPECTRA)).round().astype(int))
    spectra = np.ascontiguousarray(flat[:, pixels].T, dtype=np.float32)
    variance = projection.white.variance(spectra.T).T * np.float32(noise_factor)
    adaptation = Adaptation(copy.deepcopy(net), spectra, variance, pixels, projection, device, seed)

    def shrink_batch() -> bool:
        if adaptation.batch_size <= 16:
            return False
        adaptation.batch_size //= 2
        return True

    threads = cpu_threads() if device.type == "cpu" and steps is None else None
    with torch_threads(threads):
        timed = time.perf_counter()
        best_loss = with_oom_fallback(adaptation.held_out_loss, adaptation, lambda: False, "adapting")
        # one network pass over the whole cube, from the pass over the held-out spectra
        network_seconds = (time.perf_counter() - timed) * n / max(1, len(adaptation.held_in))
        projection_loss = adaptation.held_out_loss(use_net=False)
        best_state, best_step = weights_copy(adaptation.net), 0
        deadline = budget - 1.5 * network_seconds - 0.05 * budget
        limit = steps if steps is not None else np.inf
        step, last, loss = 0, 0.0, None
        k = projection.components
        message = f"adapting on {k} spectral components"
        yield tick(f"{message} ({words}; held-out loss: projection {projection_loss:.4g}, network as trained "
                   f"{best_loss:.4g})", best_loss)
        while step < limit and (steps is not None or elapsed() + last < deadline):
            timed = time.perf_counter()
            loss = with_oom_fallback(adaptation.step, adaptation, shrink_batch, "adapting")
            last = time.perf_counter() - timed
            step += 1
            if step % VALIDATE_EVERY == 0 or step == limit:
                held = with_oom_fallback(adaptation.held_out_loss, adaptation, lambda: False, "adapting")
                if held < best_loss:
                    best_loss, best_state, best_step = held, weights_copy(adaptation.net), step
            yield tick(f"{message}: step {step}, loss {loss:.4g} (best held-out {best_loss:.4g})", loss)
    if steps is None and step == 0:
        advice = (f"no training step fitted in the {budget:g} s time budget (one pass of the network over the cube "
                  f"takes about {network_seconds:.0f} s): give it more time to adapt")
        warnings.warn(f"adapting: {advice}", RuntimeWarning, stacklevel=3)
        yield tick(f"adapting: {advice}")
    if projection_loss <= best_loss:
        return None, projection, (f"adapted {step} steps; the projection on {k} components alone scored best "
                                  f"(held-out loss {projection_loss:.4g}), the network is not used")
    adaptation.net.load_state_dict(best_state)
    adaptation.net.eval()
    return adaptation.net, projection, (f"adapted on {k} spectral components, weights of step {best_step} of {step} "
                                        f"(held-out loss {best_loss:.4g}; projection alone {projection_loss:.4g})")


def network_steps(data: np.ndarray, model: str, device=None, batch_size: int | None = None, adapt: str = "auto",
                  time_budget: float = DEFAULT_BUDGET, steps: int | None = None, seed: int = 0, target=None):
    """Denoise every spectrum of a ``(B, Y, X)`` cube with the per-spectrum network ``model``.

    ``adapt`` "auto" first adapts the network to the cube (see the module notes) within
    ``time_budget`` seconds (``steps``: that many training steps instead, the same result on
    every run); "off" runs the network as trained. A lazy ``data`` is read block by block (and
    where the adaptation samples it); ``target`` (optional) receives the result instead of a new
    cube (see :func:`~napari_deeper.denoise.classical.result_target`).
    """
    from .classical import pixel_blocks, result_target

    started = time.perf_counter()
    choice = str(adapt).lower()
    if choice not in ADAPT_CHOICES:
        raise ValueError(f"adapt must be one of {', '.join(ADAPT_CHOICES)}; got {adapt!r}")
    if not float(time_budget) > 0:
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    n_bands = data.shape[0]
    if n_bands < MIN_BANDS:
        raise ValueError(
            f"the {model!r} network needs at least {MIN_BANDS} bands; this cube has {n_bands}"
        )
    device = select_device(device)
    net, card = load_denoiser(model, device)
    version = card.get("version", "")
    message = f"{model} {version}".strip() + f" on {device.type}"
    flat, slices = pixel_blocks(data)
    n = flat.shape[1]
    projection = None
    if choice == "auto":
        reason = f"the cube has {n} spectra, too few to adapt on (at least {MIN_ADAPT_SPECTRA})" \
            if n < MIN_ADAPT_SPECTRA else None
        if reason is None:
            try:
                net, projection, words = yield from share(
                    adapt_steps(net, data, flat, device, time_budget, steps, seed, started), 0, 9, 10)
                message += f", {words}"
            except ValueError as error:  # no noise to model: a constant or noiseless cube
                reason = str(error)
        if reason is not None:
            warnings.warn(f"{model}: {reason}; the network runs as trained", RuntimeWarning, stacklevel=2)
            message += " (as trained)"
    start, total = (9, 10) if choice == "auto" else (0, 1)  # adapting takes most of the time
    out, out_flat = result_target(target, data.shape)
    yield from share(_apply_steps(net, flat, slices, out_flat, device, batch_size, message, projection),
                     start, 1, total)
    return out


def _apply_steps(net, flat, slices, out_flat, device, batch_size: int | None, message: str,
                 projection: Projection | None = None):
    """Steps generator: ``net`` (None: the projection alone) on every spectrum of the ``(B, N)``
    pixels ``flat``, block by block (``slices``), into ``out_flat``."""
    n_bands, n = flat.shape
    if batch_size is None:
        if device.type == "cpu":
            # small batches keep the feature maps in the CPU caches: measured fastest
            batch_size = CPU_BATCH
        else:
            # activations: a few hundred float32 feature maps of the spectrum's length per spectrum
            batch_size = chunk_size(4 * n_bands * 256, device, minimum=16, maximum=4096)
    on_cpu = {}

    def apply(batch, dev):
        if net is None:
            return batch
        if dev != device:  # after a GPU ran out of memory, map_batches goes on on the CPU, with a copy
            if "net" not in on_cpu:
                on_cpu["net"] = copy.deepcopy(net).to(dev)
            return normalised_apply(on_cpu["net"], batch, dev)
        return normalised_apply(net, batch, dev)

    yield Progress(0, n, message)
    for sl in slices:
        spectra = np.ascontiguousarray(flat[:, sl].T)
        if projection is not None:  # in place, a part at a time: its temporaries stay small
            for part in chunks(len(spectra), PROJECT_SPECTRA):
                spectra[part] = projection(spectra[part], slice(sl.start + part.start, sl.start + part.stop))
        result = yield from share(map_batches(apply, spectra, device, batch_size, message),
                                  sl.start, sl.stop - sl.start, n)
        out_flat[:, sl] = result.T
