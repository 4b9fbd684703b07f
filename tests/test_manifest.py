"""The npe2 manifest is valid, every contribution resolves, and it loads from editable and wheel installs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from importlib import import_module
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_MANIFEST = ROOT / "src" / "napari_deeper" / "napari.yaml"


def _npe2_cli() -> str:
    return str(Path(sys.executable).with_name("npe2"))


def test_npe2_validate():
    out = subprocess.run([_npe2_cli(), "validate", "napari-deeper"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_root_manifest_is_the_package_manifest():
    root_manifest = ROOT / "napari.yaml"
    assert root_manifest.is_symlink()
    assert root_manifest.resolve() == PACKAGE_MANIFEST.resolve()


def test_every_command_resolves():
    manifest = yaml.safe_load(PACKAGE_MANIFEST.read_text())
    for command in manifest["contributions"]["commands"]:
        module, name = command["python_name"].split(":")
        assert callable(getattr(import_module(module), name)), command["id"]


def test_installed_entry_point_discovers_the_manifest():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-deeper")
    assert manifest.package_metadata.version == import_module("napari_deeper").__version__
    assert {w.display_name for w in manifest.contributions.widgets} >= {"Spectra", "Denoise", "Unmix (VCA + NNLS)"}


@pytest.mark.skipif(os.environ.get("NAPARI_DEEPER_SKIP_WHEEL") == "1", reason="NAPARI_DEEPER_SKIP_WHEEL=1 set")
def test_built_wheel_ships_and_loads_the_manifest(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("napari_deeper-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_deeper/napari.yaml" in names
    assert any(n.startswith("napari_deeper/models/weights/") and n.endswith(".pt") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "napari.manifest" in zipfile.ZipFile(wheel).read(entry_points).decode()

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
    )
    code = (
        "import npe2, napari_deeper, pathlib\n"
        "pm = npe2.PluginManager.instance(); pm.discover()\n"
        "m = pm.get_manifest('napari-deeper')\n"
        "print(pathlib.Path(napari_deeper.__file__).resolve())\n"
        "print(len(m.contributions.widgets), len(m.contributions.readers))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    module_path, counts = out.stdout.strip().splitlines()
    assert module_path.startswith(str(target.resolve())), module_path
    contributions = yaml.safe_load(PACKAGE_MANIFEST.read_text())["contributions"]
    assert counts == f"{len(contributions['widgets'])} {len(contributions['readers'])}"
