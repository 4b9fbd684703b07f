"""The worked DeepeR example runs end to end on a small cube and its table is what it claims."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import napari_deeper as nd

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "deeper_workflow.py"
SMALL = ["--size", "32", "--bands", "200", "--seed", "3", "--threads", "1"]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("deeper_workflow", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)  # import-safe: defines functions, runs nothing
    yield module
    sys.modules.pop(spec.name, None)


def test_main_prints_and_writes_the_table(example, tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("# Example\n<!-- example:table -->\nold\n<!-- /example:table -->\nend\n")
    assert example.main([*SMALL, "--out", str(tmp_path), "--maps", "--quiet", "--doc", str(page)]) == 0
    printed = capsys.readouterr().out
    with (tmp_path / "table.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    default = example.DEFAULT_DENOISER
    versions = {row["version"] for row in rows}
    expected = {f"{d} + {u}" for d in ("raw", default, "resunet", "savgol", "pca") for u in ("hyrisr", "bicubic")}
    assert versions == expected
    for row in rows:
        assert f"| {row['version']} |" in printed
        assert 0.0 <= float(row["accuracy"]) <= 1.0
        assert -1.0 <= float(row["ssim"]) <= 1.0 and float(row["sam"]) >= 0
    by_version = {row["version"]: row for row in rows}
    # denoising a 10x shorter scan must bring it closer to the reference than the raw scan
    for method in (default, "resunet", "pca"):
        assert float(by_version[f"{method} + bicubic"]["psnr"]) > float(by_version["raw + bicubic"]["psnr"])
    assert "| Version | PSNR (dB) |" in (tmp_path / "table.md").read_text()
    updated = page.read_text()
    assert "old" not in updated and updated.endswith("<!-- /example:table -->\nend\n")
    assert "| raw + bicubic |" in updated and "--size 32" in updated
    assert (tmp_path / "labels.png").read_bytes()[:4] == b"\x89PNG"
    with np.load(tmp_path / "maps.npz") as maps:
        assert maps["reference_labels"].shape == (32, 32)
        assert maps["labels_raw__bicubic"].shape == (32, 32)


def test_rows_match_an_independent_computation(example):
    result = example.run_workflow(
        shape=(32, 32), n_bands=200, seed=3, denoisers=["raw"], upscalers=["bicubic"], quiet=True
    )
    (row,) = result.rows
    reference, fast_scan, _w, k = example.simulate_scans((32, 32), 200, 2, 1000.0, 100.0, 3)
    assert fast_scan.shape == (200, 16, 16)
    upscaled = nd.upscale(fast_scan, scale=2, method="bicubic")
    assert row["psnr"] == pytest.approx(nd.metrics.psnr(upscaled, reference))
    assert row["ssim"] == pytest.approx(nd.metrics.ssim(upscaled, reference))
    endmembers, _ = nd.vca(reference, k, seed=3)
    labels = nd.unmix.classify(nd.nnls(upscaled, endmembers))
    reference_labels = nd.unmix.classify(nd.nnls(reference, endmembers))
    assert row["accuracy"] == pytest.approx(nd.metrics.classification_accuracy(labels, reference_labels))


@pytest.mark.gui
def test_scans_overlay_in_napari(example, make_napari_viewer):
    viewer = make_napari_viewer()
    reference, fast = example.add_scans_to_viewer(viewer, (32, 32), 200, 2, 1000.0, 100.0, 3)
    assert reference.data.shape == (200, 32, 32) and fast.data.shape == (200, 16, 16)
    # fast-scan pixel (i, j) covers reference pixel (2i + 1, 2j + 1)
    np.testing.assert_allclose(fast.data_to_world((0, 3, 5)), (0, 7, 11))
    np.testing.assert_array_equal(fast.data[:, 3, 5], example.simulate_scans((32, 32), 200, 2, 1000.0, 100.0, 3)[1][:, 3, 5])
    np.testing.assert_array_equal(reference.metadata["wavenumbers"], fast.metadata["wavenumbers"])
