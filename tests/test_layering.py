"""The core is a library: importing it must not pull in Qt, napari or magicgui."""

import subprocess
import sys

CORE = [
    "napari_deeper",
    "napari_deeper.io",
    "napari_deeper.spectral",
    "napari_deeper.denoise",
    "napari_deeper.superres",
    "napari_deeper.unmix",
    "napari_deeper.models",
    "napari_deeper.training",
    "napari_deeper.training.finetune",
    "napari_deeper.simulate",
    "napari_deeper.metrics",
    "napari_deeper.compute",
]


def test_core_imports_no_gui():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'magicgui', 'vispy'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core pulled in GUI modules: {out.stdout.strip()}"


def test_package_import_is_light():
    code = (
        "import sys, napari_deeper\n"
        "print(','.join(m for m in ('torch', 'sklearn', 'scipy', 'h5py') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import napari_deeper loaded heavy modules: {out.stdout.strip()}"
