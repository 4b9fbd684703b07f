"""Denoising: every method's contract, the shipped networks, chunking, cancel, training loops."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper import simulate
from napari_deeper.compute import Progress, run
from napari_deeper.denoise import DEFAULT, METHODS, available_methods, denoise, denoise_steps
from napari_deeper.models import registry

ALL = ("savgol", "whittaker", "wavelet", "pca", "hybrid", "resunet", "aunet")
NETWORKS = ("resunet", "aunet")
#: The networks adapt for a few steps (their time budget would make the results vary and the tests slow).
FEW_STEPS = {name: {"steps": 5} for name in NETWORKS}


def _nmse(a, b) -> float:
    return float(np.mean((a - b) ** 2) / np.mean(b**2))


@pytest.fixture(scope="module")
def cell():
    return simulate.simulate_cell((24, 24), n_bands=97, photons=30, seed=11)


def test_registry_lists_methods_with_schemas():
    assert DEFAULT in METHODS
    for name, method in METHODS.items():
        assert method.name == name
        for param in method.params:
            assert param.help and param.type in (int, float, str, bool)
    assert set(ALL) <= set(available_methods())


@pytest.mark.parametrize("method", ALL)
def test_shape_dtype_units_and_improvement(cell, method):
    noisy = cell.noisy.copy()
    params = FEW_STEPS.get(method, {})
    out = denoise(noisy, method, **params)
    assert out.shape == noisy.shape and out.dtype == np.float32
    np.testing.assert_array_equal(noisy, cell.noisy)  # input untouched
    assert _nmse(out, cell.clean) < 0.7 * _nmse(noisy, cell.clean)
    scaled = denoise(noisy * 1000.0, method, **params)
    np.testing.assert_allclose(scaled, out * 1000.0, rtol=2e-3, atol=2e-3 * float(np.abs(out).max()) * 1000)


@pytest.mark.parametrize("method", NETWORKS)
def test_networks_take_any_band_count(method):
    for bands in (97, 500):
        cube = simulate.simulate_cell((8, 8), n_bands=bands, photons=50, seed=bands)
        out = denoise(cube.noisy, method, **FEW_STEPS[method])
        assert out.shape == cube.noisy.shape
        assert _nmse(out, cube.clean) < 0.7 * _nmse(cube.noisy, cube.clean)


def test_shipped_networks_as_trained_beat_savgol_on_a_low_snr_cell():
    cube = simulate.simulate_cell((16, 16), n_bands=300, photons=20, seed=21)
    smooth = _nmse(denoise(cube.noisy, "savgol"), cube.clean)
    for method in NETWORKS:
        assert _nmse(denoise(cube.noisy, method, adapt="off"), cube.clean) < smooth


def test_default_beats_pca_auto(cell):
    assert _nmse(denoise(cell.noisy), cell.clean) < _nmse(denoise(cell.noisy, "pca"), cell.clean)


def test_default_beats_the_best_rank_pca_with_no_clean_answer():
    """The self-calibrated hybrid against PCA at the rank that is best knowing the clean cube."""
    cell = simulate.simulate_cell((40, 40), n_bands=300, photons=30, seed=41)
    best_rank = min(_nmse(denoise(cell.noisy, "pca", n_components=k), cell.clean) for k in range(1, 25))
    default = _nmse(denoise(cell.noisy), cell.clean)
    assert default < best_rank / 1.5
    assert default < _nmse(denoise(cell.noisy, "hybrid", auto=False), cell.clean)


def test_hybrid_auto_reports_its_choices_and_handles_small_images():
    cell = simulate.simulate_cell((9, 9), n_bands=200, photons=60, seed=3)
    messages = []
    out = run(denoise_steps(cell.noisy, "hybrid"), lambda p: messages.append(p.message))
    assert any("components" in m for m in messages) and any("spatial strengths" in m for m in messages)
    assert _nmse(out, cell.clean) < 0.5 * _nmse(cell.noisy, cell.clean)
    for whiten in ("vst", "none"):
        assert _nmse(denoise(cell.noisy, "hybrid", whiten=whiten), cell.clean) < _nmse(cell.noisy, cell.clean)
    with pytest.raises(ValueError, match="constant"):
        denoise(np.ones((50, 8, 8), np.float32), "hybrid")


def test_tv_chambolle_equals_scikit_image():
    from skimage.restoration import denoise_tv_chambolle

    from napari_deeper.denoise.hybrid import tv_chambolle

    rng = np.random.default_rng(0)
    for shape in ((64, 64), (37, 91), (1, 50), (2, 2)):
        image = rng.standard_normal(shape) + np.add.outer(np.arange(shape[0]), np.arange(shape[1])) / 30
        for weight in (0.05, 0.25, 1.0, 3.0):
            np.testing.assert_array_equal(tv_chambolle(image, weight), denoise_tv_chambolle(image, weight=weight))


def test_spatial_step_is_the_same_in_threads_and_reports_each_component(monkeypatch):
    from napari_deeper import compute
    from napari_deeper.denoise.hybrid import spatial_steps

    rng = np.random.default_rng(1)
    shape = (160, 210)  # at least PARALLEL_MIN_PIXELS: the threaded path
    scores = (rng.standard_normal((6, 33600)) + np.linspace(0, 4, 33600)).astype(np.float32)
    variances = np.ones_like(scores)
    results, used = {}, []
    ordered_map = compute.ordered_map
    monkeypatch.setattr(compute, "ordered_map", lambda fn, items, workers: used.append(workers) or ordered_map(
        fn, items, workers))
    for workers in (1, 3):
        monkeypatch.setattr(compute, "thread_budget", lambda w=workers: w)
        out = scores.copy()
        seen = []
        weights = compute.run(spatial_steps(out, variances, shape, "tv"), seen.append)
        results[workers] = (out, weights)
        assert [p.done for p in seen] == list(range(7)) and seen[-1].total == 6
    assert used == [1, 3]
    np.testing.assert_array_equal(results[1][0], results[3][0])
    assert results[1][1] == results[3][1] and any(w > 0 for w in results[1][1])


def test_noise_edge_and_spectral_smoothing_rules():
    from napari_deeper.denoise.hybrid import dct_smooth, edge_rank, marchenko_pastur_median

    assert marchenko_pastur_median(1.0) == pytest.approx(0.6528, abs=1e-3)  # Gavish & Donoho's mu_1
    for beta in (0.9, 0.25, 0.01):  # half the law's mass below the median (trapezoid on a fine grid)
        low, high = (1 - np.sqrt(beta)) ** 2, (1 + np.sqrt(beta)) ** 2
        x = np.linspace(low, marchenko_pastur_median(beta), 200_001)
        density = np.sqrt((high - x) * (x - low)) / (2 * np.pi * beta * x)
        assert np.sum(0.5 * (density[1:] + density[:-1]) * np.diff(x)) == pytest.approx(0.5, abs=1e-6)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((300, 2000))
    signal = 3.0 * rng.standard_normal((300, 3)) @ rng.standard_normal((3, 2000))
    assert edge_rank(np.linalg.svd(noise, compute_uv=False), noise.shape) == 1  # never fewer than one
    assert edge_rank(np.linalg.svd(signal + noise, compute_uv=False), noise.shape) == 3
    smooth = np.sin(np.linspace(0, 3, 400))
    noisy = smooth + 0.1 * rng.standard_normal(400)
    assert np.mean((dct_smooth(noisy, 0.01) - smooth) ** 2) < 0.1 * 0.01
    spiky = np.zeros(400)
    spiky[::7] = 1.0  # structure at the finest scale with no noise: left alone
    np.testing.assert_allclose(dct_smooth(spiky, 1e-12), spiky, atol=1e-4)


@pytest.mark.parametrize("method", ["savgol", "whittaker", "wavelet", "pca", "hybrid"])
def test_chunked_equals_unchunked(cell, method, monkeypatch):
    whole = denoise(cell.noisy, method)
    from napari_deeper.denoise import classical

    monkeypatch.setattr(classical, "chunk_size", lambda *a, **k: 100)
    steps = denoise_steps(cell.noisy, method)
    reports = []
    chunked = run(steps, reports.append)
    assert len(reports) > 3
    np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=1e-5 * float(np.abs(whole).max()))


def test_whittaker_is_the_penalised_least_squares_solution():
    cube = simulate.simulate_cell((6, 5), n_bands=60, photons=30, seed=2).noisy
    lam = 37.0
    d = np.diff(np.eye(60), 2, axis=0)
    dense = np.linalg.solve(np.eye(60) + lam * d.T @ d, cube.reshape(60, -1).astype(np.float64))
    np.testing.assert_allclose(denoise(cube, "whittaker", lam=lam), dense.reshape(cube.shape), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="at least 3 bands"):
        denoise(cube[:2], "whittaker")


@pytest.fixture(scope="module")
def calibration_cell():
    return simulate.simulate_cell((40, 40), n_bands=300, photons=40, seed=31)


def _oracle(cell, method, grid):
    """The lowest NMSE over ``grid`` (parameter dicts), tuned with the clean answer."""
    return min(_nmse(denoise(cell.noisy, method, **params), cell.clean) for params in grid)


def test_calibration_picks_near_oracle_parameters(calibration_cell):
    """``auto`` sees only the noisy cube; the oracle searches the same family with the clean one."""
    from napari_deeper.denoise import calibrate

    cell = calibration_cell
    auto = {m: _nmse(denoise(cell.noisy, m, auto=True), cell.clean) for m in ("savgol", "whittaker", "wavelet")}
    orders_windows = [{"window": w, "order": o} for o in calibrate.SAVGOL_ORDERS for w in calibrate.savgol_windows(300, o)]
    assert auto["savgol"] <= 1.03 * _oracle(cell, "savgol", orders_windows)
    assert auto["whittaker"] <= 1.03 * _oracle(cell, "whittaker", [{"lam": lam} for lam in np.geomspace(1e-1, 1e5, 49)])
    wavelet_grid = [{"level": lv, "threshold_scale": s} for lv in (3, 4, 5) for s in np.geomspace(0.25, 4, 13)]
    assert auto["wavelet"] <= 1.10 * _oracle(cell, "wavelet", wavelet_grid)
    # every auto setting beats that method's fixed default on this low-count cube
    assert auto["savgol"] < _nmse(denoise(cell.noisy, "savgol"), cell.clean)
    assert auto["wavelet"] < _nmse(denoise(cell.noisy, "wavelet"), cell.clean)


def test_automatic_pca_rank_is_near_the_best_rank(calibration_cell):
    cell = calibration_cell
    by_rank = [_nmse(denoise(cell.noisy, "pca", n_components=k), cell.clean) for k in range(1, 31)]
    for rule in ("gavish-donoho", "bcv"):  # both on the cube with its noise evened out
        assert _nmse(denoise(cell.noisy, "pca", rank_rule=rule), cell.clean) <= 1.10 * min(by_rank)


def test_smoothers_leave_fine_structure_alone_when_smoothing_does_not_pay():
    """A cube whose spectra have band-to-band structure above the noise: the best smoothing is none."""
    from napari_deeper.denoise import calibrate

    rng = np.random.default_rng(5)
    structure = 100.0 + 50.0 * rng.random(300)  # every band different, shared by all pixels
    y, x = np.mgrid[0:12, 0:12]
    cube = (structure[:, None, None] * (1.0 + 0.02 * np.sin(y / 4.0) * np.cos(x / 5.0))[None]).astype(np.float32)
    noisy = rng.poisson(cube).astype(np.float32)
    assert calibrate.calibrate_savgol(noisy) == {"window": 3, "order": 2}
    assert calibrate.calibrate_whittaker(noisy) == 0.0
    np.testing.assert_allclose(denoise(noisy, "whittaker", auto=True), noisy, rtol=1e-5)
    np.testing.assert_allclose(denoise(noisy, "savgol", auto=True), noisy, rtol=1e-5)


def test_network_batches_equal_one_batch(cell):
    whole = denoise(cell.noisy, "resunet", batch_size=4096, steps=3)
    reports = []
    small = run(denoise_steps(cell.noisy, "resunet", batch_size=50, steps=3), reports.append)
    assert len(reports) >= 576 // 50
    np.testing.assert_allclose(small, whole, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["hybrid", "resunet"])
def test_cancel_midway_leaves_input_untouched(cell, method):
    noisy = cell.noisy.copy()
    steps = denoise_steps(noisy, method, **({"batch_size": 64} if method == "resunet" else {}))
    first = [next(steps), next(steps)]
    assert all(isinstance(p, Progress) for p in first)
    steps.close()  # what the worker does on Cancel
    with pytest.raises(StopIteration):
        next(steps)
    np.testing.assert_array_equal(noisy, cell.noisy)


def test_bad_input_messages(cell):
    with pytest.raises(ValueError, match="unknown denoising method 'nope'.*savgol"):
        denoise(cell.noisy, "nope")
    with pytest.raises(ValueError, match="has no parameter 'size'.*window"):
        denoise(cell.noisy, "savgol", size=3)
    with pytest.raises(ValueError, match="between"):
        denoise(cell.noisy, "savgol", window=1)
    bad = cell.noisy.copy()
    bad[3, 2, 1] = np.nan
    bad[4, 2, 1] = np.inf
    with pytest.raises(ValueError, match="1 NaN and 1 Inf"):
        denoise(bad, "savgol")
    with pytest.raises(ValueError, match="at least 32 bands"):
        denoise(cell.noisy[:20], "resunet")
    with pytest.raises(ValueError, match="3-D"):
        denoise(cell.noisy[:, 0], "savgol")
    with pytest.raises(ValueError, match="wavenumbers has 5 values"):
        denoise(cell.noisy, "savgol", wavenumbers=np.arange(5))


def test_memory_stays_bounded_on_large_cubes():
    """A cube is never copied whole: blocks of pixels are read from a memory map."""
    from napari_deeper.denoise.classical import pixel_blocks

    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (500, 1000, 1000), (0, 0, 0))
    _, slices = pixel_blocks(big)
    assert len(slices) > 1 and max(s.stop - s.start for s in slices) <= 1 << 16


def _tiny_model(folder, name="tiny-lab-model"):
    model = registry.build("resunet", {"width": 4, "levels": 2, "n_convs": 1})
    registry.save_model(model, name, "resunet", {"width": 4, "levels": 2, "n_convs": 1},
                        {"task": "denoise", "version": "7"}, folder)
    return model


def test_user_models_become_methods(cell, user_models):
    _tiny_model(user_models)
    assert "tiny-lab-model" in available_methods()
    out = denoise(cell.noisy, "tiny-lab-model", steps=2)
    assert out.shape == cell.noisy.shape and np.isfinite(out).all()


def test_finetune_few_steps_and_round_trip(cell, user_models):
    import torch

    from napari_deeper.training.denoise import finetune_denoiser_steps

    reports = []
    model, card = run(finetune_denoiser_steps("resunet", cell.noisy, cell.clean, steps=4, seed=1),
                      reports.append)
    assert reports[-1].done == 4 and reports[-1].loss is not None
    assert card["task"] == "denoise" and card["base_model"] == "resunet"
    assert {"nmse_before", "nmse_after"} <= set(card["metrics"])
    registry.save_model(model, "my-finetuned", card["arch"], card["config"], card)
    assert "my-finetuned" in available_methods()
    loaded, _ = registry.load_model("my-finetuned")
    x = torch.rand(3, 97)
    with torch.inference_mode():
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    out = denoise(cell.noisy, "my-finetuned", adapt="off")
    assert out.shape == cell.noisy.shape


def test_learn_noise_few_steps(user_models):
    from napari_deeper.training.denoise import learn_noise_steps, measured_noise

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:12, 0:12]
    w = simulate.wavenumber_axis(128)
    background = np.exp(-((w - 900.0) / 600.0) ** 2)[:, None, None] * (50 + yy + xx)
    blank = (background + rng.normal(0, 2.0, background.shape)).astype(np.float32)
    noise = measured_noise(blank, 1)
    assert noise.shape == (144, 128)
    assert abs(noise.std() - 2.0) < 0.3  # the smooth background is gone, the noise stays
    reports = []
    model, card = run(learn_noise_steps("aunet", blank, wavenumbers=w, n_background_components=1,
                                        steps=3), reports.append)
    assert reports[-1].done == 3 and reports[-1].loss is not None
    assert card["arch"] == "aunet" and card["task"] == "denoise"


def test_tiny_training_cli_writes_loadable_model(tmp_path):
    from napari_deeper.training.__main__ import main

    main(["denoise", "--arch", "aunet", "--name", "tiny", "--out", str(tmp_path), "--steps", "3",
          "--batch", "8", "--bands", "64", "96", "--config", '{"width": 4, "levels": 2}',
          "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--skip-eval", "--log-every", "1"])
    assert (tmp_path / "tiny.pt").exists() and (tmp_path / "tiny.json").exists()
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") == 3
    model, card = registry.load_model(tmp_path / "tiny.pt")
    assert card["training"]["steps"] == 3 and card["task"] == "denoise"
    # resuming a finished run does no more steps and gives the same weights
    main(["denoise", "--arch", "aunet", "--name", "tiny2", "--out", str(tmp_path), "--steps", "3",
          "--batch", "8", "--bands", "64", "96", "--config", '{"width": 4, "levels": 2}',
          "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--skip-eval"])
    again, _ = registry.load_model(tmp_path / "tiny2.pt")
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # a fresh run with the same seed gives the same weights
    main(["denoise", "--arch", "aunet", "--name", "tiny3", "--out", str(tmp_path), "--steps", "3",
          "--batch", "8", "--bands", "64", "96", "--config", '{"width": 4, "levels": 2}',
          "--checkpoint", str(tmp_path / "run3" / "checkpoint.pt"), "--skip-eval"])
    fresh, _ = registry.load_model(tmp_path / "tiny3.pt")
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_public_api_is_the_same_function(cell):
    np.testing.assert_array_equal(nd.denoise(cell.noisy, "savgol"), denoise(cell.noisy, "savgol"))


def test_command_line_denoises_a_file(tmp_path, cell, capsys):
    from napari_deeper.denoise.__main__ import main

    source, target = tmp_path / "in.npz", tmp_path / "out.npz"
    nd.save_cube(cell.noisy, source, wavenumbers=cell.wavenumbers)
    assert main([str(source), str(target), "--method", "savgol", "--set", "window=21"]) == 0
    written = nd.load_cube(target)
    np.testing.assert_allclose(written.data, denoise(cell.noisy, "savgol", window=21), rtol=1e-6)
    np.testing.assert_allclose(written.wavenumbers, cell.wavenumbers)
    assert main([str(source), str(target), "--method", "savgol", "--set", "size=3"]) == 2
    assert "accepts: window, order" in capsys.readouterr().err
    assert main(["--list"]) == 0
    assert "n_components (int, default auto" in capsys.readouterr().out


def test_command_line_writes_a_zarr_store_from_a_lazy_one(tmp_path, cell):
    """A zarr store in (read lazily) and a zarr store out, the spectral axis and its unit kept."""
    from napari_deeper.denoise.__main__ import main

    source, target = tmp_path / "in.zarr", tmp_path / "out.zarr"
    nd.save_cube(cell.noisy, source, wavenumbers=cell.wavenumbers, metadata={"spectral_unit": "nm"})
    assert not isinstance(nd.load_cube(source).data, np.ndarray)  # lazy: a dask array
    assert main([str(source), str(target), "--method", "savgol", "--set", "window=21"]) == 0
    written = nd.load_cube(target)
    np.testing.assert_allclose(np.asarray(written.data), denoise(cell.noisy, "savgol", window=21), rtol=1e-6)
    np.testing.assert_allclose(written.wavenumbers, cell.wavenumbers)
    assert written.spectral_unit == "nm"
