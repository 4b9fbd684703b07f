"""Pipelines as data: the ordered steps that made a layer, saved, validated and replayed.

A recipe is a list of steps; each names an operation family (``denoise``, ``superres``,
``band_map``, ...), one of its methods, that method's parameters and which earlier result it
takes as input (``"source"``: the cube the recipe is run on; an integer: the result of that
step, counted from 1; by default the previous step). Every layer the plugin makes records the recipe of its whole
chain in its provenance, so::

    recipe = nd.Recipe.from_layer(layer)         # or Recipe.load("cell-recipe.json")
    recipe.save("cell-recipe.json")
    result = recipe.run(nd.load_cube("next-cell.mat"))
    result.final                                 # the last step's output, as the dock made it

Replaying runs the same core functions with the same parameters as the docks, so a replayed
result is bit-identical to the layer (on the same machine and device). The file is small,
versioned JSON that a person can edit; :meth:`Recipe.load` checks every step against the method
schema (:mod:`napari_deeper.methods`) and names the step and parameter that is wrong before
anything runs. A step recorded as not replayable (a difference of two layers, a corrected file
layout) makes :meth:`Recipe.validate` and :meth:`Recipe.run` fail with the reason.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .compute import Progress, Steps, run, stage
from .methods import family
from .provenance import plain, step

__all__ = ["FORMAT", "SOURCE", "VERSION", "Recipe", "RecipeResult", "step"]

#: what a recipe file says it is, and the version of its layout this code reads and writes.
FORMAT, VERSION = "napari-deeper recipe", 1
SOURCE = "source"
STEP_KEYS = ("operation", "method", "params", "input", "not_replayable")


@dataclass
class RecipeResult:
    """The outputs of a replayed recipe: one per step, in order (cubes as ``Cube``, maps as arrays)."""

    outputs: list = field(default_factory=list)

    @property
    def final(self):
        """The data of the last step's output (the layer a dock would have made)."""
        last = self.outputs[-1]
        return last if isinstance(last, np.ndarray) else getattr(last, "data", last)


@dataclass
class Recipe:
    """An ordered list of steps (dicts with ``operation``, ``method``, ``params``, ``input``)."""

    steps: list[dict] = field(default_factory=list)

    # ----------------------------------------------------------------------- making one
    @classmethod
    def from_layer(cls, layer_or_metadata) -> Recipe:
        """The recipe that made a layer, from its provenance (a layer or its ``metadata``).

        It is not validated here, so that a chain with a step that cannot be replayed can still
        be looked at; :meth:`validate`, :meth:`run` and :meth:`save` say what is wrong.
        """
        from .provenance import of

        record = of(layer_or_metadata)
        if "recipe" not in record:
            raise ValueError("this layer has no napari-deeper recipe (it was not made by the plugin)")
        return cls.from_dict({"format": FORMAT, "version": VERSION, "steps": record["recipe"]}, validate=False)

    @classmethod
    def from_dict(cls, document: dict, validate: bool = True) -> Recipe:
        """A recipe from its JSON document, validated unless ``validate`` is False."""
        if not isinstance(document, dict) or "steps" not in document:
            raise ValueError("a recipe is a JSON object with a 'steps' list")
        if document.get("format", FORMAT) != FORMAT:
            raise ValueError(f"not a napari-deeper recipe (format {document.get('format')!r})")
        version = document.get("version", VERSION)
        if version != VERSION:
            raise ValueError(f"recipe version {version!r} is not supported; this napari-deeper reads version {VERSION}")
        if not isinstance(document["steps"], list):
            raise ValueError("the recipe's 'steps' must be a list")
        recipe = cls([copy.deepcopy(s) for s in document["steps"]])
        if validate:
            recipe.validate()
        return recipe

    @classmethod
    def load(cls, path) -> Recipe:
        """Read and validate a recipe file."""
        path = Path(path)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ValueError(f"cannot read recipe {path}: {error}") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"recipe {path} is not valid JSON: {error}") from None
        try:
            return cls.from_dict(document)
        except ValueError as error:
            raise ValueError(f"recipe {path}: {error}") from None

    def to_dict(self) -> dict:
        """The JSON document of the recipe (what :meth:`save` writes)."""
        return {"format": FORMAT, "version": VERSION, "steps": plain(self.steps)}

    def save(self, path) -> Path:
        """Validate the recipe and write it as indented JSON; returns the path."""
        self.validate()
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    # ------------------------------------------------------------------------- checking
    def validate(self) -> None:
        """Check every step against the method schema; the error names the step and what is wrong."""
        if not self.steps:
            raise ValueError("the recipe has no steps")
        outputs: list[str] = []
        for index, entry in enumerate(self.steps):
            label = f"step {index + 1}"
            if not isinstance(entry, dict) or "operation" not in entry:
                raise ValueError(f"{label} must be an object with an 'operation'")
            unknown = sorted(set(entry) - set(STEP_KEYS))
            if unknown:
                raise ValueError(f"{label} has unknown keys {unknown}; a step has operation, method, params, input")
            label = f"step {index + 1} ({entry['operation']})"
            if "not_replayable" in entry:
                raise ValueError(f"{label} cannot be replayed: {entry['not_replayable']}")
            try:
                chosen = family(str(entry["operation"]))
                params = entry.get("params") or {}
                if not isinstance(params, dict):
                    raise ValueError("'params' must be an object")
                chosen.check(entry.get("method"), params)
            except ValueError as error:
                raise ValueError(f"{label}: {error}") from None
            source = self._input_index(index, entry)
            if source is not None and outputs[source] != "cube":
                raise ValueError(f"{label}: its input, step {source + 1}, makes a {outputs[source]}, not a cube")
            outputs.append(chosen.output)

    def _input_index(self, index: int, entry: dict) -> int | None:
        """Which output ``entry`` (step ``index + 1``) takes: None for the source cube, else the
        0-based position of an earlier step (``input`` counts steps from 1, as messages do)."""
        value = entry.get("input", index if index else SOURCE)
        if value == SOURCE:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= index:
            accepted = f"or the number of an earlier step (1 to {index})" if index else "(it is the first step)"
            raise ValueError(
                f"step {index + 1} ({entry['operation']}): 'input' must be 'source' {accepted}, got {value!r}"
            )
        return value - 1

    # -------------------------------------------------------------------------- running
    def run_steps(self, cube, device=None) -> Steps[RecipeResult]:
        """Steps generator of :meth:`run`: one progress stage per step."""
        from .io import Cube

        if not isinstance(cube, Cube):
            cube = Cube(np.asarray(cube), None, {})
        self.validate()
        result = RecipeResult()
        n = len(self.steps)
        yield Progress(0, n, "recipe")
        for index, entry in enumerate(self.steps):
            source = self._input_index(index, entry)
            given = cube if source is None else result.outputs[source]
            chosen = family(entry["operation"])
            label = f"step {index + 1}/{n}: {entry['operation']} {entry.get('method') or ''}".rstrip()
            out = yield from stage(
                chosen.steps(given.data, entry.get("method"), given.wavenumbers, device, **(entry.get("params") or {})),
                index, n, label,
            )
            result.outputs.append(Cube.from_result(out, given) if chosen.output == "cube" else out)
        return result

    def run(self, cube, device=None) -> RecipeResult:
        """Replay the recipe on ``cube`` (a :class:`~napari_deeper.io.Cube` or a ``(B, Y, X)`` array)."""
        return run(self.run_steps(cube, device))
