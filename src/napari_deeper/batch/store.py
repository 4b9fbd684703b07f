"""Nothing lost, nothing twice: how a batch writes an input's outputs.

Every input's outputs are made in a staging folder ``OUT/.<name>.<run>.<attempt>.partial``; each
file in it is written under a temporary name and renamed (:func:`atomic_file`), and the
completion marker :data:`MARKER` is written last. The staging folder then becomes ``OUT/<name>``
by one rename (:func:`commit`), so ``OUT/<name>`` is either absent, an earlier complete result, or
this run's complete result, never something half-written.

A rename onto an existing folder fails, which makes the commit once-only: an attempt that finds
``OUT/<name>`` already committed by this run (a task retried after its worker died, or run twice)
drops its own copy and reports the one there. An earlier run's result is moved aside and
removed only after the new one is in place.

:func:`completed` tells whether ``OUT/<name>`` holds a complete result of the same recipe for the
same input (path, size, modification time): a rerun skips those. Every start and commit is also
appended to ``OUT/batch-journal.jsonl`` (one JSON line per event, written with one ``O_APPEND``
write), which shows what each worker did and which attempt wrote what; a failure adds a
``fail`` event with its traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

#: The completion marker in each output folder, written last.
MARKER = ".complete.json"
#: One line per attempt started and per output committed.
JOURNAL = "batch-journal.jsonl"
PARTIAL = ".partial"
#: Layout of the marker and journal; a different one is never taken for a complete result.
STORE_VERSION = 1


def recipe_hash(document: dict) -> str:
    """SHA-256 of a recipe's JSON document in canonical form (sorted keys, no spaces)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(path) -> dict:
    """What identifies an input file's contents cheaply: path, size, modification time."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return {"path": str(path), "size": None, "mtime_ns": None}
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@contextmanager
def atomic_file(path):
    """Yield a temporary path beside ``path`` (a hidden name with the same suffix); on success it
    is renamed to ``path``, else removed."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_json(path, document) -> None:
    """Write ``document`` as indented JSON, atomically."""
    with atomic_file(path) as temporary:
        temporary.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")


def check_writable(out) -> Path:
    """Create the output folder if needed and prove it takes files; a ``ValueError`` says why not."""
    out = Path(out).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_file(out / ".write-test") as probe:
            probe.write_bytes(b"")
        (out / ".write-test").unlink()
    except OSError as error:
        raise ValueError(f"the output folder {out} is not writable: {error.strerror or error}") from None
    return out


def read_marker(folder) -> dict | None:
    """The completion marker of an output folder, or None when there is none (or it is unreadable)."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("store_version") == STORE_VERSION else None


def completed(folder, recipe_digest: str, source: dict) -> dict | None:
    """The marker of ``folder`` when it is a complete result of this recipe on this input, else None.

    Complete means: the marker is there, names the same recipe hash and input fingerprint, and
    every file it lists is there with the size it had when written.
    """
    marker = read_marker(folder)
    if marker is None or marker.get("recipe_hash") != recipe_digest or marker.get("input") != source:
        return None
    folder = Path(folder)
    for name, size in marker.get("files", {}).items():
        try:
            if (folder / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return marker


class Staging:
    """The staging folder of one attempt at one input (see the module docstring)."""

    def __init__(self, out, name: str, run_id: str):
        self.out = Path(out)
        self.name = name
        self.run_id = run_id
        self.attempt = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.folder = self.out / f".{name}.{run_id}.{self.attempt}{PARTIAL}"
        journal(self.out, "start", name, run_id, self.attempt)  # first: every staging folder has its start
        self.folder.mkdir()

    @property
    def final(self) -> Path:
        return self.out / self.name

    def path(self, relative: str) -> Path:
        """Where a file of the result goes in the staging folder (its sub-folders made).

        The staging folder itself is never made again: once a cancel has removed it, writing
        fails rather than commit a folder that lacks what was written before.
        """
        target = self.folder / relative
        if not self.folder.is_dir():
            raise FileNotFoundError(f"the staging folder {self.folder} was removed (the batch was cancelled)")
        folder = self.folder
        for part in Path(relative).parent.parts:
            folder = folder / part
            folder.mkdir(exist_ok=True)
        return target

    def files(self) -> dict[str, int]:
        """Every file written so far, relative path -> size."""
        return {
            p.relative_to(self.folder).as_posix(): p.stat().st_size
            for p in sorted(self.folder.rglob("*")) if p.is_file() and p.name != MARKER
        }

    def commit(self, marker: dict) -> dict:
        """Write the marker last, then put the folder in place; returns the marker that counts.

        When this run already committed the input (an earlier attempt), that one counts and this
        copy is removed.
        """
        marker = {**marker, "store_version": STORE_VERSION, "run_id": self.run_id, "attempt": self.attempt,
                  "files": self.files()}
        write_json(self.folder / MARKER, marker)
        try:
            os.rename(self.folder, self.final)
        except OSError:
            if not self.final.exists():
                raise
            there = read_marker(self.final)
            if there is not None and there.get("run_id") == self.run_id:
                self.discard()
                return there
            aside = self.out / f".{self.name}.{self.run_id}.{self.attempt}.old"
            os.rename(self.final, aside)
            os.rename(self.folder, self.final)
            shutil.rmtree(aside, ignore_errors=True)
        journal(self.out, "commit", self.name, self.run_id, self.attempt)
        return marker

    def discard(self) -> None:
        """Remove the staging folder and everything in it."""
        shutil.rmtree(self.folder, ignore_errors=True)


def journal(out, event: str, name: str, run_id: str, attempt: str, **details) -> None:
    """Append one event to the output folder's journal (one write, so lines never interleave)."""
    line = json.dumps({
        "event": event, "name": name, "run": run_id, "attempt": attempt, "host": socket.gethostname(),
        "pid": os.getpid(), "time": round(time.time(), 3), **details,
    }) + "\n"
    descriptor = os.open(Path(out) / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode("utf-8"))
    finally:
        os.close(descriptor)


def leftovers(out, run_id: str | None = None) -> list[Path]:
    """Staging folders and temporary files left in ``out`` (by ``run_id``, or by any run)."""
    out = Path(out)
    found = []
    for entry in out.iterdir() if out.is_dir() else []:
        name = entry.name
        if not name.startswith("."):
            continue
        temporary = ".tmp" in entry.suffixes
        if temporary or (name.endswith((PARTIAL, ".old")) and (run_id is None or f".{run_id}." in name)):
            found.append(entry)
    return found


def clean(out, run_id: str | None = None) -> int:
    """Remove what :func:`leftovers` finds; returns how many were removed."""
    found = leftovers(out, run_id)
    for entry in found:
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return len(found)
