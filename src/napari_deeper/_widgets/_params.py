"""Controls built from the method schema: one per :class:`~napari_deeper.methods.Param`, and the
panels of a family's methods that the Denoise and Super-resolve docks show."""

from __future__ import annotations

import math

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, SpinBox


class OptionalInt(Container):
    """An integer that may be left unset: a tick box (e.g. "auto") beside a spin box."""

    def __init__(self, param):
        low, high = param.range if param.range is not None else (0, 10**9)
        self.auto = CheckBox(text=param.none_means, value=param.default is None, tooltip=param.help)
        self.number = SpinBox(min=int(low), max=int(high), tooltip=param.help,
                              value=int(low) if param.default is None else int(param.default))
        super().__init__(widgets=[self.auto, self.number], layout="horizontal", labels=False,
                         label=param.name, tooltip=param.help)
        self.margins = (0, 0, 0, 0)
        self.number.enabled = not self.auto.value
        self.auto.changed.connect(self._on_auto)

    def _on_auto(self, on: bool) -> None:
        self.number.enabled = not on

    @property
    def value(self) -> int | None:
        return None if self.auto.value else int(self.number.value)

    @value.setter
    def value(self, value) -> None:
        self.auto.value = value is None
        if value is not None:
            self.number.value = int(value)


def param_widget(param):
    """A magicgui control for one :class:`~napari_deeper.methods.Param`."""
    tooltip = param.help
    if param.choices is not None:
        return ComboBox(label=param.name, choices=list(param.choices), value=param.default, tooltip=tooltip)
    if param.type is str:
        return LineEdit(label=param.name, value=str(param.default), tooltip=tooltip)
    if param.type is bool:
        return CheckBox(label=param.name, value=bool(param.default), tooltip=tooltip)
    if param.type is int and param.optional:
        return OptionalInt(param)
    low, high = param.range if param.range is not None else (-1e9, 1e9)
    if param.type is int:
        return SpinBox(label=param.name, min=int(low), max=int(high), value=int(param.default), tooltip=tooltip)
    return float_box(param.name, float(param.default), float(low), float(high), tooltip)


def float_box(label: str, value: float, low: float, high: float, tooltip: str = "",
              decimals: int | None = None) -> FloatSpinBox:
    """A float spin box that shows ``value`` as it is and steps in proportion to it.

    magicgui's spin box keeps two decimals, which turned a tolerance of 1e-3 into 0; here the
    decimals (unless given) reach three significant digits of ``value``, and each step is a
    tenth of its order of magnitude (a smoothness of 1e5 steps by 1e4).
    """
    box = FloatSpinBox(label=label, min=low, max=high, tooltip=tooltip)
    if decimals is None:
        decimals = max(2, 2 - (math.floor(math.log10(abs(value))) if value else 0))
    box.native.setDecimals(decimals)
    box.adaptive_step = True
    box.value = value
    return box


class MethodParams(Container):
    """The parameter controls of one method, shown while that method is selected."""

    def __init__(self, method):
        self.method = method
        self.controls = {p.name: param_widget(p) for p in method.params}
        header = Label(value=f"<b>{method.name}</b>: {method.description}")
        header.native.setWordWrap(True)
        super().__init__(widgets=[header, Container(widgets=list(self.controls.values()))], labels=False)
        self.margins = (0, 4, 0, 4)
        self.visible = False

    @property
    def params(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}


class MethodPanels:
    """A family's methods in a multi-select list, with a parameter panel per selected method.

    ``panels`` maps method names to their :class:`MethodParams` (kept across refreshes, so
    values the user set survive); :meth:`refresh` re-reads the family, so a newly saved model
    shows up; :meth:`jobs` gives ``{method: params}`` of the selection.
    """

    def __init__(self, family, select, container: Container, default_selection=()):
        self.family = family
        self.select = select
        self.container = container
        self.default_selection = list(default_selection) or [family.default]
        self.panels: dict[str, MethodParams] = {}
        select.changed.connect(self.show)

    def refresh(self) -> None:
        """Re-read the methods, keeping the selection and the parameters already set."""
        selected = list(self.select.value) if self.panels else self.default_selection
        available = self.family.available()
        for name in [name for name in self.panels if name not in available]:
            self.container.remove(self.panels.pop(name))
        for name, method in available.items():
            if name not in self.panels:
                self.panels[name] = MethodParams(method)
                self.container.append(self.panels[name])
        self.select.choices = list(available)
        self.select.value = [name for name in selected if name in available]
        self.show()

    def show(self, value=None) -> None:
        """Show the panels of the selected methods that have parameters."""
        chosen = set(self.select.value)
        for name, panel in self.panels.items():
            panel.visible = name in chosen and bool(panel.controls)

    def jobs(self) -> dict[str, dict]:
        """``{method: parameters}`` of every selected method."""
        return {name: self.panels[name].params for name in self.select.value}
