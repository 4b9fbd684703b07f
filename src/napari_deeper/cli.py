"""Command lines generated from the method schema, one per family that makes a cube.

``python -m napari_deeper.denoise`` and ``python -m napari_deeper.superres`` are both
:func:`main` over their :class:`~napari_deeper.methods.Family`: INPUT is any cube
:func:`napari_deeper.load_cube` opens, OUTPUT is written by :func:`napari_deeper.save_cube` (the
format follows its extension) with the spectral axis and its unit; the family's own parameters
(e.g. ``--scale``) are options, a method's parameters are ``--set NAME=VALUE``, and ``--list``
prints every method with its parameters, saved models included.
"""

from __future__ import annotations

import argparse
import sys

from .methods import family


def parse_settings(settings: list[str]) -> dict:
    """``["window=21", "order=3"]`` -> ``{"window": "21", "order": "3"}`` (typed later by the schema).

    ``auto`` or ``none`` stands for None (an optional parameter left to the method, or a step skipped).
    """
    params = {}
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set expects NAME=VALUE, got {item!r}")
        params[name.strip()] = None if value.strip().lower() in ("auto", "none") else value.strip()
    return params


def build_parser(name: str, prog: str, description: str) -> argparse.ArgumentParser:
    """The argument parser of family ``name``'s command line."""
    chosen = family(name)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("input", nargs="?", help="cube file to read (.mat, .npy, .npz, ...)")
    parser.add_argument("output", nargs="?", help="file to write (.npy, .npz, .mat, or a .zarr store)")
    for param in chosen.params:
        parser.add_argument(f"--{param.name}", default=None, help=param.describe())
    parser.add_argument("--method", default=chosen.default,
                        help=f"{chosen.label} method (default {chosen.default}); see --list")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a method parameter, e.g. --set window=21 (repeatable; 'auto' for automatic)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (for methods that run networks)")
    parser.add_argument("--list", action="store_true", help="list the methods and their parameters")
    return parser


def main(name: str, argv: list[str] | None = None, prog: str | None = None, description: str = "") -> int:
    """Run family ``name`` on a file; returns the exit status (2 for bad input, with the reason)."""
    from . import compute
    from .io import Cube, load_cube, save_cube
    from .provenance import step

    chosen = family(name)
    parser = build_parser(name, prog or f"python -m napari_deeper.{name}", description)
    args = parser.parse_args(argv)
    if args.list:
        print(chosen.describe())
        return 0
    if not args.input or not args.output:
        parser.error("INPUT and OUTPUT are required (or --list)")

    def report(progress) -> None:
        print(f"\r{progress.message}: {100 * progress.fraction:5.1f} %", end="", file=sys.stderr)

    try:
        params = parse_settings(args.set)
        params.update({p.name: getattr(args, p.name) for p in chosen.params if getattr(args, p.name) is not None})
        method, checked = chosen.check(args.method, params)
        cube = load_cube(args.input)
        result = compute.run(chosen.steps(cube.data, method.name, cube.wavenumbers, args.device, **checked), report)
        print(file=sys.stderr)
        result = Cube.from_result(result, cube)
        record = {**step(name, {"method": method.name, **checked}), "source": str(args.input),
                  "spectral_unit": cube.spectral_unit}
        written = save_cube(result.data, args.output, wavenumbers=result.wavenumbers, metadata=record)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(map(str, written)))
    return 0
