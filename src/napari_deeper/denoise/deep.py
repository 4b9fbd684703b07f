"""Inference of the per-spectrum denoising networks (shipped or fine-tuned), in memory-sized chunks.

Each spectrum is divided by its largest absolute value before the network and multiplied back
after it, as the networks were trained, so users get their own units back. The cube is walked in
blocks of pixels (bounded host memory: one block of float32 copies beyond the output); inside a
block, :func:`napari_deeper.compute.map_batches` runs device-sized batches, halves the batch on a
GPU out-of-memory error and falls back to the CPU, and progress is yielded after every batch.
"""

from __future__ import annotations

import numpy as np

from ..compute import Progress, chunk_size, chunks, map_batches, select_device, share

#: Fewest bands a network accepts: below this a spectrum has no shape to learn from.
MIN_BANDS = 32
#: Spectra per batch on the CPU (larger batches fall out of the caches and run slower).
CPU_BATCH = 256


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


def network_steps(data: np.ndarray, model: str, device=None, batch_size: int | None = None):
    """Denoise every spectrum of a ``(B, Y, X)`` cube with the per-spectrum network ``model``."""
    n_bands = data.shape[0]
    if n_bands < MIN_BANDS:
        raise ValueError(
            f"the {model!r} network needs at least {MIN_BANDS} bands; this cube has {n_bands}"
        )
    device = select_device(device)
    net, card = load_denoiser(model, device)
    version = card.get("version", "")
    message = f"{model} {version}".strip() + f" on {device.type}"
    flat = data.reshape(n_bands, -1)
    n = flat.shape[1]
    if batch_size is None:
        if device.type == "cpu":
            # small batches keep the feature maps in the CPU caches: measured fastest
            batch_size = CPU_BATCH
        else:
            # activations: a few hundred float32 feature maps of the spectrum's length per spectrum
            batch_size = chunk_size(4 * n_bands * 256, device, minimum=16, maximum=4096)
    block = chunk_size(4 * n_bands * 4, None, minimum=batch_size, maximum=1 << 16)
    out = np.empty(data.shape, dtype=np.float32)
    out_flat = out.reshape(flat.shape)

    def apply(batch, dev):
        # after a GPU ran out of memory, map_batches continues on the CPU with a CPU copy
        return normalised_apply(net if dev == device else load_denoiser(model, dev)[0], batch, dev)

    yield Progress(0, n, message)
    for sl in chunks(n, block):
        spectra = np.ascontiguousarray(flat[:, sl].T)
        result = yield from share(map_batches(apply, spectra, device, batch_size, message),
                                  sl.start, sl.stop - sl.start, n)
        out_flat[:, sl] = result.T
    return out
