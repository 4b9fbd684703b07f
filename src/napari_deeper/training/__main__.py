"""Command line: ``python -m napari_deeper.training {denoise,superres} ...``."""

from __future__ import annotations

import argparse
from importlib import import_module

TASKS = {
    "denoise": ("napari_deeper.training.denoise", "train a denoising network on simulated cells"),
    "superres": ("napari_deeper.training.superres", "train a super-resolution network"),
    "n2s": ("napari_deeper.training.selfsupervised", "pretrain the self-supervised denoiser's network"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m napari_deeper.training", description=__doc__)
    sub = parser.add_subparsers(dest="task", required=True)
    for task, (module, help_text) in TASKS.items():
        import_module(module).add_arguments(sub.add_parser(task, help=help_text))
    args = parser.parse_args(argv)
    import_module(TASKS[args.task][0]).main(args)


if __name__ == "__main__":
    main()
