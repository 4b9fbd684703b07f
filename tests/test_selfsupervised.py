"""The self-supervised denoiser ``n2s``: it improves cubes it never saw within its time budget, shows its
loss, falls back or refuses where it cannot learn, survives a GPU running out of memory, and a
cancel in the Denoise dock leaves no layer."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper.compute import Progress, run
from napari_deeper.denoise import DEFAULT, FAMILY, denoise, denoise_steps
from napari_deeper.denoise import selfsupervised as ss


def _nmse(estimate, clean) -> float:
    return float(np.mean((estimate - clean) ** 2) / np.mean(clean**2))


@pytest.fixture(scope="module")
def cell():
    """A small simulated cell with a seed the pretraining never draws; torch and the weights are
    loaded once here, so that the timed runs time the method, not the interpreter's imports."""
    cube = nd.simulate.simulate_cell((32, 32), n_bands=150, photons=30, seed=424242)
    denoise(cube.noisy[:, :16, :16], "n2s", device="cpu", steps=0)
    return cube


def _pca(noisy, rank):
    flat = noisy.reshape(noisy.shape[0], -1).astype(np.float64)
    mean = flat.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    return (mean + (u[:, :rank] * s[:rank]) @ vt[:rank]).reshape(noisy.shape)


def test_improves_a_cube_it_never_saw_within_its_budget(cell):
    progress: list[Progress] = []
    started = time.perf_counter()
    out = run(denoise_steps(cell.noisy, "n2s", device="cpu", time_budget=4.0), progress.append)
    seconds = time.perf_counter() - started
    assert out.shape == cell.noisy.shape and out.dtype == np.float32
    assert seconds < 4.0 + 1.5, f"took {seconds:.1f} s for a 4 s budget"
    trained = [p for p in progress if "self-supervised loss" in p.message]
    assert trained, "no training step ran within the budget"
    assert all(p.loss is not None and np.isfinite(p.loss) for p in trained)
    # the components it kept, denoised, beat plain PCA at the same rank and the noisy input
    rank = int(next(p.message for p in progress if "spectral components" in p.message and ";" in p.message)
               .split("; ")[1].split()[0])
    assert _nmse(out, cell.clean) < 0.9 * _nmse(_pca(cell.noisy, rank), cell.clean)
    assert _nmse(out, cell.clean) < 0.1 * _nmse(cell.noisy, cell.clean)


def test_a_fixed_number_of_steps_gives_the_same_result_every_time(cell):
    first = denoise(cell.noisy, "n2s", device="cpu", steps=3)
    again = denoise(cell.noisy, "n2s", device="cpu", steps=3)
    np.testing.assert_array_equal(first, again)


def test_the_budget_bounds_training_time(cell):
    for budget in (2.0, 5.0):
        started = time.perf_counter()
        messages: list[str] = []
        run(denoise_steps(cell.noisy, "n2s", device="cpu", time_budget=budget), lambda p, seen=messages: seen.append(p.message))
        seconds = time.perf_counter() - started
        assert seconds < budget + 1.5, f"took {seconds:.1f} s for a {budget} s budget"
    steps = [int(m.split("(")[1].split()[0]) for m in messages if m.startswith("n2s: done")]
    assert steps and steps[0] > 0


def test_components_are_chosen_above_the_noise_or_as_asked(cell):
    messages = []
    run(denoise_steps(cell.noisy, "n2s", device="cpu", steps=0, components=3), lambda p: messages.append(p.message))
    assert any("; 3 spectral components" in m for m in messages)
    # pure white noise: nothing stands above the Marchenko-Pastur edge, one component is kept
    rng = np.random.default_rng(1)
    rank, sigma2 = ss.noise_rank(np.linalg.eigvalsh(_gram(rng.normal(0, 2.0, (4000, 200))))[::-1], 4000, 200, 32)
    assert rank == 1 and sigma2 == pytest.approx(4.0, rel=0.05)


def _gram(matrix):
    centred = matrix - matrix.mean(axis=0)
    return centred.T @ centred


def test_the_loss_at_masked_pixels_is_blind_to_their_own_values():
    """J-invariance: changing a masked pixel (in every component) changes nothing the network
    outputs there, so the self-supervised loss cannot be lowered by copying the noise."""
    import torch

    model, _ = ss.load_pretrained("cpu")
    rng = np.random.default_rng(3)
    values = torch.as_tensor(rng.standard_normal((1, 4, 24, 24)).astype(np.float32))
    scales = torch.as_tensor(np.array([30.0, 5.0, 2.0, 1.0], np.float32))
    changed = values.clone()
    changed[0, :, 9, 6] += 50.0  # (9, 6) is (1, 2) modulo the 4 x 4 grid
    outputs = []
    for v in (values, changed):
        inputs, mask = ss.masked(v, 1, 2)
        with torch.no_grad():
            outputs.append(model(ss.network_input(inputs, scales, model.channels))[0, :4, 9, 6])
    assert bool(mask[0, 0, 9, 6]) and int(mask.sum()) == 36
    torch.testing.assert_close(outputs[0], outputs[1])
    unmasked = [model(ss.network_input(v, scales, model.channels))[0, :4, 9, 6] for v in (values, changed)]
    assert not torch.allclose(unmasked[0], unmasked[1])  # without the mask the pixel does count


def test_too_small_images_fall_back_to_the_closed_form_default():
    small = nd.simulate.simulate_cell((12, 12), n_bands=80, photons=50, seed=3).noisy
    with pytest.warns(RuntimeWarning, match="too small to learn from"):
        out = denoise(small, "n2s", device="cpu")
    np.testing.assert_array_equal(out, denoise(small, DEFAULT))


def test_constant_cubes_come_back_unchanged_and_bad_values_are_refused():
    flat = np.full((40, 20, 20), 3.0, dtype=np.float32)
    with pytest.warns(RuntimeWarning, match="constant"):
        out = denoise(flat, "n2s", device="cpu")
    assert out is not flat and np.array_equal(out, flat)
    broken = flat.copy()
    broken[0, 1, 1] = np.inf
    with pytest.raises(ValueError, match="Inf"):
        denoise(broken, "n2s")
    with pytest.raises(ValueError, match="at least 9 bands"):
        denoise(np.random.default_rng(0).random((5, 20, 20)).astype(np.float32), "n2s")
    with pytest.raises(ValueError, match="time_budget"):
        denoise(flat, "n2s", time_budget=0)


def test_all_negative_cubes_run_without_stabilisation(cell):
    negative = (-cell.clean - 0.5 * cell.clean.max()).astype(np.float32)
    noisy = negative + np.random.default_rng(2).normal(0, 0.05 * cell.clean.max(), negative.shape).astype(np.float32)
    assert noisy.max() < 0
    messages = []
    out = run(denoise_steps(noisy, "n2s", device="cpu", steps=2), lambda p: messages.append(p.message))
    assert any("no positive value" in m for m in messages)
    assert _nmse(out, negative) < 0.2 * _nmse(noisy, negative)


def test_input_is_not_modified(cell):
    before = cell.noisy.copy()
    denoise(cell.noisy, "n2s", device="cpu", steps=1)
    np.testing.assert_array_equal(cell.noisy, before)


def test_gpu_out_of_memory_retries_smaller_then_continues_on_the_cpu(cell):
    """A CUDA out-of-memory error halves the batch, and when that is not enough moves to the CPU."""
    import torch

    values = np.random.default_rng(0).standard_normal((3, 20, 20)).astype(np.float32)
    model, _ = ss.load_pretrained("cpu")
    trainer = ss._Trainer(model, values, np.ones(3, np.float32), torch.device("cpu"))
    trainer.device = torch.device("cuda")  # as if the first attempts had run on a GPU
    calls = []

    def action():
        calls.append(trainer.device.type)
        if trainer.device.type == "cuda":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "done"

    shrinks = iter([True, False])
    with pytest.warns(RuntimeWarning, match="ran out of memory; continuing on the CPU"):
        assert ss.with_oom_fallback(action, trainer, lambda: next(shrinks)) == "done"
    assert calls == ["cuda", "cuda", "cpu"] and trainer.device.type == "cpu"
    with pytest.raises(RuntimeError, match="shape"):  # other errors are not swallowed
        ss.with_oom_fallback(lambda: (_ for _ in ()).throw(RuntimeError("bad shape")), trainer, lambda: False)


def test_registered_in_the_schema_with_its_card():
    from napari_deeper.models import find_model

    method = FAMILY.lookup("n2s")
    assert method.uses_device and method.kind == "network" and method.model == "n2s"
    assert {p.name for p in method.params} == {"time_budget", "components", "steps", "noise"}
    assert "n2s" in FAMILY.describe()
    info = find_model("n2s")
    assert info.shipped and info.card["task"] == "denoise-subspace"
    assert info.path.stat().st_size < 5e6
    assert info.card["training"]["command"].startswith("python -m napari_deeper.training n2s")
    assert info.card["metrics"]["rows"], "the card has no measured metrics"
    assert "n2s" not in [m.name for m in FAMILY.models()]  # not also listed as a per-spectrum model


def test_the_generator_stops_cleanly_when_closed_mid_training(cell):
    steps = denoise_steps(cell.noisy, "n2s", device="cpu", time_budget=30.0)
    for progress in steps:
        if "step 2," in progress.message:
            break
    steps.close()  # what a cancelled worker does: no result, nothing left running
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(StopIteration):
            next(steps)


@pytest.mark.gui
def test_cancel_mid_training_in_the_dock_leaves_no_layer(qtbot, make_napari_viewer, cell):
    from napari_deeper._widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    viewer.add_image(cell.noisy.copy(), name="cell", metadata={"wavenumbers": cell.wavenumbers})
    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.methods.value = ["n2s"]
    widget.params["n2s"].controls["time_budget"].value = 60.0
    widget.device.value = "cpu"
    widget.runner.run_button.click()
    qtbot.waitUntil(lambda: "self-supervised loss" in widget.runner.status.text(), timeout=30000)
    widget.runner.cancel_button.click()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=20000)
    assert [layer.name for layer in viewer.layers] == ["cell"]
    assert "Cancelled" in widget.runner.status.text()


@pytest.mark.gui
def test_the_dock_runs_it_and_records_the_model(qtbot, make_napari_viewer, cell):
    from napari_deeper._widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    viewer.add_image(cell.noisy.copy(), name="cell", metadata={"wavenumbers": cell.wavenumbers})
    widget = DenoiseWidget(viewer)
    widget.methods.value = ["n2s"]
    widget.params["n2s"].controls["steps"].value = 2
    widget.device.value = "cpu"
    widget.runner.run_button.click()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60000)
    assert widget.runner.last_error is None
    layer = viewer.layers["cell · n2s"]
    # the worker thread's BLAS and torch threads may sum in another order: equal to float32 rounding
    np.testing.assert_allclose(layer.data, denoise(cell.noisy, "n2s", device="cpu", steps=2), rtol=1e-5, atol=1e-5)
    record = layer.metadata["napari_deeper"]
    assert record["params"]["method"] == "n2s" and record["model"] == "n2s"
