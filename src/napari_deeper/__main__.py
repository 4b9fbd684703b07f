"""The ``napari-deeper`` command (also ``python -m napari_deeper``): one subcommand per task.

    napari-deeper batch RECIPE INPUT... --out DIR     # see napari_deeper.batch.cli
"""

from __future__ import annotations

import sys
from importlib import import_module

#: subcommand -> (module with ``main(argv, prog)``, one line of help)
COMMANDS = {
    "batch": ("napari_deeper.batch.cli", "run a recipe on many cubes, locally or on a Dask cluster"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:8s} {text}" for name, (_module, text) in COMMANDS.items()]
        usage = "usage: napari-deeper COMMAND ...\n\ncommands:\n" + "\n".join(lines)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"napari-deeper: unknown command {argv[0]!r}\n{usage}", file=sys.stderr)
            return 2
        print(usage)
        return 0 if argv else 2
    module, _help = COMMANDS[argv[0]]
    return import_module(module).main(argv[1:], prog=f"napari-deeper {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
