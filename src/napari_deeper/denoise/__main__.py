"""Command line: ``python -m napari_deeper.denoise INPUT OUTPUT [--method NAME] [--set NAME=VALUE]``.

Reads any cube :func:`napari_deeper.load_cube` opens (.mat, .npy, .npz, ...), denoises it and
writes it with :func:`napari_deeper.save_cube` (the format follows OUTPUT's extension), keeping
the spectral axis. ``--list`` prints every method with its parameters (from the same schema the
widget is built from), fine-tuned models included. See :mod:`napari_deeper.cli`.
"""

from __future__ import annotations

import sys

from ..cli import main as family_main


def main(argv: list[str] | None = None) -> int:
    return family_main("denoise", argv, "python -m napari_deeper.denoise", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
