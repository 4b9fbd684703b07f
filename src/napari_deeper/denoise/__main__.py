"""Command line: ``python -m napari_deeper.denoise INPUT OUTPUT [--method NAME] [--set NAME=VALUE]``.

Reads any cube :func:`napari_deeper.load_cube` opens (.mat, .npy, .npz), denoises it and writes
it with :func:`napari_deeper.save_cube` (the format follows OUTPUT's extension), keeping the
spectral axis. ``--list`` prints every method with its parameters (from the same schema the
widget is built from), fine-tuned models included.
"""

from __future__ import annotations

import argparse
import sys

from . import DEFAULT, available_methods, denoise_steps


def describe_methods() -> str:
    lines = []
    for name, method in available_methods().items():
        marker = " (default)" if name == DEFAULT else ""
        lines.append(f"{name}{marker}: {method.description}")
        for p in method.params:
            default = "auto" if p.default is None else p.default
            allowed = f" one of {', '.join(map(str, p.choices))}" if p.choices else (
                f" in [{p.range[0]}, {p.range[1]}]" if p.range else "")
            lines.append(f"    {p.name} ({p.type.__name__}, default {default}{allowed}): {p.help}")
    return "\n".join(lines)


def parse_settings(settings: list[str]) -> dict:
    """``["window=21", "order=3"]`` -> ``{"window": "21", "order": "3"}`` (typed later by the schema)."""
    params = {}
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set expects NAME=VALUE, got {item!r}")
        params[name.strip()] = None if value.strip().lower() in ("auto", "none") else value.strip()
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_deeper.denoise", description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", help="cube file to read (.mat, .npy, .npz)")
    parser.add_argument("output", nargs="?", help="file to write (.npy, .npz, .mat)")
    parser.add_argument("--method", default=DEFAULT, help=f"denoising method (default {DEFAULT}); see --list")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a method parameter, e.g. --set window=21 (repeatable; 'auto' for automatic)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or gpu (networks and hybrid)")
    parser.add_argument("--list", action="store_true", help="list the methods and their parameters")
    args = parser.parse_args(argv)
    if args.list:
        print(describe_methods())
        return 0
    if not args.input or not args.output:
        parser.error("INPUT and OUTPUT are required (or --list)")
    from ..io import load_cube, save_cube

    try:
        params = parse_settings(args.set)
        cube = load_cube(args.input)
        steps = denoise_steps(cube.data, args.method, cube.wavenumbers, args.device, **params)
        while True:
            try:
                progress = next(steps)
            except StopIteration as stop:
                result = stop.value
                break
            print(f"\r{progress.message}: {100 * progress.fraction:5.1f} %", end="", file=sys.stderr)
        print(file=sys.stderr)
        written = save_cube(result, args.output, wavenumbers=cube.wavenumbers,
                            metadata={"denoised_with": args.method, "params": params, "source": args.input})
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
