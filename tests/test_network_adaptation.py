"""The per-spectrum networks (``resunet``, ``aunet``) adapt to the user's cube: they improve a cube
unlike anything they were trained on within their time budget, repeat with a fixed number of
steps, fall back to the network as trained where they cannot adapt, and survive a GPU running
out of memory."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_deeper.compute import Progress, run
from napari_deeper.denoise import deep, denoise, denoise_steps


def _nmse(estimate, clean) -> float:
    return float(np.mean((estimate - clean) ** 2) / np.mean(clean**2))


@pytest.fixture(scope="module")
def foreign():
    """A cube not from our simulator: three species of broad and narrow Gaussian bands on a
    sloping background, mixed by smooth random fields, with Poisson noise at 40 photons and
    Gaussian read noise. The networks are loaded once here, so that timed runs time the method."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(2024)
    bands = np.arange(240, dtype=np.float64)
    species = []
    for centres in ((40, 95, 170), (60, 130, 200), (25, 110, 150)):
        peaks = sum(rng.uniform(0.4, 1.0) * np.exp(-0.5 * ((bands - c) / rng.uniform(2.0, 9.0)) ** 2) for c in centres)
        species.append(peaks + 0.3 * (1.0 - bands / bands[-1]))
    fields = np.stack([gaussian_filter(rng.random((32, 32)), 3.0) for _ in species])
    fields /= fields.max(axis=(1, 2), keepdims=True)
    clean = np.einsum("kb,kyx->byx", np.array(species), fields)
    clean *= 40.0 / clean.max()
    noisy = rng.poisson(clean) + rng.normal(0.0, 1.0, clean.shape)
    denoise(noisy[:, :8, :8].astype(np.float32), "resunet", adapt="off")
    return noisy.astype(np.float32), clean.astype(np.float32)


def test_adapting_improves_a_cube_unlike_the_training_data_within_the_budget(foreign):
    noisy, clean = foreign
    as_trained = _nmse(denoise(noisy, "resunet", adapt="off"), clean)
    progress: list[Progress] = []
    started = time.perf_counter()
    out = run(denoise_steps(noisy, "resunet", time_budget=6.0), progress.append)
    seconds = time.perf_counter() - started
    assert seconds < 6.0 + 1.5, f"took {seconds:.1f} s for a 6 s budget"
    assert out.shape == noisy.shape and out.dtype == np.float32
    losses = [p.loss for p in progress if ": step " in p.message and p.loss is not None]
    assert len(losses) > 3 and np.isfinite(losses).all()  # the loss is shown as it trains
    assert _nmse(out, clean) < 0.5 * as_trained, (as_trained, _nmse(out, clean))
    assert _nmse(out, clean) < 0.1 * _nmse(noisy, clean)
    assert "adapted" in progress[-1].message and "components" in progress[-1].message  # what it did, in words


def test_training_on_recorrupted_pairs_lowers_the_held_out_loss(foreign):
    """Recorrupted-to-Recorrupted steps bring the network's loss on held-out spectra down from
    the pretrained network's, towards and past the projection alone."""
    import torch

    from napari_deeper.models.registry import find_model, load_model

    noisy, _ = foreign
    projection, factor, _ = run(deep.projection_steps(noisy))
    net, _ = load_model(find_model("resunet").path, torch.device("cpu"))
    spectra = noisy.reshape(noisy.shape[0], -1).T.copy()
    variance = projection.white.variance(spectra.T).T * np.float32(factor)
    adaptation = deep.Adaptation(net, spectra, variance, np.arange(len(spectra)), projection, torch.device("cpu"))
    before, alone = adaptation.held_out_loss(), adaptation.held_out_loss(use_net=False)
    for _ in range(60):
        adaptation.step()
    after = adaptation.held_out_loss()
    assert after < before - 0.5 * (before - alone), (before, alone, after)


@pytest.mark.parametrize("method", ["resunet", "aunet"])
def test_a_fixed_number_of_steps_gives_the_same_result_every_time(foreign, method):
    noisy, _ = foreign
    first = denoise(noisy, method, steps=4)
    np.testing.assert_array_equal(first, denoise(noisy, method, steps=4))
    assert not np.array_equal(first, denoise(noisy, method, adapt="off"))


def test_the_projection_is_linear_and_keeps_its_subspace(foreign):
    noisy, _ = foreign
    projection, factor, _ = run(deep.projection_steps(noisy))
    assert 1 <= projection.components <= deep.MAX_COMPONENTS and factor > 0
    spectra = noisy.reshape(noisy.shape[0], -1).T[:50]
    once = projection(spectra, np.arange(50))
    np.testing.assert_allclose(projection(once, np.arange(50)), once, rtol=1e-4, atol=1e-4 * np.abs(once).max())
    twice = projection(2 * spectra, np.arange(50)) - projection(spectra, np.arange(50))
    np.testing.assert_allclose(twice + projection(np.zeros_like(spectra), np.arange(50)), once, rtol=1e-4,
                               atol=1e-4 * np.abs(once).max())


def test_too_few_spectra_or_no_noise_model_run_the_network_as_trained(foreign):
    noisy, _ = foreign
    small = noisy[:, :6, :6]
    with pytest.warns(RuntimeWarning, match="36 spectra, too few to adapt on"):
        out = denoise(small, "resunet")
    np.testing.assert_array_equal(out, denoise(small, "resunet", adapt="off"))
    constant = np.full((100, 10, 10), 3.0, dtype=np.float32)
    with pytest.warns(RuntimeWarning, match="constant.*the network runs as trained"):
        assert denoise(constant, "aunet").shape == constant.shape


def test_a_budget_too_short_to_train_says_so(foreign):
    noisy, clean = foreign
    with pytest.warns(RuntimeWarning, match="no training step fitted in the 0.01 s time budget"):
        out = run(deep.network_steps(noisy, "resunet", time_budget=0.01))
    assert _nmse(out, clean) < 0.1 * _nmse(noisy, clean)  # the projection or the network as trained, still used


def test_bad_parameters_are_refused(foreign):
    noisy, _ = foreign
    with pytest.raises(ValueError, match="'adapt' must be one of auto, off"):
        denoise(noisy, "resunet", adapt="sometimes")
    with pytest.raises(ValueError, match="time_budget"):
        denoise(noisy, "resunet", time_budget=0.0)


def test_gpu_out_of_memory_halves_the_batch_then_continues_on_the_cpu(foreign):
    import torch

    from napari_deeper.denoise.selfsupervised import with_oom_fallback
    from napari_deeper.models.registry import find_model, load_model

    noisy, _ = foreign
    projection, factor, _ = run(deep.projection_steps(noisy))
    net, _ = load_model(find_model("resunet").path, torch.device("cpu"))
    spectra = noisy.reshape(noisy.shape[0], -1).T[:200].copy()
    variance = projection.white.variance(spectra.T).T * np.float32(factor)
    adaptation = deep.Adaptation(net, spectra, variance, np.arange(200), projection, torch.device("cpu"))
    adaptation.step()
    adaptation.device = torch.device("cuda")  # as if the first steps had run on a GPU
    sizes = []

    def action():
        sizes.append((adaptation.device.type, adaptation.batch_size))
        if adaptation.device.type == "cuda":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return adaptation.step()

    def shrink():
        if adaptation.batch_size <= 32:
            return False
        adaptation.batch_size //= 2
        return True

    with pytest.warns(RuntimeWarning, match="adapting: cuda ran out of memory; continuing on the CPU"):
        loss = with_oom_fallback(action, adaptation, shrink, "adapting")
    assert np.isfinite(loss)
    assert sizes == [("cuda", 128), ("cuda", 64), ("cuda", 32), ("cpu", 32)]
    assert all(t.device.type == "cpu" for state in adaptation.optimizer.state.values()
               for t in state.values() if hasattr(t, "device"))
