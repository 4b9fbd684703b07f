"""The one method schema: every operation family registers its methods here, under one rule.

A :class:`Method` is a ``*_steps`` generator function plus the :class:`Param` list that describes
its keyword arguments; a :class:`Family` (denoise, superres, unmix, band maps, preprocessing, ...)
is the set of methods of one operation, with one default, parameters shared by every method
(e.g. the super-resolution ``scale``) and, for families that run networks, the saved models of
that task as extra methods. The docks, the command lines and recipes are all built from these
objects, so a method registered once shows up everywhere.

Rules every family follows:

- :meth:`Family.lookup` is case-insensitive. Built-in names come first; a saved model is found
  under its own name. A network method loads its weights by model name through the registry,
  where a user model shadows a shipped one of the same name.
- :meth:`Family.check` fills defaults and checks every value; unknown methods and parameters
  raise a ``ValueError`` that lists what is accepted.
- Only methods with ``uses_device`` receive the ``device`` argument (and choose a torch device
  from it); every other method gets None, so methods that never touch torch never import it and
  a ``device`` they do not use is never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module

from .compute import many

#: family name -> "module:attribute" of its :class:`Family` (imported on first use).
FAMILIES = {
    "denoise": "napari_deeper.denoise:FAMILY",
    "superres": "napari_deeper.superres:FAMILY",
    "unmix": "napari_deeper.unmix.methods:FAMILY",
    "endmembers": "napari_deeper.unmix.methods:ENDMEMBERS",
    "endmember_count": "napari_deeper.unmix.methods:ENDMEMBER_COUNT",
    "band_map": "napari_deeper.spectral.methods:BAND_MAP",
    "preprocess": "napari_deeper.spectral.methods:PREPROCESS",
    "baseline": "napari_deeper.analysis.methods:BASELINE",
    "peak_fit": "napari_deeper.analysis.methods:PEAK_FIT",
    "band_ratio": "napari_deeper.analysis.methods:BAND_RATIO",
    "cluster": "napari_deeper.analysis.methods:CLUSTER",
    "calibrate": "napari_deeper.analysis.methods:CALIBRATE",
}

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Param:
    """One parameter of a method: enough to build a widget control or a CLI option.

    ``optional`` parameters accept None, which ``none_means`` names ("auto": the method chooses;
    "off": the step is skipped). ``parse`` (optional) converts a value that is not a plain
    ``int``/``float``/``str``/``bool`` (a band range, an endmember array) and raises a
    ``ValueError`` saying what it accepts; it also receives the text a command line gives.
    """

    name: str
    type: type
    default: object
    range: tuple | None = None
    choices: tuple | None = None
    help: str = ""
    optional: bool = False
    parse: Callable | None = field(default=None, compare=False)
    none_means: str = "auto"

    def check(self, value):
        """``value`` converted to this parameter's type, or a ``ValueError`` saying why not."""
        if value is None and self.optional:
            return None
        if self.parse is not None:
            converted = self.parse(value)
        elif value is None:
            raise ValueError(f"parameter {self.name!r} needs a value ({self.help})")
        else:
            converted = self._convert(value)
        if self.choices is not None:
            if isinstance(converted, str):
                converted = converted.lower()
            if converted not in self.choices:
                raise ValueError(
                    f"parameter {self.name!r} must be one of {', '.join(map(str, self.choices))}; got {value!r}"
                )
        if self.range is not None and converted is not None:
            low, high = self.range
            if not low <= converted <= high:
                raise ValueError(f"parameter {self.name!r} must be between {low} and {high}, got {value!r}")
        return converted

    def _convert(self, value):
        wrong = ValueError(f"parameter {self.name!r} must be {self.type.__name__}, got {value!r}")
        if self.type is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in _TRUE + _FALSE:
                raise wrong
            return text in _TRUE
        if self.type in (int, float) and isinstance(value, bool):
            raise wrong
        if self.type is int and isinstance(value, float) and not value.is_integer():
            raise wrong
        try:
            return self.type(value)
        except (TypeError, ValueError):
            raise wrong from None

    def describe(self) -> str:
        """One line for ``--list``: type, default, what is allowed, help."""
        if self.default is not None:
            default = f"default {self.default}"
        else:
            default = f"default {self.none_means}" if self.optional else "required"
        if self.choices:
            allowed = f", one of {', '.join(map(str, self.choices))}"
        elif self.range:
            allowed = f", in [{self.range[0]}, {self.range[1]}]"
        else:
            allowed = ""
        return f"{self.name} ({self.type.__name__}, {default}{allowed}): {self.help}"


def check_params(schema, params: dict, owner: str) -> dict:
    """Defaults of ``schema`` filled in and every value checked; unknown names refused."""
    known = {p.name: p for p in schema}
    unknown = sorted(set(params) - set(known))
    if unknown:
        accepted = ", ".join(known) or "none"
        raise ValueError(
            f"{owner} has no parameter {', '.join(map(repr, unknown))}; it accepts: {accepted}"
        )
    return {name: p.check(params.get(name, p.default)) for name, p in known.items()}


@dataclass(frozen=True)
class Method:
    """One method of a family: its ``*_steps`` function and parameter schema.

    How ``steps`` is called is the family's business (see :attr:`Family.run`). ``kind`` says what
    it is ("classical", "interpolation", "network", ...); a network names its saved ``model``.
    ``uses_device`` is True only for methods that may run torch.
    """

    name: str
    steps: Callable
    params: tuple[Param, ...] = ()
    description: str = ""
    kind: str = "classical"
    model: str | None = None
    uses_device: bool = False

    def check_params(self, params: dict) -> dict:
        """Defaults filled in and every value checked; unknown names raise a ``ValueError``."""
        return check_params(self.params, params, f"method {self.name!r}")


def saved_models(task: str, make: Callable) -> Callable[[], list[Method]]:
    """A :attr:`Family.models` callable: ``make(info)`` for every saved model of ``task``."""

    def models() -> list[Method]:
        from .models.registry import list_models

        return [make(info) for info in list_models(task=task)]

    return models


@dataclass(frozen=True)
class Family:
    """The methods of one operation, with one lookup rule and one way to run them.

    ``run(data, method, wavenumbers, device, params)`` is the family's steps generator for a
    checked method and parameters (family parameters included); ``params`` are shared by every
    method of the family; ``output`` says what it makes ("cube", or e.g. "map", "endmembers":
    not a cube a later recipe step can take); ``title`` names the family in messages;
    ``models`` (optional) lists the saved models of the family's task as methods.
    """

    name: str
    methods: dict[str, Method]
    default: str
    run: Callable
    params: tuple[Param, ...] = ()
    output: str = "cube"
    title: str = ""
    models: Callable[[], list[Method]] | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return self.title or self.name

    def available(self) -> dict[str, Method]:
        """Built-in methods, then every saved model of this family not already listed."""
        found = dict(self.methods)
        if self.models is not None:
            for method in self.models():
                found.setdefault(method.name, method)
        return found

    def lookup(self, name=None) -> Method:
        """The method called ``name`` (case-insensitive; None: the default), or a ``ValueError``
        listing the known ones."""
        if name is None:
            name = self.default
        if not isinstance(name, str):
            raise ValueError(f"a {self.label} method is given by its name, got a {type(name).__name__}")
        key = name.lower()
        if key in self.methods:
            return self.methods[key]
        available = self.available()
        for candidate in (name, key):
            if candidate in available:
                return available[candidate]
        folded = [method for label, method in available.items() if label.lower() == key]
        if len(folded) == 1:
            return folded[0]
        raise ValueError(f"unknown {self.label} method {name!r}; choose one of: {', '.join(available)}")

    def check(self, name, params: dict) -> tuple[Method, dict]:
        """The method and its checked parameters: the family's, then the method's own."""
        method = self.lookup(name)
        checked = check_params((*self.params, *method.params), params, f"{self.label} method {method.name!r}")
        return method, checked

    def steps(self, data, method=None, wavenumbers=None, device=None, **params):
        """Run ``method`` (the default when None) on ``data``: yields progress, returns the result."""
        chosen, checked = self.check(method, params)
        return (yield from self.run(data, chosen, wavenumbers, device if chosen.uses_device else None, checked))

    def many_steps(self, data, jobs: dict[str, dict], wavenumbers=None, device=None):
        """Run every ``{method: params}`` job on ``data`` under one progress bar.

        Every job is checked before the first one starts; returns ``{method: result}`` (all or
        nothing: a failure or a cancel leaves no partial result).
        """
        for name, params in jobs.items():
            self.check(name, params)
        n = len(jobs)
        results = yield from many(
            (f"{name} ({index + 1}/{n})", self.steps(data, name, wavenumbers, device, **params))
            for index, (name, params) in enumerate(jobs.items())
        )
        return dict(zip(jobs, results))

    def describe(self) -> str:
        """Every method with its parameters, for a command line's ``--list``."""
        lines = [p.describe() for p in self.params]
        for label, method in self.available().items():
            marker = " (default)" if label == self.default else ""
            lines.append(f"{label}{marker}: {method.description}")
            lines.extend(f"    {p.describe()}" for p in method.params)
        return "\n".join(lines)


def family(name: str) -> Family:
    """The :class:`Family` registered as ``name`` (its module is imported on first use)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown operation {name!r}; known: {', '.join(FAMILIES)}")
    module, attribute = FAMILIES[name].split(":")
    return getattr(import_module(module), attribute)
