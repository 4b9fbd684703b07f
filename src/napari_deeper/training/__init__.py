"""Training: datasets, training loops, held-out evaluation and the command line.

Run ``python -m napari_deeper.training --help``. Each task (``denoise``, ``superres``) lives in
its own module with a ``add_arguments(parser)`` and ``main(args)`` pair that the CLI dispatches to.
"""
