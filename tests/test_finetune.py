"""Fine-tuning from a script, without Qt: the job is checked, trained, saved and becomes a method.

Tiny base models (a few thousand parameters) saved in a temporary user folder keep every run to a
second or two on a CPU; the dock's own tests are in test_train_widget.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper.models import registry
from napari_deeper.training import finetune

N_BANDS = 48
TINY = {"width": 4, "levels": 2, "max_width": 8}
TINY_SR = {"n_components": 4, "features": 8, "groups": 1, "blocks": 1, "reduction": 4, "scales": [2]}


@pytest.fixture
def base(user_models):
    """A tiny ResU-net denoiser saved as the user model ``tiny-resunet``."""
    import torch

    torch.manual_seed(0)
    registry.save_model(registry.build("resunet", TINY), "tiny-resunet", "resunet", TINY, {"task": "denoise"})
    registry.save_model(registry.build("hyrisr", TINY_SR), "tiny-hyrisr", "hyrisr", TINY_SR, {"task": "superres"})
    return "tiny-resunet"


@pytest.fixture(scope="module")
def pair():
    low = nd.simulate.simulate_cell((10, 10), n_bands=N_BANDS, photons=20, seed=1)
    high = nd.simulate.simulate_cell((10, 10), n_bands=N_BANDS, photons=2000, seed=1)
    return low.noisy, high.noisy


def test_a_script_fine_tunes_saves_and_denoises_with_the_new_model(base, pair, user_models):
    noisy, clean = pair
    job = finetune.FineTuneJob("denoise", base, " My-Scope ", inputs={"noisy": ("short", noisy), "clean": ("long", clean)},
                               steps=2, device="cpu")
    seen = []
    path = finetune.run(job, seen.append)
    assert path == user_models / "my-scope.pt" and job.name == "my-scope"
    assert job.learning_rate == finetune.default("denoise", "lr")  # left None: the core's default
    assert [p.loss is not None for p in seen].count(True) == 2
    _model, card = registry.load_model(path)
    assert card["task"] == "denoise" and card["arch"] == "resunet" and card["finetuning"]["steps"] == 2
    assert card["finetuning"]["layers"] == {"noisy": "short", "clean": "long"}
    markdown = path.with_suffix(".md").read_text(encoding="utf-8")
    assert markdown.startswith("# my-scope\n") and "starting from `tiny-resunet`" in markdown
    assert "Layers (low SNR): `short`." in markdown and "## Measured quality" in markdown
    assert nd.denoise(noisy, "my-scope", device="cpu").shape == noisy.shape  # now a denoise method


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "sharpen"}, "unknown fine-tuning job 'sharpen'"),
        ({"base_model": ""}, "no denoising model to start from"),
        ({"base_model": "nowhere"}, "no trained model named 'nowhere'"),
        ({"name": "a/b"}, "invalid model name"),
        ({"inputs": {"noisy": ("short", np.ones((N_BANDS, 10, 10)))}}, "missing: clean"),
        ({"inputs": {"noisy": ("a", np.ones((N_BANDS, 10, 10))), "clean": ("b", np.ones((N_BANDS, 8, 10)))}},
         r"\(48, 10, 10\) but the high-SNR layer 'b' has shape \(48, 8, 10\)"),
        ({"inputs": {"noisy": ("a", np.ones((N_BANDS, 4, 4))), "clean": ("a", np.ones((N_BANDS, 4, 4)))}},
         "two different layers"),
        ({"task": "superres"}, "'tiny-resunet' is a 'denoise' model; a 'superres' job starts from a 'superres'"),
        ({"task": "superres", "base_model": "tiny-hyrisr",
          "inputs": {"hr": (["a", "b"], [np.ones((40, 8, 8)), np.ones((41, 8, 8))])}},
         r"different band counts \[40, 41\]"),
    ],
)
def test_bad_jobs_are_refused_before_training(base, change, message):
    fields = {"task": "denoise", "base_model": base, "name": "mine",
              "inputs": {"noisy": ("short", np.ones((N_BANDS, 4, 4))), "clean": ("long", np.ones((N_BANDS, 4, 4)))}}
    with pytest.raises(ValueError, match=message):
        finetune.check(finetune.FineTuneJob(**{**fields, **change}))


def test_shipped_names_are_refused_and_noise_learning_starts_from_the_attention_unet(base):
    with pytest.raises(ValueError, match="shipped with the plugin"):
        finetune.model_path("resunet")
    assert {info.arch for info in finetune.base_models("noise")} == {"aunet"}
    assert "tiny-resunet" in [info.name for info in finetune.base_models("denoise")]
