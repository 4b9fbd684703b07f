"""The Fine-tune dock's core defaults (no Qt): the pair by provenance and SNR, the shipped base
model, and the time estimate measured on a few steps."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deeper.models import registry
from napari_deeper.simulate import simulate_cell
from napari_deeper.training import finetune


def cells(*photons, shape=(10, 10), n_bands=40):
    return [simulate_cell(shape, n_bands=n_bands, photons=p, seed=3).noisy for p in photons]


def test_snr_ranks_scans_by_photons():
    snrs = [finetune.estimate_snr(cube) for cube in cells(10, 100, 1000)]
    assert snrs[0] < snrs[1] < snrs[2]
    with pytest.raises(ValueError, match="bands, y, x"):
        finetune.estimate_snr(np.zeros((5, 5)))


def test_pair_is_low_snr_first_and_never_a_layer_with_its_copy():
    high, low = cells(1000, 20)
    layers = [("high", high, {}), ("low", low, {}),
              ("low · savgol", low * 1.0, {"source": "low"}), ("low · cropped", low[5:], {"source": "low"})]
    assert finetune.choose_pair(layers) == ("low", "high")
    # one scan and its copies (one of the same shape, made from it, and a copy of that copy)
    only = [("raw", low, {}), ("raw · resunet", high, {"source": "raw"}),
            ("raw · resunet · pca", high * 1.0, {"source": "raw · resunet"})]
    assert finetune.choose_pair(only) is None
    # files before made layers: two scans read from files win over a scan and another's copy
    mixed = [("a", low, {}), ("b · denoised", high * 2, {"source": "b"}), ("b", cells(200)[0], {})]
    assert finetune.choose_pair(mixed) == ("a", "b")


def test_default_base_is_shipped(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_DEEPER_MODELS", str(tmp_path))
    config = {"width": 4, "levels": 2, "max_width": 8}
    registry.save_model(registry.build("resunet", config), "resunet-finetuned-x", "resunet", config,
                        {"task": "denoise"})
    assert finetune.base_models("denoise")[0].name == "resunet-finetuned-x"  # listed first
    assert finetune.default_base("denoise") == "resunet"
    assert finetune.default_base("superres") == "hyrisr"
    assert registry.find_model(finetune.default_base("noise")).arch == "aunet"


def test_time_steps_measures_and_saves_nothing(tmp_path, monkeypatch):
    import torch

    from napari_deeper import compute

    monkeypatch.setenv("NAPARI_DEEPER_MODELS", str(tmp_path))
    torch.manual_seed(0)
    config = {"width": 4, "levels": 2, "max_width": 8}
    registry.save_model(registry.build("resunet", config), "tiny", "resunet", config, {"task": "denoise"})
    high, low = cells(1000, 20)
    job = finetune.check(finetune.FineTuneJob("denoise", "tiny", "tiny-out", steps=300, device="cpu",
                                              inputs={"noisy": ("low", low), "clean": ("high", high)}))
    timing = compute.run(finetune.time_steps(job, probe_steps=3))
    assert timing["probe_steps"] == 3 and timing["seconds_per_step"] > 0 and timing["setup_seconds"] >= 0
    assert finetune.estimated_seconds(timing, 300) == pytest.approx(
        timing["setup_seconds"] + 300 * timing["seconds_per_step"])
    assert job.steps == 300  # the job itself is not changed
    assert not list(tmp_path.glob("tiny-out*"))  # timing saves no model
