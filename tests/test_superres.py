"""Super-resolution core: grid alignment, shapes, any band count, tiling, units, fine-tuning, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper import compute
from napari_deeper.superres import METHODS, available_methods, restore_steps, upscale, upscale_steps
from napari_deeper.superres.adapt import CHECK_MIN
from napari_deeper.superres.interpolation import lr_coordinates

INTERPOLATION = ["nearest", "bilinear", "bicubic"]
SCALES = [2, 3, 4]
TINY = {"n_components": 4, "features": 8, "groups": 1, "blocks": 1, "reduction": 4}


def _tiny_model(name: str, folder, seed: int = 0, tail_std: float = 0.05):
    """Save a tiny HyRISR whose output layer is random (an untrained one is exactly bicubic)."""
    import torch

    from napari_deeper.models import build, save_model

    torch.manual_seed(seed)
    model = build("hyrisr", TINY)
    for head in model.heads.heads.values():
        torch.nn.init.normal_(head.tail.weight, std=tail_std)
    save_model(model, name, "hyrisr", TINY, {"task": "superres", "scales": [2, 3, 4]}, folder)
    return model


def _shipped(name: str) -> None:
    from napari_deeper.models import list_models

    if name not in {info.name for info in list_models(task="superres") if info.shipped}:
        pytest.skip(f"shipped weights {name!r} are not in the package")


# --- alignment ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("method", INTERPOLATION)
def test_output_pixel_on_grid_equals_input(method, scale, rng):
    data = rng.random((3, 7, 9), dtype=np.float32)
    out = upscale(data, scale, method)
    assert out.shape == (3, 7 * scale, 9 * scale)
    np.testing.assert_allclose(out[:, scale // 2::scale, scale // 2::scale], data, atol=1e-5)


@pytest.mark.parametrize("scale", SCALES)
def test_bright_pixel_lands_on_its_grid_position(scale):
    data = np.zeros((1, 9, 9), dtype=np.float32)
    data[0, 4, 3] = 1.0
    expected = (scale * 4 + scale // 2, scale * 3 + scale // 2)
    nearest = upscale(data, scale, "nearest")[0]
    assert nearest.sum() == scale * scale
    assert np.all(nearest[4 * scale:5 * scale, 3 * scale:4 * scale] == 1.0)
    for method in ("bilinear", "bicubic"):
        out = upscale(data, scale, method)[0]
        assert np.unravel_index(np.argmax(out), out.shape) == expected, method
        # symmetric around the peak: the interpolation is not shifted by a sub-pixel
        y, x = expected
        np.testing.assert_allclose(out[y - 1, x], out[y + 1, x], atol=1e-6)
        np.testing.assert_allclose(out[y, x - 1], out[y, x + 1], atol=1e-6)


@pytest.mark.parametrize("scale", SCALES)
def test_linear_ramp_is_reproduced_between_samples(scale):
    n = 16
    ramp = np.broadcast_to(np.arange(n, dtype=np.float32), (2, n, n)).copy()
    coords = lr_coordinates(n * scale, scale)
    inside = (coords >= 0) & (coords <= n - 1)
    bilinear = upscale(ramp, scale, "bilinear")[0, 0]
    np.testing.assert_allclose(bilinear[inside], coords[inside], atol=1e-5)
    # beyond the outer samples bilinear holds the edge value (no extrapolation overshoot)
    assert bilinear.min() == 0.0 and bilinear.max() == n - 1
    interior = inside & (coords >= 3) & (coords <= n - 4)
    bicubic = upscale(ramp, scale, "bicubic")[0, 0]
    np.testing.assert_allclose(bicubic[interior], coords[interior], atol=5e-3)
    assert bicubic.min() > -0.2 and bicubic.max() < n - 1 + 0.2


def test_network_keeps_the_grid():
    _shipped("hyrisr")
    y, x = np.mgrid[0:24, 0:24]
    blob = np.exp(-((y - 11) ** 2 + (x - 8) ** 2) / (2 * 1.5**2)).astype(np.float32)
    spectra = np.stack([np.sin(np.linspace(0, 3, 40)) + 1.5, np.cos(np.linspace(0, 5, 40)) + 1.5])
    cube = np.tensordot(spectra[0], blob, 0) + np.tensordot(spectra[1], 0.2 + 0 * blob, 0)
    for scale in SCALES:
        out = upscale(cube.astype(np.float32), scale, "hyrisr", device="cpu")
        band = out[np.argmax(spectra[0] - spectra[1])]
        peak = np.unravel_index(np.argmax(band), band.shape)
        assert peak == (scale * 11 + scale // 2, scale * 8 + scale // 2), scale


# --- shapes, band counts, units ----------------------------------------------------------------


@pytest.mark.parametrize("bands", [1, 3, 37])
def test_any_band_count_every_method(bands, user_models, rng):
    _tiny_model("tiny", user_models)
    data = rng.random((bands, 6, 5), dtype=np.float32)
    for method in [*INTERPOLATION, "tiny"]:
        for scale in SCALES:
            out = upscale(data, scale, method, device="cpu")
            assert out.shape == (bands, 6 * scale, 5 * scale) and out.dtype == np.float32
            assert np.all(np.isfinite(out))


def test_images_as_small_as_the_scale(user_models, rng):
    _tiny_model("tiny", user_models)
    for method in [*INTERPOLATION, "tiny"]:
        for scale in SCALES:
            data = rng.random((3, scale, scale), dtype=np.float32)
            out = upscale(data, scale, method, tile=8) if method == "tiny" else upscale(data, scale, method)
            assert out.shape == (3, scale * scale, scale * scale) and np.all(np.isfinite(out))
            if method != "tiny":
                np.testing.assert_allclose(out[:, scale // 2::scale, scale // 2::scale], data,
                                           atol=1e-6)


def test_five_hundred_bands_with_shipped_networks(rng):
    for name in ("hyrisr", "srresnet"):
        _shipped(name)
        data = rng.random((500, 12, 10), dtype=np.float32)
        out = upscale(data, 2, name, device="cpu")
        assert out.shape == (500, 24, 20)


def _smooth_cube(rng, bands=20, shape=(9, 8), components=3):
    """A noise-free cube: spectra linear along the bands (their second differences, the noise
    measure, are zero) times smooth maps."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    maps = np.stack([np.sin(y / 2.0 + k) * np.cos(x / 3.0 - k) + 1.5 for k in range(components)])
    w = np.linspace(0, 1, bands)
    spectra = np.stack([1.0 + (k - 1.0) * (w - 0.5) + 0.2 * k for k in range(components)])
    return np.tensordot(spectra.T, maps, 1).astype(np.float32)


def test_untrained_network_on_a_noise_free_cube_is_exactly_bicubic(user_models, rng):
    from napari_deeper.models import build, save_model

    model = build("hyrisr", TINY)
    save_model(model, "zero", "hyrisr", TINY, {"task": "superres"}, user_models)
    data = _smooth_cube(rng)
    np.testing.assert_allclose(upscale(data, 3, "zero", adapt="off"), upscale(data, 3, "bicubic"), atol=1e-5)


@pytest.mark.parametrize("adapt", ["off", "auto", "on"])
def test_networks_keep_the_measured_pixels(adapt, user_models, rng):
    """Output pixel f*i + f//2 is input pixel i, exactly, whatever the network and adaptation do."""
    _tiny_model("tiny", user_models, tail_std=0.2)
    data = (_smooth_cube(rng, shape=(18, 17)) + 0.05 * rng.standard_normal((20, 18, 17))).astype(np.float32)
    for scale in SCALES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "on" warns where the cube is too small
            out = upscale(data, scale, "tiny", adapt=adapt, adapt_steps=3)
        np.testing.assert_array_equal(out[:, scale // 2::scale, scale // 2::scale], data)


def test_noise_between_the_measured_pixels_is_treated_as_noise(user_models, rng):
    """A featureless noisy cube: between the measured pixels the estimate is close to the mean
    spectrum (its clean signal), far closer than interpolated noise."""
    from napari_deeper.models import build, save_model

    save_model(build("hyrisr", TINY), "zero", "hyrisr", TINY, {"task": "superres"}, user_models)
    mean = np.linspace(5.0, 9.0, 60, dtype=np.float32)[:, None, None]
    data = (mean + rng.standard_normal((60, 12, 12))).astype(np.float32)
    between = np.ones((24, 24), bool)
    between[1::2, 1::2] = False
    estimates = {"zero": upscale(data, 2, "zero", adapt="off"), "bilinear": upscale(data, 2, "bilinear")}
    error = {name: np.mean((out[:, between] - mean[:, :, 0]) ** 2) for name, out in estimates.items()}
    assert error["zero"] < 0.1 * error["bilinear"]


def test_noise_level_is_measured_along_the_bands(rng):
    from napari_deeper.superres.deep import band_noise

    clean = np.tensordot(np.sin(np.linspace(0, 3, 80)) + 2, rng.random((20, 20)), 0)
    noisy = clean + 0.3 * rng.standard_normal(clean.shape)
    measured = band_noise(noisy)  # the variance 0.09 of each band, from 400 pixels
    np.testing.assert_allclose(measured.mean(), 0.09, rtol=0.1)
    np.testing.assert_allclose(measured, 0.09, rtol=0.5)
    assert band_noise(clean).max() < 1e-4
    assert np.all(band_noise(noisy[:2]) == 0)  # two bands: no second difference to measure it


def test_units_and_offsets_come_back(user_models, rng):
    _tiny_model("tiny", user_models)
    data = rng.random((30, 10, 10), dtype=np.float32)
    # the pipeline itself (noise shares included); adaptation's choices are tested on their own
    base = upscale(data, 2, "tiny", adapt="off")
    assert np.abs(base - upscale(data, 2, "bicubic")).max() > 1e-3  # the network does something
    scaled = upscale(data * 1000.0 + 50.0, 2, "tiny", adapt="off")
    np.testing.assert_allclose(scaled, base * 1000.0 + 50.0, rtol=1e-4, atol=2e-2)


def test_input_is_not_modified(user_models, rng):
    _tiny_model("tiny", user_models)
    data = rng.random((5, 8, 8), dtype=np.float32)
    copy = data.copy()
    for method in [*INTERPOLATION, "tiny"]:
        upscale(data, 2, method)
    np.testing.assert_array_equal(data, copy)


# --- tiling ------------------------------------------------------------------------------------


def test_tiled_equals_untiled_within_tolerance(user_models, rng):
    _tiny_model("tiny", user_models, tail_std=0.2)
    y, x = np.mgrid[0:40, 0:36]
    maps = np.stack([np.sin(y / 3.0) * np.cos(x / 4.0), (y + x) / 76.0, rng.random((40, 36))])
    cube = np.tensordot(rng.random((25, 3)), maps, 1).astype(np.float32)
    whole = upscale(cube, 2, "tiny", tile=512)
    tiled = upscale(cube, 2, "tiny", tile=12, overlap=8)
    correction = np.abs(whole - upscale(cube, 2, "bicubic")).max()
    assert correction > 1e-2
    assert np.abs(tiled - whole).max() < 0.05 * correction


def test_tiled_shipped_model_has_no_seams(rng):
    _shipped("hyrisr")
    y, x = np.mgrid[0:48, 0:48]
    maps = np.stack([np.sin(y / 4.0) * np.cos(x / 5.0) + 1, ((y - 20) ** 2 + (x - 30) ** 2 < 90) * 1.0])
    cube = np.tensordot(rng.random((50, 2)), maps, 1).astype(np.float32)
    whole = upscale(cube, 2, "hyrisr", device="cpu", tile=512)
    tiled = upscale(cube, 2, "hyrisr", device="cpu", tile=16)
    correction = np.abs(whole - upscale(cube, 2, "bicubic")).max()
    assert np.abs(tiled - whole).max() < 0.01 * correction + 1e-6


def test_progress_is_reported():
    data = np.ones((70, 5, 5), dtype=np.float32)
    seen = []
    compute.run(upscale_steps(data, 2, "bilinear"), seen.append)
    assert seen and seen[-1].done == seen[-1].total


# --- zero-shot adaptation -----------------------------------------------------------------------


def _rectangles(n: int = 48, bands: int = 60, seed: int = 0) -> np.ndarray:
    """Thin-walled rectangles of three species, like a micro-patterned substrate or a resolution
    target: a texture the shipped networks never saw (they were trained on cells, fibres, tissue,
    sharp-edged domains and particles)."""
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(3):
        image = np.zeros((n, n))
        for _ in range(5):
            (y0, x0), (h, w) = rng.integers(2, n - 14, 2), rng.integers(6, 14, 2)
            image[y0:y0 + h, x0:x0 + w] += 1.0
            image[y0 + 1:y0 + h - 1, x0 + 1:x0 + w - 1] -= 1.0  # one pixel wide walls
        maps.append(image)
    w = np.linspace(0, 1, bands)
    spectra = np.stack([np.exp(-((w - c) ** 2) / 0.005) for c in (0.3, 0.5, 0.7)]) + 0.2
    return np.tensordot(spectra.T, np.stack(maps), 1).astype(np.float32)


def test_adaptation_improves_a_cube_the_network_never_saw_within_its_budget():
    _shipped("hyrisr")
    from napari_deeper import metrics
    from napari_deeper.models.registry import cached_model
    from napari_deeper.superres.deep import Report, network_upscale_steps

    hr = _rectangles()
    lr = np.ascontiguousarray(hr[:, 1::2, 1::2])
    model, _ = cached_model("hyrisr")
    psnr, reports = {}, {}
    for adapt in ("off", "on"):
        reports[adapt] = Report()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = compute.run(network_upscale_steps(model, lr, 2, "cpu", adapt=adapt, adapt_steps=100000,
                                                    adapt_seconds=2.0, report=reports[adapt]))
        psnr[adapt] = metrics.psnr(out, hr, float(np.ptp(hr)))
        assert any(str(w.message).startswith("fine-tuning stopped after") for w in caught) == (adapt == "on")
    assert psnr["on"] > psnr["off"] + 0.5, psnr
    tuned = reports["on"]
    assert 1 <= tuned.adapted < 100000 and tuned.seconds < 2.0 + 10.0  # stopped by its budget
    assert any("the 2 s budget was spent" in note for note in tuned.notes)
    assert reports["off"].adapted == 0 and reports["off"].check is None


def test_adaptation_is_reproducible_within_its_steps(user_models, rng):
    """Same cube, same steps: the same result (a recipe replays it), as long as the time budget
    does not cut the fine-tuning short."""
    _tiny_model("tiny", user_models)
    data = (_smooth_cube(rng, shape=(20, 20)) + 0.05 * rng.standard_normal((20, 20, 20))).astype(np.float32)
    runs = [upscale(data, 2, "tiny", adapt="on", adapt_steps=5, adapt_seconds=600.0) for _ in range(2)]
    np.testing.assert_array_equal(*runs)


def test_self_check_scores_the_cube_it_would_make(user_models, rng):
    """The check's closed-form errors are those of the cube assembled at its weight, the best in
    0..1, over the four coarser cubes together."""
    import torch

    from napari_deeper.models.registry import cached_model
    from napari_deeper.superres import adapt
    from napari_deeper.superres.deep import Report, assemble_steps, band_noise, correction_steps, prepare

    _tiny_model("tiny", user_models, tail_std=0.3)
    model, _ = cached_model("tiny")
    cpu = torch.device("cpu")
    data = (_smooth_cube(rng, bands=30, shape=(16, 14)) + 0.1 * rng.standard_normal((30, 16, 14))).astype(np.float32)
    pieces, made = [], []
    for offset in adapt.OFFSETS:
        small, target, mask, window = adapt._check_pairs(data, offset)
        pieces.append(compute.run(adapt._variant_steps(model, small, small, target, mask, band_noise(data), None, cpu,
                                                       96, 12, window)))
        prep = prepare(small, model.n_components, band_noise(data))
        made.append((small, target, mask, window, prep, compute.run(correction_steps(model, prep.scores, 2, cpu))))
    weight, best, plain = adapt._fit(pieces)

    def error(w):  # per pixel, mean over the bands, every coarser cube's pixels in turn
        found = []
        for small, target, mask, window, prep, correction in made:
            out = compute.run(assemble_steps(small, 2, prep, correction, w))[:, window[0], window[1]]
            found.append(np.mean((out[:, mask].astype(np.float64) - target[:, mask]) ** 2, axis=0))
        return np.concatenate(found)

    assert 0.0 < weight <= 1.0 and best.shape == plain.shape == (sum(m.sum() for _, _, m, *_ in made),)
    np.testing.assert_allclose(best, error(weight), rtol=1e-4)
    np.testing.assert_allclose(plain, error(0.0), rtol=1e-4)
    assert all(best.mean() <= error(w).mean() * (1 + 1e-4) for w in (0.0, 0.25, 0.5, 0.75, 1.0))
    check = compute.run(adapt.self_check_steps(model, data, 2, cpu, 96, 12, Report(), bicubic=1.0))
    np.testing.assert_allclose(check.errors["network"], best.mean(), rtol=1e-6)
    assert set(check.errors) == {"network", "denoised network", "bilinear", "bicubic", "interpolation"}
    candidates = ("network", "denoised network", "bilinear", "bicubic")
    assert check.method == min(candidates, key=check.errors.get)


def test_a_cube_too_small_to_adapt_says_so_and_uses_the_network_as_trained(user_models, rng):
    _tiny_model("tiny", user_models, tail_std=0.2)
    data = _smooth_cube(rng, shape=(10, 10))
    with pytest.warns(RuntimeWarning, match=r"10 x 10 pixels is too small to fine-tune at 2x \(it needs 16 x 16\)"):
        upscale(data, 2, "tiny", adapt="on")  # the self-check still runs
    tiny = np.ascontiguousarray(data[:, :5, :5])
    with pytest.warns(RuntimeWarning) as caught:
        out = upscale(tiny, 2, "tiny", adapt="on")
    assert [str(w.message).split(" (")[0] for w in caught] == [
        "5 x 5 pixels is too small to fine-tune at 2x", "5 x 5 pixels is too small for the self-check"]
    # nothing can check the network on it, so it is not used: any network gives the same cube
    from napari_deeper.models import build, save_model

    save_model(build("hyrisr", TINY), "zero", "hyrisr", TINY, {"task": "superres"}, user_models)
    with pytest.warns(RuntimeWarning):
        np.testing.assert_array_equal(out, upscale(tiny, 2, "zero", adapt="on"))
    assert not np.array_equal(out, upscale(tiny, 2, "tiny", adapt="off"))
    messages = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" says so in its progress messages, without warning
        compute.run(upscale_steps(tiny, 2, "tiny"), lambda progress: messages.append(progress.message))
    assert any("5 x 5 pixels is too small to fine-tune" in m for m in messages)


def test_too_few_bands_for_the_basis_still_adapts(user_models, rng):
    """Fewer bands than the network's components: the missing components are empty, the noise
    cannot be measured along two bands (so nothing is shrunk), and adaptation runs."""
    from napari_deeper.models.registry import cached_model
    from napari_deeper.superres.deep import Report, network_upscale_steps

    _tiny_model("tiny", user_models, tail_std=0.2)
    model, _ = cached_model("tiny")
    data = _smooth_cube(rng, bands=2, shape=(20, 20), components=2)
    report = Report()
    out = compute.run(network_upscale_steps(model, data, 2, "cpu", adapt="on", adapt_steps=3, report=report))
    assert out.shape == (2, 40, 40) and np.all(np.isfinite(out))
    assert report.adapted == 3 and report.check is not None
    np.testing.assert_array_equal(out[:, 1::2, 1::2], data)


def test_out_of_memory_while_adapting_halves_the_batch_then_moves_to_the_cpu(user_models, rng, monkeypatch):
    import torch

    from napari_deeper.models.registry import cached_model
    from napari_deeper.superres import adapt
    from napari_deeper.superres.deep import Report, prepare

    _tiny_model("tiny", user_models)
    model, _ = cached_model("tiny")
    seen = []
    train_step = adapt._train_step

    def short_of_memory(network, optimizer, inputs, targets, scale, device):
        seen.append((device.type, len(inputs)))
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return train_step(network, optimizer, inputs, targets, scale, device)

    monkeypatch.setattr(adapt, "_train_step", short_of_memory)
    data = _smooth_cube(rng, shape=(20, 20))
    prep = prepare(data, model.n_components)
    report = Report()
    with pytest.warns(RuntimeWarning, match="ran out of memory fine-tuning on one crop; continuing on the CPU"):
        tuned = compute.run(adapt.fine_tune_steps(model, data, 2, torch.device("cuda"), prep, 3, 60.0, report))
    assert seen[:4] == [("cuda", 8), ("cuda", 4), ("cuda", 2), ("cuda", 1)]
    assert seen[4:] == [("cpu", 1)] * 3 and report.adapted == 3
    assert next(tuned.parameters()).device.type == "cpu"


def test_adaptation_reports_its_loss_and_can_be_stopped(user_models, rng):
    """Progress carries the fine-tuning loss; closing the generator (a dock's Cancel) ends it there."""
    _tiny_model("tiny", user_models)
    steps = upscale_steps(_smooth_cube(rng, shape=(20, 20)), 2, "tiny", adapt="on", adapt_steps=100000,
                          adapt_seconds=600.0)
    losses = []
    for progress in steps:
        if progress.loss is not None:
            losses.append(progress.loss)
            assert "adapting: step" in progress.message
        if len(losses) == 3:
            break
    steps.close()
    with pytest.raises(StopIteration):
        next(steps)
    assert all(np.isfinite(losses))


# --- registry, fine-tuning ---------------------------------------------------------------------


def test_registry_lists_methods_with_schemas(user_models):
    assert {"nearest", "bilinear", "bicubic", "hyrisr", "srresnet"} <= set(METHODS)
    tile = {p.name: p for p in METHODS["hyrisr"].params}["tile"]
    assert tile.default > 0 and tile.type is int
    assert METHODS["bicubic"].params == () and not METHODS["bicubic"].uses_device
    _tiny_model("my-cells", user_models)
    assert "my-cells" in available_methods()
    assert nd.upscale is upscale


def test_finetune_loop_runs_and_saves_a_method(user_models, rng):
    from napari_deeper.models import save_model
    from napari_deeper.training.superres import finetune_upscaler_steps

    _tiny_model("tiny-base", user_models, tail_std=0.0)
    y, x = np.mgrid[0:32, 0:32]
    maps = np.stack([(np.hypot(y - 15, x - 17) < 9) * 1.0, np.sin(x / 3.0)])
    hr = np.tensordot(rng.random((12, 2)) + 0.1, maps, 1).astype(np.float32)
    progress = []
    model, card = compute.run(
        finetune_upscaler_steps("tiny-base", hr, scale=2, steps=6, lr=1e-3, device="cpu"),
        progress.append,
    )
    assert [p.done for p in progress] == list(range(7))
    assert all(p.loss is not None and np.isfinite(p.loss) for p in progress[1:])
    assert card["task"] == "superres" and card["base_model"] == "tiny-base"
    assert card["arch"] == "hyrisr" and card["config"] == TINY
    assert card["fine_tuned_scale"] == 2 and card["training"]["steps"] == 6
    save_model(model, "tiny-tuned", card["arch"], card["config"], card, user_models)
    assert "tiny-tuned" in available_methods()
    out = upscale(hr[:, 1::2, 1::2], 2, "tiny-tuned", adapt="off")
    assert out.shape == hr.shape
    assert np.abs(out - upscale(hr[:, 1::2, 1::2], 2, "bicubic")).max() > 0  # weights changed


def test_finetune_rejects_tiny_images(user_models):
    from napari_deeper.training.superres import finetune_upscaler_steps

    _tiny_model("tiny-base", user_models)
    with pytest.raises(ValueError, match="too small to fine-tune"):
        compute.run(finetune_upscaler_steps("tiny-base", np.ones((4, 10, 10), np.float32), scale=4))


# --- pipeline ----------------------------------------------------------------------------------


def test_a_noise_free_cube_too_small_for_the_check_is_exactly_bicubic():
    """With ``noise="none"`` nothing between the measured pixels is shrunk away as noise: a cube
    too small for the self-check gets the interpolation alone, bicubic (a denoised 4 x 4 map lost
    5 dB to bicubic with the cube's own noise estimate, docs/superres.md)."""
    cell = nd.simulate.simulate_cell((8, 8), n_bands=60, seed=2)
    lr = np.ascontiguousarray(cell.clean[:, 1::2, 1::2])
    assert min(lr.shape[1:]) < CHECK_MIN
    clean = upscale(lr, 2, "hyrisr", noise="none")
    np.testing.assert_allclose(clean, upscale(lr, 2, "bicubic"), rtol=1e-5, atol=1e-5 * float(lr.max()))
    with pytest.raises(ValueError, match="noise"):
        upscale(lr, 2, "hyrisr", noise="some")


def test_fast_scan_restore_returns_both_stages(user_models, rng):
    _tiny_model("tiny", user_models)
    lr = (rng.random((40, 8, 9)) + 1.0).astype(np.float32)
    result = compute.run(restore_steps(lr, 3, upscale_method="tiny", exposure_ratio=10))
    assert result.denoised.shape == lr.shape
    assert result.upscaled.shape == (40, 24, 27)
    assert result.time_saving == pytest.approx(90.0)
    assert result.upscale_method == "tiny"
    # the upscaler knows its input is denoised, and the result says so (a replay needs it)
    assert result.upscale_params == {"noise": "denoised"}
    np.testing.assert_allclose(result.upscaled, upscale(result.denoised, 3, "tiny", noise="denoised"), atol=1e-5)
    # the upscaler's parameters pass through, checked before the denoiser runs
    fixed = compute.run(restore_steps(lr, 2, upscale_method="tiny", upscale_params={"adapt": "off"}))
    np.testing.assert_allclose(fixed.upscaled, upscale(fixed.denoised, 2, "tiny", adapt="off", noise="denoised"),
                               atol=1e-5)
    noisy = compute.run(restore_steps(lr, 2, upscale_method="tiny", upscale_params={"adapt": "off", "noise": "auto"}))
    np.testing.assert_allclose(noisy.upscaled, upscale(noisy.denoised, 2, "tiny", adapt="off"), atol=1e-5)
    np.testing.assert_array_equal(fixed.upscaled[:, 1::2, 1::2], fixed.denoised)
    with pytest.raises(ValueError, match="has no parameter 'adapt'"):
        compute.run(restore_steps(lr, 2, upscale_method="bicubic", upscale_params={"adapt": "off"}))


@pytest.mark.parametrize("shape", [(7, 9), (8, 6)])
def test_the_check_pairs_line_up_from_every_offset(shape):
    """Each coarser scan's 2x grid (output pixel 2i + 1 on input pixel i) lands on the scan: its
    window's measured pixels are the input's own, the rest is the target to score."""
    from napari_deeper.superres import adapt

    data = np.arange(2 * shape[0] * shape[1], dtype=np.float32).reshape(2, *shape)
    for offset in adapt.OFFSETS:
        small, target, mask, window = adapt._check_pairs(data, offset)
        np.testing.assert_array_equal(small, data[:, offset[0]::2, offset[1]::2])
        grid = np.zeros((2, 2 * small.shape[1], 2 * small.shape[2]), np.float32)
        grid[:, 1::2, 1::2] = small
        placed = grid[:, window[0], window[1]]
        assert placed.shape == target.shape and (~mask).sum() == small[0].size
        np.testing.assert_array_equal(placed[:, ~mask], target[:, ~mask])
        assert target.shape[1] >= shape[0] - 1 and target.shape[2] >= shape[1] - 1


def test_restore_checks_on_the_raw_scan_and_keeps_bilinear_unless_the_network_is_significantly_better(
        user_models, rng, monkeypatch):
    """At 2x the restore's self-check scores on the raw scan (independent noise); plain bilinear
    of the denoised cube replaces the network unless the network beats it by two standard errors
    (on the benchmark's real cubes it did not, docs/superres.md)."""
    import torch

    from napari_deeper.models.registry import cached_model
    from napari_deeper.superres import adapt

    _tiny_model("tiny", user_models, tail_std=0.3)
    model, _ = cached_model("tiny")
    scan = (_smooth_cube(rng, bands=30, shape=(16, 16)) + 0.3 * rng.standard_normal((30, 16, 16))).astype(np.float32)
    check = compute.run(adapt.scan_check_steps(model, scan, torch.device("cpu"), 96, 12, None))
    errors = check.errors
    assert set(errors) == {"bilinear", "bicubic", "network", "network, bicubic base"}
    # a smooth cube: the network on a bicubic base clearly beats bilinear, and the restore runs it
    assert check.method == "network" and check.bicubic == 1.0 and errors["network, bicubic base"] == min(
        errors.values()), errors
    params = {"adapt": "on", "adapt_steps": 2}
    result = compute.run(restore_steps(scan, 2, upscale_method="tiny", upscale_params=params))
    assert result.upscale_method == "tiny" and result.note == ""
    np.testing.assert_allclose(result.upscaled, upscale(result.denoised, 2, "tiny", noise="denoised", **params),
                               atol=1e-5)
    monkeypatch.setattr(adapt, "SIGNIFICANCE", np.inf)  # nothing is significant: plain bilinear
    assert compute.run(adapt.scan_check_steps(model, scan, torch.device("cpu"), 96, 12, None)).method == "bilinear"
    plain = compute.run(restore_steps(scan, 2, upscale_method="tiny", upscale_params=params))
    assert plain.upscale_method == "bilinear" and plain.upscale_params == {}
    assert plain.note.startswith("bilinear chosen by the self-check on the raw scan: tiny was not significantly")
    np.testing.assert_array_equal(plain.upscaled, upscale(plain.denoised, 2, "bilinear"))
    # not at 3x, nor without adaptation, nor for an interpolation
    for scale, method, options in ((3, "tiny", {"adapt_steps": 2}), (2, "tiny", {"adapt": "off"}), (2, "bicubic", {})):
        kept = compute.run(restore_steps(scan, scale, upscale_method=method, upscale_params=options))
        assert kept.upscale_method == method and kept.note == ""


def test_fast_scan_restore_beats_denoise_then_interpolation_on_a_low_snr_cell():
    _shipped("hyrisr")
    from napari_deeper import metrics

    cell = nd.simulate.simulate_cell((64, 64), n_bands=300, photons=60.0, seed=9101)
    lr = np.ascontiguousarray(cell.noisy[:, 1::2, 1::2])
    result = compute.run(restore_steps(lr, 2, upscale_params={"adapt_seconds": 600.0}))
    data_range = float(np.ptp(cell.clean))
    best = max(metrics.psnr(upscale(result.denoised, 2, m), cell.clean, data_range) for m in ("bilinear", "bicubic"))
    assert metrics.psnr(result.upscaled, cell.clean, data_range) > best + 0.5


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1, 5, 2.5, "two", None])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale must be 2, 3 or 4"):
        upscale(np.ones((2, 4, 4), np.float32), scale, "bicubic")


def test_bad_inputs_have_clear_messages():
    good = np.ones((3, 6, 6), np.float32)
    bad = good.copy()
    bad[0, 1, 1] = np.nan
    bad[1, 2, 2] = np.inf
    with pytest.raises(ValueError, match="1 NaN and 1 Inf"):
        upscale(bad, 2, "bicubic")
    with pytest.raises(ValueError, match="at least 2 x 2"):
        upscale(np.ones((3, 1, 6), np.float32), 2, "nearest")
    with pytest.raises(ValueError, match="3 x 3 pixels; 4x super-resolution needs at least 4 x 4"):
        upscale(np.ones((3, 3, 3), np.float32), 4, "bicubic")
    with pytest.raises(ValueError, match="unknown super-resolution method 'lanczos'"):
        upscale(good, 2, "lanczos")
    with pytest.raises(ValueError, match="has no parameter 'tile'; it accepts: scale"):
        upscale(good, 2, "bicubic", tile=16)
    with pytest.raises(ValueError, match="'tile' must be between 8 and 1024"):
        upscale(good, 2, "hyrisr", tile=2)
    with pytest.raises(ValueError, match="'adapt' must be auto, on or off"):
        upscale(good, 2, "hyrisr", adapt="maybe")
    with pytest.raises(ValueError, match="1 NaN and 1 Inf"):
        upscale(bad, 2, "hyrisr", adapt="on")
    with pytest.raises(ValueError, match="3-D"):
        upscale(np.ones((6, 6), np.float32), 2, "bicubic")
    with pytest.raises(ValueError, match="wavenumbers"):
        upscale(good, 2, "bicubic", wavenumbers=np.arange(5))
    with pytest.raises(ValueError, match="exposure_ratio"):
        compute.run(restore_steps(good, 2, exposure_ratio=0.5))


def test_missing_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present, so asking for one is not an error here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        upscale(np.ones((3, 6, 6), np.float32), 2, "hyrisr", device="cuda")


def test_constant_cube_passes_through(user_models):
    _tiny_model("tiny", user_models)
    out = upscale(np.full((4, 5, 5), 7.0, np.float32), 4, "tiny")
    np.testing.assert_allclose(out, 7.0, atol=1e-5)


def test_command_line_super_resolves_a_file(tmp_path, user_models, rng, capsys):
    from napari_deeper.superres.__main__ import main

    _tiny_model("tiny", user_models)
    lr = (rng.random((12, 6, 7)) + 1.0).astype(np.float32)
    axis = np.linspace(500.0, 600.0, 12)
    source, target = tmp_path / "in.npz", tmp_path / "out.npz"
    nd.save_cube(lr, source, wavenumbers=axis, metadata={"spectral_unit": "nm"})
    assert main([str(source), str(target), "--scale", "3", "--method", "tiny", "--set", "tile=8",
                 "--set", "adapt=off"]) == 0
    written = nd.load_cube(target)
    np.testing.assert_array_equal(written.data, upscale(lr, 3, "tiny", tile=8, adapt="off"))
    np.testing.assert_array_equal(written.wavenumbers, axis)
    assert written.spectral_unit == "nm"
    assert "wrote" in capsys.readouterr().out
    store = tmp_path / "out.zarr"  # a zarr store out: the same values and axis
    assert main([str(source), str(store), "--scale", "2", "--method", "bicubic"]) == 0
    stored = nd.load_cube(store)
    np.testing.assert_array_equal(np.asarray(stored.data), upscale(lr, 2, "bicubic"))
    np.testing.assert_array_equal(stored.wavenumbers, axis)
    assert stored.spectral_unit == "nm"
    capsys.readouterr()
    assert main([str(source), str(target), "--method", "bicubic", "--set", "tile=8"]) == 2
    assert "has no parameter 'tile'; it accepts: scale" in capsys.readouterr().err
    assert main([str(source), str(target), "--scale", "5"]) == 2
    assert "scale must be 2, 3 or 4" in capsys.readouterr().err
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert "scale (int, default 2, one of 2, 3, 4)" in listed and "tile (int, default 96, in [8, 1024])" in listed
    assert "adapt (str, default auto, one of auto, on, off)" in listed and "adapt_seconds (float" in listed
    assert "tiny:" in listed  # saved models are methods of the command line too


def test_command_line_runs_as_a_module():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "napari_deeper.superres", "--list"],
                          capture_output=True, text=True, check=True)
    assert "hyrisr (default)" in done.stdout and "overlap" in done.stdout


def test_training_command_line_tiny_run_and_resume(tmp_path):
    import json

    from napari_deeper.models import load_model
    from napari_deeper.training.__main__ import main

    common = ["superres", "--arch", "hyrisr", "--cells", "1", "--val-cells", "1", "--features",
              "4", "--components", "3", "--scales", "2", "--eval-every", "2", "--batch", "2",
              "--out", str(tmp_path), "--name", "cli-tiny", "--checkpoint", str(tmp_path / "run.ckpt"),
              "--data-cache", str(tmp_path / "pairs.npz")]
    main([*common, "--steps", "2"])
    main([*common, "--steps", "4"])  # resumes from the checkpoint at step 2
    card = json.loads((tmp_path / "cli-tiny.json").read_text())
    assert card["task"] == "superres" and card["scales"] == [2]
    assert [record["step"] for record in card["training"]["history"]] == [2, 4]
    assert "--arch hyrisr" in card["training"]["command"]
    assert (tmp_path / "cli-tiny.md").read_text().startswith("# cli-tiny")
    model, _ = load_model(tmp_path / "cli-tiny.pt")
    assert model.n_components == 3 and model.scales == (2,)


def test_training_on_varied_textures_selects_checkpoints_on_real_cubes_too(tmp_path):
    """Varied images (textures, band counts, spectral ranges), and a measured cube's gain over
    the better interpolation counted in the validation that picks the weights."""
    import json

    import napari_deeper as nd
    from napari_deeper.models import load_model
    from napari_deeper.training.__main__ import main
    from napari_deeper.training.superres import _validate, real_gains, simulated_pairs, validation_real

    measured = nd.simulate.simulate_cell((24, 24), n_bands=40, photons=500.0, seed=5, texture="fibres").noisy
    nd.save_cube(measured, tmp_path / "measured.npz")
    common = ["superres", "--arch", "hyrisr", "--cells", "2", "--val-cells", "1", "--features", "4",
              "--components", "3", "--scales", "2", "3", "--eval-every", "2", "--batch", "2", "--out", str(tmp_path),
              "--textures", "edges", "particles", "--bands", "40", "70", "--vary-axis",
              "--val-real", str(tmp_path / "measured.npz")]
    main([*common, "--name", "first", "--steps", "2"])
    main([*common, "--name", "second", "--steps", "2", "--init", str(tmp_path / "first.pt")])
    card = json.loads((tmp_path / "second.json").read_text())
    assert "textures edges, particles" in card["training"]["data"] and "40 or 70 bands" in card["training"]["data"]
    assert "--textures edges particles --bands 40 70 --vary-axis --val-real" in card["training"]["command"]
    history = card["training"]["history"]
    assert [record["step"] for record in history] == [0, 2]
    assert all(set(record["real_gain_db"]["measured.npz"]) == {"2", "3"} for record in history)
    model, _ = load_model(tmp_path / "second.pt")
    cubes = validation_real([tmp_path / "measured.npz"])
    gains = real_gains(model, cubes, (2, 3))
    assert card["validation"]["real_gain_db"]["measured.npz"] == pytest.approx(gains["measured.npz"])
    record, selecting = _validate(model, None, cubes, (2, 3), "cpu")
    assert selecting == pytest.approx(np.mean(list(gains["measured.npz"].values())))
    assert "| measured.npz |" in (tmp_path / "second.md").read_text()
    # the images vary as asked: band counts and axes
    pairs = compute.run(simulated_pairs(4, 3, seed=1, scales=(2,), textures=("tissue",), bands=(40, 70),
                                        vary_axis=True))
    assert len(pairs[2]) == 4 and all(pair.source.shape[0] == 3 for pair in pairs[2])


def test_training_command_line_continues_from_weights(tmp_path):
    import json

    import torch

    from napari_deeper.models import load_model
    from napari_deeper.training.__main__ import main

    common = ["superres", "--arch", "hyrisr", "--cells", "1", "--val-cells", "1", "--features",
              "4", "--components", "3", "--scales", "2", "--eval-every", "2", "--batch", "2",
              "--out", str(tmp_path), "--data-cache", str(tmp_path / "pairs.npz")]
    main([*common, "--name", "first", "--steps", "2"])
    main([*common, "--name", "second", "--steps", "2", "--photons", "30", "10000",
          "--init", str(tmp_path / "first.pt")])
    card = json.loads((tmp_path / "second.json").read_text())
    history = card["training"]["history"]
    assert [record["step"] for record in history] == [0, 2]  # the starting weights are validated
    assert card["training"]["best_step"] in (0, 2)
    assert card["training"]["initialised_from"]["training"]["steps"] == 2
    assert "--init" in card["training"]["command"] and "--photons 30 10000" in card["training"]["command"]
    assert f"- `{tmp_path / 'first.pt'}`: `python -m napari_deeper.training superres" in (tmp_path / "second.md").read_text()
    first, _ = load_model(tmp_path / "first.pt")
    second, _ = load_model(tmp_path / "second.pt")
    if card["training"]["best_step"] == 0:  # kept the starting weights unchanged
        assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                     second.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="--init"):
        main([*common, "--name", "third", "--steps", "2", "--features", "8",
              "--init", str(tmp_path / "first.pt")])
