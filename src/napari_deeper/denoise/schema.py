"""The parameter schema of denoising methods: what widgets, the CLI and benchmarks are built from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Param:
    """One parameter of a method: enough to build a widget control or a CLI option."""

    name: str
    type: type
    default: object
    range: tuple | None = None
    choices: tuple | None = None
    help: str = ""
    optional: bool = False  # None is accepted and means "choose automatically"

    def check(self, value):
        """``value`` converted to this parameter's type, or a ``ValueError`` saying why not."""
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"parameter {self.name!r} needs a value ({self.help})")
        try:
            if self.type is bool:
                converted = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            elif self.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            else:
                converted = self.type(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"parameter {self.name!r} must be {self.type.__name__}, got {value!r}"
            ) from None
        if self.choices is not None:
            if self.type is str:
                converted = converted.lower()
            if converted not in self.choices:
                raise ValueError(
                    f"parameter {self.name!r} must be one of {', '.join(map(str, self.choices))}; got {value!r}"
                )
        if self.range is not None:
            low, high = self.range
            if not low <= converted <= high:
                raise ValueError(f"parameter {self.name!r} must be between {low} and {high}, got {value!r}")
        return converted


@dataclass(frozen=True)
class Method:
    """A denoising method: ``steps(data, wavenumbers=..., device=..., **params)`` and its schema."""

    name: str
    steps: Callable
    params: tuple[Param, ...] = ()
    description: str = ""
    kind: str = "classical"  # "classical", "network" or "hybrid"
    model: str | None = None
    uses_device: bool = False

    def check_params(self, params: dict) -> dict:
        """Defaults filled in and every value checked; unknown names raise a ``ValueError``."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            accepted = ", ".join(known) or "none"
            raise ValueError(
                f"method {self.name!r} has no parameter {', '.join(map(repr, unknown))}; it accepts: {accepted}"
            )
        return {name: p.check(params.get(name, p.default)) for name, p in known.items()}
