"""Command line: ``python -m napari_deeper.superres INPUT OUTPUT [--scale 2] [--method NAME] [--set NAME=VALUE]``.

Reads any cube :func:`napari_deeper.load_cube` opens (.mat, .npy, .npz, ...), super-resolves it
by ``--scale`` (2, 3 or 4) and writes it with :func:`napari_deeper.save_cube`, keeping the
spectral axis. The networks take ``--set tile=64 --set overlap=8`` to bound their memory.
``--list`` prints every method with its parameters, fine-tuned models included. See
:mod:`napari_deeper.cli`.
"""

from __future__ import annotations

import sys

from ..cli import main as family_main


def main(argv: list[str] | None = None) -> int:
    return family_main("superres", argv, "python -m napari_deeper.superres", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
