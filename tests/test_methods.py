"""The one method schema: every family's lookup rule, parameter checks, errors and descriptions,
saved models as methods (user models shadowing shipped ones), and which methods touch torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper import compute
from napari_deeper.methods import FAMILIES, Family, Method, Param, family

TINY_RESUNET = {"width": 4, "levels": 2, "n_convs": 1}
TINY_HYRISR = {"n_components": 4, "features": 8, "groups": 1, "blocks": 1, "reduction": 4}


def _save_denoiser(folder, name: str, seed: int = 0):
    import torch

    from napari_deeper.models import build, save_model

    torch.manual_seed(seed)
    save_model(build("resunet", TINY_RESUNET), name, "resunet", TINY_RESUNET, {"task": "denoise"}, folder)


def _save_upscaler(folder, name: str):
    """A tiny HyRISR whose output layer is zero: it returns exactly the bicubic upscale."""
    import torch

    from napari_deeper.models import build, save_model

    model = build("hyrisr", TINY_HYRISR)
    for head in model.heads.heads.values():
        torch.nn.init.zeros_(head.tail.weight)
    save_model(model, name, "hyrisr", TINY_HYRISR, {"task": "superres", "scales": [2, 3, 4]}, folder)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_follows_one_rule(name):
    chosen = family(name)
    assert isinstance(chosen, Family) and chosen.name == name
    default = chosen.lookup(None)
    assert default is chosen.methods[chosen.default]
    assert chosen.lookup(chosen.default.upper()) is default  # case-insensitive
    with pytest.raises(ValueError, match=rf"unknown {chosen.label} method 'nope'; choose one of: .*{chosen.default}"):
        chosen.lookup("nope")
    with pytest.raises(ValueError, match=rf"{chosen.label} method '{chosen.default}' has no parameter 'nope'; it accepts"):
        chosen.check(None, {"nope": 1})
    for method in chosen.methods.values():
        assert method.params is not None and all(p.help for p in (*chosen.params, *method.params))
    described = chosen.describe()
    assert f"{chosen.default} (default):" in described
    for method in chosen.methods.values():
        assert all(p.name in described for p in method.params)


def test_unknown_family_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown operation 'blur'; known: denoise, superres"):
        family("blur")
    with pytest.raises(ValueError, match="given by its name, got a int"):
        family("denoise").lookup(3)


def test_parameters_are_converted_and_checked():
    flag = Param("baseline", bool, False, help="h")
    assert flag.check("yes") is True and flag.check("0") is False and flag.check(True) is True
    with pytest.raises(ValueError, match="'baseline' must be bool, got 'banana'"):
        flag.check("banana")
    count = Param("window", int, 15, (3, 101), help="h")
    assert count.check("21") == 21 and count.check(21.0) == 21
    for bad, message in ((2.5, "must be int"), (True, "must be int"), (1, "between 3 and 101")):
        with pytest.raises(ValueError, match=message):
            count.check(bad)
    with pytest.raises(ValueError, match="'window' needs a value"):
        count.check(None)
    mode = Param("mode", str, "soft", choices=("soft", "hard"), help="h")
    assert mode.check("HARD") == "hard"
    with pytest.raises(ValueError, match="must be one of soft, hard; got 'medium'"):
        mode.check("medium")
    level = Param("level", int, None, (1, 20), help="h", optional=True)
    assert level.check(None) is None and level.describe().startswith("level (int, default auto, in [1, 20])")
    crop = family("preprocess").methods["standard"].params[0]
    assert crop.check("400,1800") == (400.0, 1800.0) and crop.check([None, 900]) == (None, 900.0)
    assert crop.describe().startswith("crop (tuple, default off)")
    with pytest.raises(ValueError, match="'crop' must hold two numbers"):
        crop.check("low,high")
    scale = family("superres").params[0]
    with pytest.raises(ValueError, match="scale must be 2, 3 or 4, got 5"):
        scale.check(5)


def test_family_check_fills_defaults_and_keeps_family_parameters():
    method, checked = family("superres").check("HyRISR", {"scale": "3", "tile": "32"})
    assert method.name == "hyrisr" and checked == {"scale": 3, "tile": 32, "overlap": 12, "adapt": "auto",
                                                   "adapt_steps": 60, "adapt_seconds": 15.0, "noise": "auto"}
    method, checked = family("unmix").check("fcls", {"endmembers": [[1, 2, 3], [0, 1, 0]]})
    assert checked["endmembers"].shape == (2, 3) and checked["map"] == "abundance"
    with pytest.raises(ValueError, match="'endmembers' must be a \\(components, bands\\) array"):
        family("unmix").check("nnls", {"endmembers": [[[1.0]]]})


def test_saved_models_are_methods_under_their_own_names(user_models, rng):
    denoise, superres = family("denoise"), family("superres")
    assert "Lab-Model" not in denoise.available()
    _save_denoiser(user_models, "Lab-Model")
    _save_upscaler(user_models, "My-Cells")
    found = denoise.lookup("lab-model")  # case-insensitive, like the built-in names
    assert found is not None and found.name == found.model == "Lab-Model" and found.uses_device
    assert denoise.lookup("Lab-Model").name == "Lab-Model"
    assert "Lab-Model" in denoise.describe() and "Lab-Model" not in superres.available()
    assert superres.lookup("my-cells").params == superres.methods["hyrisr"].params
    cube = (rng.random((40, 6, 6)) + 1).astype(np.float32)
    assert nd.denoise(cube, "lab-model").shape == cube.shape


def test_a_user_model_shadows_the_shipped_one_of_its_name(user_models, rng):
    from napari_deeper.models import find_model

    cube = (rng.random((40, 8, 8)) + 1).astype(np.float32)
    shipped_denoised = nd.denoise(cube, "resunet", device="cpu", adapt="off")
    shipped_upscaled = nd.upscale(cube, 2, "hyrisr", device="cpu", adapt="off")
    _save_denoiser(user_models, "resunet", seed=3)
    _save_upscaler(user_models, "hyrisr")
    assert not find_model("resunet").shipped and not find_model("hyrisr").shipped
    # the built-in methods stay (one method per name) and run the user's weights
    assert family("denoise").lookup("resunet") is family("denoise").methods["resunet"]
    mine = nd.denoise(cube, "resunet", device="cpu", adapt="off")
    assert not np.allclose(mine, shipped_denoised, atol=1e-3)
    upscaled = nd.upscale(cube, 2, "hyrisr", device="cpu", adapt="off")
    _save_upscaler(user_models, "zero-tail")  # the same zero-tail weights under another name
    np.testing.assert_allclose(upscaled, nd.upscale(cube, 2, "zero-tail", device="cpu", adapt="off"), atol=1e-6)
    assert not np.allclose(upscaled, shipped_upscaled, atol=1e-4)


def test_one_model_cache_serves_both_families_and_reloads_a_changed_file(user_models, rng, monkeypatch):
    import os

    from napari_deeper.models import registry

    loads = []
    load_model = registry.load_model
    monkeypatch.setattr(registry, "load_model", lambda *args, **kw: loads.append(args[0]) or load_model(*args, **kw))
    _save_denoiser(user_models, "cached", seed=1)
    _save_upscaler(user_models, "cached-sr")
    cube = (rng.random((40, 6, 6)) + 1).astype(np.float32)
    first = nd.denoise(cube, "cached", device="cpu")
    for _ in range(2):
        np.testing.assert_array_equal(nd.denoise(cube, "cached", device="cpu"), first)
        nd.upscale(cube, 2, "cached-sr", device="cpu")
    assert [Path(path).stem for path in loads] == ["cached", "cached-sr"]  # each loaded once
    _save_denoiser(user_models, "cached", seed=2)  # saved again under its name
    weights = user_models / "cached.pt"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert not np.allclose(nd.denoise(cube, "cached", device="cpu"), first)
    assert len(loads) == 3


def test_only_network_methods_take_a_device():
    denoise, superres = family("denoise"), family("superres")
    assert not denoise.methods["hybrid"].uses_device  # pure NumPy
    assert denoise.methods["resunet"].uses_device and denoise.methods["aunet"].uses_device
    assert not any(denoise.methods[name].uses_device for name in ("savgol", "wavelet", "pca"))
    assert superres.methods["hyrisr"].uses_device and not superres.methods["bicubic"].uses_device
    for name in ("band_map", "preprocess", "endmembers", "endmember_count"):
        assert not any(method.uses_device for method in family(name).methods.values())


def test_methods_that_never_touch_torch_never_import_it():
    """nd.denoise's default and the classical methods run without torch, whatever the device says."""
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import napari_deeper as nd

        cube = (np.random.default_rng(0).random((30, 8, 8)) + 1).astype(np.float32)
        nd.denoise(cube)
        nd.denoise(cube, device="cuda")  # a device the machine may not have: not used, not an error
        nd.denoise(cube, "savgol", device="cuda")
        nd.upscale(cube, 2, "bicubic", device="cuda")
        nd.band_map(cube, center=10, width=4)
        assert "torch" not in sys.modules, "torch was imported"
        print("no torch")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "no torch" in done.stdout


def test_one_loop_runs_many_jobs_checks_them_first_and_keeps_the_loss():
    def steps(data, scale_by):
        yield compute.Progress(1, 2, "half", loss=0.25)
        return data * scale_by

    def run(data, method, wavenumbers, device, params):
        return (yield from method.steps(data, **params))

    toy = Family("toy", {"times": Method("times", steps, (Param("scale_by", float, 1.0, help="factor"),))},
                 "times", run)
    seen = []
    out = compute.run(toy.many_steps(np.ones(3), {"times": {"scale_by": 2}}), seen.append)
    np.testing.assert_array_equal(out["times"], 2.0)
    assert seen[0].loss == 0.25 and seen[0].message == "times (1/1): half"
    assert seen[-1].fraction == 1.0
    bad = family("denoise").many_steps(np.ones((5, 4, 4), np.float32), {"savgol": {}, "wavelet": {"size": 3}})
    with pytest.raises(ValueError, match="has no parameter 'size'"):
        next(bad)  # refused before the first job starts
