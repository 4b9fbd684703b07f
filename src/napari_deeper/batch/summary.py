"""``OUT/summary.csv``: one row per input, written atomically (and again as inputs finish).

Columns: ``input`` (the file), ``output`` (its folder in OUT), ``status`` (``ok``, ``failed``,
``skipped``: complete from an earlier run with the same recipe; ``cancelled``: not done because
the batch was stopped), ``seconds``, ``files`` (every file written, relative to OUT, separated by
``;``), ``error`` (why it failed), ``worker`` (host:pid that made it), then the figures every step
reported, ``stepN.<operation>.<figure>`` (see :mod:`napari_deeper.batch.job`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from .store import atomic_file

NAME = "summary.csv"
COLUMNS = ("input", "output", "status", "seconds", "files", "error", "worker")
STATUSES = ("ok", "failed", "skipped", "cancelled")


def figure_columns(rows) -> list[str]:
    """Every figure any row has, in the order they first appear (the recipe's order)."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.get("figures", {}):
            seen.setdefault(key, None)
    return list(seen)


def write_summary(out, rows) -> Path:
    """Write the rows (dicts as :class:`~napari_deeper.batch.job.Row` makes them) to OUT/summary.csv."""
    path = Path(out) / NAME
    figures = figure_columns(rows)
    with atomic_file(path) as temporary:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*COLUMNS, *figures])
            for row in rows:
                plain = [row.get(c, "") for c in COLUMNS]
                plain[COLUMNS.index("files")] = ";".join(row.get("files", []))
                writer.writerow([*plain, *(row.get("figures", {}).get(c, "") for c in figures)])
    return path


def read_summary(path) -> list[dict]:
    """The rows of a summary.csv, as text (for tests and scripts)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
