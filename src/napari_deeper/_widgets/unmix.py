"""Unmix dock widget: VCA endmembers from one layer, exact NNLS abundance maps for many.

Pick the layer to take endmembers from (the cleanest: a long exposure or a denoised result; the
dock opens on the selected layer), how many, and the layers to explain with them (raw, every
processed version; those on the source's spectral axis start chosen, the source first). *Unmix*
runs :func:`napari_deeper.stream.unmix_steps` in a worker (cosmic-ray spikes removed from the
source by default, VCA, then NNLS or FCLS per target, with progress and cancel), warns about
endmembers that still look like spikes, and makes, per target: the abundance maps (by default one
colour layer mixing the components; or one stacked layer, or one coloured layer per component),
a labels layer of the dominant component (colours as in the endmember plot, the background
optionally left out, a class legend on the canvas) and the residual map. Components can be renamed in the table (names carry to
layer names and exports); every map's provenance holds the recipe step that remakes it from its
target, with the endmembers inline; endmembers load from and save to CSV; with a reference labels
layer the pixel classification accuracy of each target is shown. *Export unmixing...* writes one run's maps,
labels, endmember CSV and a JSON record into a new folder. Removing a layer the run reads during
the run does not stop it: the maps are made for every target and a warning names the removed
layers. A lazy layer (a zarr store, a large file opened lazily) is read block by block, for VCA,
the abundances and the suggested count alike; its spike removal before VCA streams into a scratch
store first (:func:`napari_deeper.stream.unmix_steps`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, Select, SpinBox
from napari.layers import Labels
from napari.utils.colormaps import Colormap, DirectLabelColormap
from napari.utils.notifications import show_info, show_warning
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import metrics, provenance
from ..compute import devices
from ..io.endmembers import default_names, load_endmembers_csv, save_endmembers_csv
from ..io.unmixing import next_free_folder, write_unmixing
from ..spectral.preprocess import find_spikes
from ..stream import unmix_steps  # (a lazy source's spike removal streamed)
from ..unmix.methods import ENDMEMBER_COUNT
from ._display import grid_of
from ._grid import title_overlay_class
from ._layers import (
    follow_layers,
    is_spectral,
    layer_choices,
    wavenumbers_of,
)
from ._runner import Runner

OPERATION = "unmix"
COMPOSITE = "one colour layer, components mixed"
STACKED = "one layer, components stacked"
PER_COMPONENT = "one layer per component"
#: spike threshold of the removal before VCA (noise levels, :func:`~napari_deeper.spectral.preprocess.find_spikes`)
DESPIKE_THRESHOLD = float(find_spikes.__defaults__[0])
#: key of a class-legend entry among a labels layer's overlays (one per class, in its colour)
LEGEND_KEY = "napari_deeper_legend_{}"
#: Component colours (matplotlib's tab10), shared by the plot, the maps and the labels.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def is_unmixable(layer) -> bool:
    """A spectral cube, but not the stacked abundance maps this dock makes."""
    return is_spectral(layer) and provenance.of(layer).get("operation") != OPERATION


def is_labels(layer) -> bool:
    return isinstance(layer, Labels)


def component_color(index: int) -> np.ndarray:
    """RGBA (0-1) of component ``index`` (0-based), as used everywhere in this dock."""
    value = PALETTE[index % len(PALETTE)].lstrip("#")
    return np.array([int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)] + [1.0])


def composite(abundances) -> np.ndarray:
    """An RGB ``(Y, X, 3)`` image of ``(k, Y, X)`` abundances: each component in its colour.

    Each map is scaled by its own 99.5th percentile (so a weak component still shows), the
    colours add up, and the sum is clipped to [0, 1].
    """
    a = np.asarray(abundances, dtype=np.float32)
    scale = np.percentile(a.reshape(a.shape[0], -1), 99.5, axis=1)
    scale[~(scale > 0)] = 1.0
    weights = np.clip(a / scale[:, None, None].astype(np.float32), 0, 1)
    colors = np.array([component_color(i)[:3] for i in range(a.shape[0])], dtype=np.float32)
    return np.clip(np.tensordot(weights, colors, axes=(0, 0)), 0, 1)


def compatible(layer, source) -> bool:
    """Whether ``layer`` shares ``source``'s spectral axis (band count, and wavenumbers when both have them)."""
    if source is None or layer.data.shape[0] != source.data.shape[0]:
        return False
    mine, theirs = wavenumbers_of(layer), wavenumbers_of(source)
    if mine is None or theirs is None:
        return True
    return bool(np.allclose(mine, theirs, rtol=0, atol=1e-6 * max(np.ptp(theirs), 1e-12)))


class UnmixWidget(QWidget):
    """VCA + NNLS: endmembers from one layer, abundance maps, labels and residuals for many."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.result = None  # the last UnmixResult
        self.run_record: dict = {}  # parameters, layers and layer names of the last run
        self.names: list[str] = []  # component names (editable)
        self.loaded: dict | None = None  # endmembers read from CSV
        self.made: dict[str, dict] = {}  # target name -> layers made for it
        self.accuracy: dict[str, float | None] = {}
        self.suggested: int | None = None
        self._legend_layers: list = []  # the labels layers this dock made, with a legend on the canvas

        cubes, labels = layer_choices(napari_viewer, is_unmixable), layer_choices(napari_viewer, is_labels)
        self.source = ComboBox(label="Endmembers from", choices=cubes)
        self.n_endmembers = SpinBox(label="Endmembers", value=5, min=1, max=63)
        self.suggest_button = PushButton(text="Suggest")
        self.hint = Label(value="")
        self.use_loaded = CheckBox(text="Use the endmembers loaded from CSV (skip VCA)", value=False)
        self.use_loaded.enabled = False
        self.mask = ComboBox(label="VCA mask", choices=labels, nullable=True, value=None)
        self.despike = CheckBox(text="Remove cosmic-ray spikes before VCA", value=True)
        self.targets = Select(label="Apply to", choices=cubes)
        self.targets.tooltip = "Ctrl/Shift-click to choose several; only layers on the source's spectral axis start chosen"
        self.output = ComboBox(label="Abundances as", choices=[COMPOSITE, STACKED, PER_COMPONENT], value=COMPOSITE)
        self.background = CheckBox(text="Leave the background out of the classes", value=False)
        self.warning = Label(value="")
        self.sum_to_one = CheckBox(text="Sum to one (FCLS)", value=False)
        self.device = ComboBox(label="Device", choices=devices(), value="auto")
        self.seed = SpinBox(label="Seed", value=0, min=0, max=2**31 - 1)
        self.reference = ComboBox(
            label="Reference labels", choices=labels, nullable=True, value=None
        )
        self.controls = Container(
            widgets=[
                self.source,
                Container(
                    widgets=[self.n_endmembers, self.suggest_button],
                    layout="horizontal",
                    labels=False,
                    label="Endmembers",
                ),
                self.hint,
                self.use_loaded,
                self.mask,
                self.despike,
                self.targets,
                self.output,
                self.background,
                self.sum_to_one,
                self.device,
                self.seed,
            ]
        )
        self.runner = Runner("Unmix")

        from ._plot import SmallPlot

        self.plot = SmallPlot(napari_viewer, height=170)
        self.axes = self.plot.axes

        self.names_table = QTableWidget(0, 1)
        self.names_table.setHorizontalHeaderLabels(["Component name (editable)"])
        self.names_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.names_table.verticalHeader().setDefaultSectionSize(22)
        self.names_table.setMinimumHeight(130)

        self.accuracy_table = QTableWidget(0, 2)
        self.accuracy_table.setHorizontalHeaderLabels(["Target", "Accuracy"])
        self.accuracy_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.accuracy_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.accuracy_table.verticalHeader().setVisible(False)
        self.accuracy_table.verticalHeader().setDefaultSectionSize(22)
        self.accuracy_table.setMinimumHeight(90)

        self.load_button = QPushButton("Load endmembers CSV...")
        self.save_button = QPushButton("Save endmembers CSV...")
        self.export_button = QPushButton("Export unmixing...")
        self.save_button.setEnabled(False)
        self.export_button.setEnabled(False)
        csv_buttons = QHBoxLayout()
        csv_buttons.addWidget(self.load_button)
        csv_buttons.addWidget(self.save_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.runner)
        layout.addWidget(self.warning.native)
        layout.addWidget(self.plot)
        layout.addWidget(self.names_table)
        layout.addLayout(csv_buttons)
        layout.addWidget(Container(widgets=[self.reference]).native)
        layout.addWidget(self.accuracy_table)
        layout.addWidget(self.export_button)

        self.runner.run_button.clicked.connect(self.run)
        self.suggest_button.changed.connect(self.suggest)
        self.load_button.clicked.connect(self._load_dialog)
        self.save_button.clicked.connect(self._save_dialog)
        self.export_button.clicked.connect(self._export_dialog)
        self.names_table.itemChanged.connect(self._on_name_edited)
        for emitter in (napari_viewer.layers.events.moved, napari_viewer.layers.events.removed,
                        grid_of(napari_viewer).events.enabled):
            emitter.connect(self._update_legends)
        self.reference.changed.connect(self.update_accuracy)
        self._auto_targets: list | None = None  # the targets this dock chose (None once the user chose)
        active = napari_viewer.layers.selection.active
        if active is not None and any(active is choice for choice in self.source.choices):
            self.source.value = active  # the selected layer first
        self._choose_targets()
        self.source.changed.connect(self._on_source_changed)
        self.targets.changed.connect(self._on_targets_changed)
        follow_layers(
            self.viewer, self.source, self.mask, self.reference, self.targets, then=self._select_new_target
        )
        self._plot()

    # ------------------------------------------------------------------------------ layer lists
    def _choose_targets(self) -> None:
        """Preselect in *Apply to* the layers on the source's spectral axis, the source first."""
        source = self.source.value
        chosen = [layer for layer in self.targets.choices if compatible(layer, source)]
        chosen.sort(key=lambda layer: layer is not source)
        self._auto_targets = chosen
        with self.targets.changed.blocked():
            self.targets.value = chosen

    def _on_source_changed(self, value=None) -> None:
        if self._auto_targets is not None:
            self._choose_targets()

    def _on_targets_changed(self, value=None) -> None:
        """A choice the user made in *Apply to* is kept from then on."""
        auto = self._auto_targets
        if auto is not None:  # a removed layer leaves the list without being the user's choice
            auto = [layer for layer in auto if any(layer is choice for choice in self.targets.choices)]
        if auto is not None and not (len(auto) == len(value) and all(a is b for a, b in zip(auto, value))):
            self._auto_targets = None

    def _select_new_target(self, event=None) -> None:
        """A newly added cube on the source's axis starts selected in *Apply to*; the user's selection is kept."""
        if getattr(event, "type", None) != "inserted":
            return
        layer = event.value
        if any(layer is choice for choice in self.targets.choices) and compatible(layer, self.source.value):
            if self._auto_targets is not None:
                self._auto_targets = [*self._auto_targets, layer]
            with self.targets.changed.blocked():
                self.targets.value = [*self.targets.value, layer]

    # ---------------------------------------------------------------------------------- running
    def run(self) -> None:
        """Check the choices and start the unmixing in the background."""
        if self.runner.busy:
            show_info("An unmixing run is in progress; cancel it or wait for it to finish.")
            return
        source = self.source.value
        targets = sorted(self.targets.value, key=lambda layer: layer is not source)  # the source first
        loaded = self.loaded if self.use_loaded.value else None
        if not targets:
            self.runner.refuse("Choose at least one layer to apply the endmembers to.")
            return
        if loaded is None and source is None:
            self.runner.refuse("Choose the layer to take endmembers from, or load endmembers from CSV.")
            return
        axis = loaded["wavenumbers"] if loaded is not None else wavenumbers_of(source)
        for layer in targets:
            own = wavenumbers_of(layer)
            if axis is not None and own is not None and (
                own.shape != axis.shape or not np.allclose(own, axis, rtol=0, atol=1e-6 * np.ptp(axis))
            ):
                where = "the loaded endmembers" if loaded is not None else f"layer {source.name!r}"
                self.runner.refuse(f"Layer {layer.name!r} has another spectral axis than {where}.")
                return
        mask = None
        if loaded is None and self.mask.value is not None:
            mask = np.asarray(self.mask.value.data) > 0
        record = {
            "source_layer": None if loaded is not None else source,
            "target_layers": targets,
            "source": None if loaded is not None else source.name,
            "endmembers_file": None if loaded is None else loaded["path"],
            "targets": [layer.name for layer in targets],
            "output": self.output.value,
            "mask": None if mask is None else self.mask.value.name,
            "wavenumbers": axis,
            "despike": None if loaded is not None or not self.despike.value else DESPIKE_THRESHOLD,
        }
        self.warning.value = ""
        self.runner.start(
            unmix_steps,
            lambda result: self._on_done(result, record),
            None if loaded is not None else source.data,  # a lazy layer (a zarr store) is read block by block
            {layer.name: layer.data for layer in targets},
            n_endmembers=self.n_endmembers.value,
            endmembers=None if loaded is None else loaded["endmembers"],
            sum_to_one=self.sum_to_one.value,
            device=self.device.value,
            seed=self.seed.value,
            mask=mask,
            source_name=record["source"],
            despike=record["despike"],
            background=self.background.value,
            viewer=self.viewer,
            inputs=[record["source_layer"], self.mask.value if mask is not None else None, *targets],
        )

    def _on_done(self, result, record: dict) -> None:
        """Make the layers of a finished run (main thread)."""
        self.run_record = record
        k = result.endmembers.shape[0]
        if record["endmembers_file"] is not None and self.loaded is not None:
            self.names = list(self.loaded["names"])
        elif len(self.names) != k:
            self.names = default_names(k)
        self.result = result
        self.made = {}
        # a target removed during the run still gets its maps (the runner says it was removed)
        for name, layer in zip(record["targets"], record["target_layers"]):
            self.made[name] = self._add_layers(layer, result.targets[name])
        self._fill_names_table()
        self._plot()
        self._warn_spikes()
        self.save_button.setEnabled(True)
        self.export_button.setEnabled(True)
        if self.reference.value is None and self.run_record["source"] in self.made:
            self.reference.value = self.made[self.run_record["source"]]["labels"]
        self.update_accuracy()

    def _record(self, target, map: str, component: int | None = None, **extra) -> dict:
        """Provenance of one map of ``target``: its recipe step replays it with the endmembers inline."""
        params = {**self.result.params, "output": self.run_record["output"], "mask": self.run_record["mask"]}
        if component is not None:
            extra["component"] = component
        background = self.result.targets[target.name].background if target.name in self.result.targets else None
        replay = provenance.step(OPERATION, {
            "method": "fcls" if params["sum_to_one"] else "nnls", "endmembers": self.result.endmembers,
            "map": map, "component": component, "min_abundance": params["min_abundance"],
            **({"background": background} if map == "labels" and background is not None else {}),
        })
        return provenance.record(
            OPERATION,
            target,
            params,
            replay=replay,
            map=map,
            endmember_source=self.run_record["source"] or self.run_record["endmembers_file"],
            components=list(self.names),
            endmembers=self.result.endmembers,
            wavenumbers=self.run_record["wavenumbers"],
            endmember_pixels=None if self.result.pixel_indices is None else self.result.pixel_indices.tolist(),
            **extra,
        )

    def _add_layers(self, target, maps) -> dict:
        """Abundance, labels and residual layers of one target, on the target's spatial grid."""
        scale = np.asarray(target.scale, dtype=float)[-2:]
        translate = np.asarray(target.translate, dtype=float)[-2:]
        grid = {
            "scale": scale,
            "translate": translate,
            "axis_labels": tuple(target.axis_labels[-2:]),
            "units": tuple(target.units[-2:]),
        }
        layers = {"abundance": []}
        if self.output.value == COMPOSITE:
            layers["abundance"].append(
                self.viewer.add_image(
                    composite(maps.abundances),
                    name=f"{target.name} · abundances",
                    metadata={provenance.KEY: self._record(target, map="abundance")},
                    rgb=True,
                    **grid,
                )
            )
        elif self.output.value == STACKED:
            layers["abundance"].append(
                self.viewer.add_image(
                    maps.abundances,
                    name=f"{target.name} · abundance",
                    metadata={provenance.KEY: self._record(target, map="abundance")},
                    scale=np.r_[1.0, scale],
                    translate=np.r_[0.0, translate],
                    axis_labels=("component", *grid["axis_labels"]),
                    units=(target.units[0], *grid["units"]),  # napari wants one unit per world axis
                    colormap="viridis",
                )
            )
        else:
            for index, component in enumerate(self.names):
                colormap = Colormap([[0, 0, 0, 1], component_color(index)], name=f"component {index + 1}")
                layers["abundance"].append(
                    self.viewer.add_image(
                        maps.abundances[index],
                        name=f"{target.name} · {component}",
                        metadata={provenance.KEY: self._record(target, map="abundance", component=index)},
                        colormap=colormap,
                        blending="additive",
                        **grid,
                    )
                )
        colors = {None: np.zeros(4), 0: np.zeros(4)}
        colors.update({index + 1: component_color(index) for index in range(len(self.names))})
        layers["labels"] = self.viewer.add_labels(
            maps.labels,
            name=f"{target.name} · labels",
            metadata={provenance.KEY: self._record(target, map="labels")},
            colormap=DirectLabelColormap(color_dict=colors),
            **grid,
        )
        layers["labels"].events.visible.connect(self._update_legends)
        self._show_legend(layers["labels"], maps.background)
        layers["residual"] = self.viewer.add_image(
            maps.residual,
            name=f"{target.name} · residual",
            metadata={provenance.KEY: self._record(target, map="residual")},
            colormap="magma",
            visible=False,
            **grid,
        )
        return layers

    def _show_legend(self, labels, background: int | None) -> None:
        """The class legend on the canvas beside the labels layer: one line per class, in its colour.

        Shown while the labels layer is (napari's layer overlays follow the layer); the
        background, when left out of the classes, is not listed.
        """
        model = title_overlay_class()
        if model is None:
            return
        if not any(labels is layer for layer in self._legend_layers):
            self._legend_layers.append(labels)
        labels = getattr(labels, "__wrapped__", labels)  # a dock gets napari's proxy of the layer
        for key in [key for key in labels._overlays if key.startswith(LEGEND_KEY.format(""))]:
            del labels._overlays[key]
        # napari stacks a layer's top-left overlays upwards in the order they were added: the last first
        for index in reversed(range(len(self.names))):
            if index != background:
                labels._overlays[LEGEND_KEY.format(index)] = model(
                    text=f"■ {self.names[index]}", color=component_color(index), position="top_left",
                    font_size=10, visible=False,
                )
        self._update_legends()

    def _update_legends(self, event=None) -> None:
        """One legend on the canvas: the top visible labels layer's (every labels panel's in grid mode)."""
        self._legend_layers = [layer for layer in self._legend_layers if layer in self.viewer.layers]
        alive = self._legend_layers
        shown = [layer for layer in alive if layer.visible]
        top = max(shown, key=lambda layer: list(self.viewer.layers).index(layer)) if shown else None
        grid = grid_of(self.viewer).enabled
        for layer in alive:
            real = getattr(layer, "__wrapped__", layer)
            for key, overlay in real._overlays.items():
                if key.startswith(LEGEND_KEY.format("")):
                    overlay.visible = grid or layer is top

    def legend(self, labels) -> list[str]:
        """The class legend shown on the canvas with ``labels`` (a labels layer this dock made)."""
        layer = getattr(labels, "__wrapped__", labels)
        entries = [overlay.text for key, overlay in layer._overlays.items() if key.startswith(LEGEND_KEY.format(""))]
        return entries[::-1]

    def _warn_spikes(self) -> None:
        """Say which endmembers look like cosmic-ray spikes, where and how wide (see :mod:`napari_deeper.unmix.spikes`)."""
        found = self.result.spike_like
        if not found:
            return
        axis = self.run_record.get("wavenumbers")
        parts = []
        for spike in found:
            where = f"band {spike['band']}" if axis is None else f"{axis[spike['band']]:.1f} cm⁻¹"
            parts.append(f"{self.names[spike['component']]!r} (a peak at {where}, {spike['bands']} band"
                         f"{'s' if spike['bands'] > 1 else ''} wide, in one pixel)")
        remedy = ("tick 'Remove cosmic-ray spikes before VCA'" if self.run_record.get("despike") is None
                  else "remove the spikes with Preprocess (a lower threshold) or choose fewer endmembers")
        message = f"Endmembers that look like cosmic-ray spikes: {', '.join(parts)}; {remedy}."
        self.warning.value = message
        show_warning(message)

    # --------------------------------------------------------------------------- names and plot
    def _current_endmembers(self):
        """(endmembers, wavenumbers) of the last run, else of the loaded CSV, else None."""
        if self.result is not None:
            return self.result.endmembers, self.run_record.get("wavenumbers")
        if self.loaded is not None:
            return self.loaded["endmembers"], self.loaded["wavenumbers"]
        return None

    def _fill_names_table(self) -> None:
        self.names_table.blockSignals(True)
        self.names_table.setRowCount(len(self.names))
        for row, name in enumerate(self.names):
            item = QTableWidgetItem(name)
            color = component_color(row)
            item.setBackground(QColor.fromRgbF(*color[:3], 0.35))
            self.names_table.setItem(row, 0, item)
        self.names_table.blockSignals(False)

    def _on_name_edited(self, item) -> None:
        new = item.text().strip()
        row = item.row()
        others = [name for index, name in enumerate(self.names) if index != row]
        if not new or new in others:
            show_info("Component names must be distinct and not empty.")
            self._fill_names_table()
            return
        self.rename_component(row, new)

    def rename_component(self, index: int, name: str) -> None:
        """Rename component ``index`` (0-based) in the plot, the layers made and later exports."""
        name = str(name).strip()
        if not 0 <= index < len(self.names):
            raise ValueError(f"there is no component {index}; there are {len(self.names)}")
        if not name or name in [n for i, n in enumerate(self.names) if i != index]:
            raise ValueError(f"component names must be distinct and not empty, got {name!r}")
        old = self.names[index]
        self.names[index] = name
        if self.loaded is not None and len(self.loaded["names"]) == len(self.names):
            self.loaded["names"] = list(self.names)
        for target, layers in self.made.items():
            for layer in [*layers["abundance"], layers["labels"], layers["residual"]]:
                record = provenance.of(layer)
                record["components"] = list(self.names)
            if self.run_record.get("output") == PER_COMPONENT and layers["abundance"]:
                layer = layers["abundance"][index]
                if layer.name == f"{target} · {old}":
                    layer.name = f"{target} · {name}"
            self._show_legend(layers["labels"], self.result.targets[target].background if self.result else None)
        self._fill_names_table()
        self._plot()

    def _plot(self) -> None:
        current = self._current_endmembers()
        if current is None:
            self.plot.message("Endmembers appear here")
        else:
            self.axes.clear()
            endmembers, wavenumbers = current
            x = np.arange(endmembers.shape[1]) if wavenumbers is None else np.asarray(wavenumbers)
            names = self.names if len(self.names) == len(endmembers) else default_names(len(endmembers))
            for index, spectrum in enumerate(endmembers):
                self.axes.plot(x, spectrum, color=PALETTE[index % len(PALETTE)], label=names[index], lw=1)
            self.axes.set_xlabel("band" if wavenumbers is None else "Raman shift (cm⁻¹)")
            self.axes.set_ylabel("intensity")
            self.axes.legend(fontsize="x-small", frameon=False, loc="best")
            self.plot.apply_theme()

    # -------------------------------------------------------------------------------- accuracy
    def update_accuracy(self, value=None) -> None:
        """Pixel classification accuracy of every target's labels against the reference labels."""
        reference = self.reference.value
        self.accuracy = {}
        rows = []
        for target, layers in self.made.items():
            labels = layers["labels"]
            if reference is None:
                note = "choose reference labels"
                score = None
            elif labels.data.shape != reference.data.shape:
                note, score = "different size", None
            else:
                score = metrics.classification_accuracy(np.asarray(labels.data), np.asarray(reference.data))
                note = f"{score:.1%}"
            self.accuracy[target] = score
            rows.append((target, note))
        self.accuracy_table.setRowCount(len(rows))
        for row, (target, note) in enumerate(rows):
            self.accuracy_table.setItem(row, 0, QTableWidgetItem(target))
            self.accuracy_table.setItem(row, 1, QTableWidgetItem(note))

    # ----------------------------------------------------------------------- hint for k
    def suggest(self, value=None) -> None:
        """Estimate the number of endmembers of the source layer in the Runner (a hint; Cancel stops it).

        Runs the ``endmember_count`` family's default method, the explained-variance rule of
        :func:`napari_deeper.unmix.estimate_n_endmembers`.
        """
        source = self.source.value
        if source is None:
            self.runner.refuse("Choose the layer to take endmembers from first.")
            return
        self.hint.value = ""
        self.runner.start(ENDMEMBER_COUNT.steps, self._show_suggestion, source.data,  # (of a lazy layer, its sample only)
                          viewer=self.viewer, inputs=[source])

    def _show_suggestion(self, k: int) -> None:
        self.suggested = int(k)
        self.hint.value = (
            f"The data suggest {k} (components above the noise that explain 99 % of the signal "
            "variance): a hint, the choice is yours"
        )

    # ------------------------------------------------------------------------------- files
    def load_endmembers(self, path) -> None:
        """Read endmembers from a CSV; the next run applies them and skips VCA."""
        endmembers, wavenumbers, names = load_endmembers_csv(path)
        self.loaded = {"endmembers": endmembers, "wavenumbers": wavenumbers, "names": names, "path": str(path)}
        self.result = None
        self.made = {}
        self.names = list(names)
        self.n_endmembers.value = len(names)
        self.use_loaded.enabled = True
        self.use_loaded.value = True
        self.save_button.setEnabled(True)
        self.export_button.setEnabled(False)
        self._fill_names_table()
        self._plot()

    def save_endmembers(self, path) -> Path:
        """Write the current endmembers (last run, or loaded) with their names to a CSV."""
        current = self._current_endmembers()
        if current is None:
            raise ValueError("there are no endmembers yet: run the unmixing or load a CSV first")
        endmembers, wavenumbers = current
        return save_endmembers_csv(path, endmembers, wavenumbers, self.names)

    def export(self, directory) -> Path:
        """Write the last run into a new folder ``directory/unmixing-NNN`` and return it.

        The folder holds, per target, ``<target>_abundance.tif`` (k pages, component names and
        the spectral axis in the TIFF description), ``<target>_labels.tif`` and
        ``<target>_residual.tif``; ``endmembers.csv``; and ``unmixing.json`` with the parameters,
        provenance, files and accuracies. An existing folder is never written into.
        """
        if self.result is None or not self.made:
            raise ValueError("there is nothing to export: run the unmixing first")
        target_layers = dict(zip(self.run_record["targets"], self.run_record["target_layers"]))
        grids = {
            target: {"scale": list(layers["labels"].scale), "translate": list(layers["labels"].translate)}
            for target, layers in self.made.items()
        }
        endmembers, wavenumbers = self._current_endmembers()
        record = {
            "parameters": {**self.result.params, "output": self.run_record["output"]},
            "endmember_source": self.run_record["source"],
            "endmembers_file": self.run_record["endmembers_file"],
            "vca_mask": self.run_record["mask"],
            "endmember_pixels": self._pixel_positions(),
            "reference_labels": None if self.reference.value is None else self.reference.value.name,
            "accuracy": self.accuracy,
        }
        return write_unmixing(
            next_free_folder(Path(directory)),
            {target: self.result.targets[target] for target in self.made},
            endmembers,
            wavenumbers,
            self.names,
            record,
            provenance=lambda target, kind: self._record(target_layers[target], map=kind),
            grids=grids,
        )

    def _pixel_positions(self):
        """The VCA pixels as (y, x) on the source layer, when VCA found the endmembers."""
        source = self.run_record.get("source_layer")
        if self.result.pixel_indices is None or source not in self.viewer.layers:
            return None
        shape = source.data.shape[-2:]
        return [list(map(int, np.unravel_index(i, shape))) for i in self.result.pixel_indices]

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load endmembers", "", "CSV (*.csv *.txt)")
        if path:
            try:
                self.load_endmembers(path)
            except (OSError, ValueError) as error:
                self.runner.refuse(f"Could not load endmembers: {error}")

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save endmembers", "endmembers.csv", "CSV (*.csv)")
        if path:
            try:
                self.save_endmembers(path)
            except (OSError, ValueError) as error:
                self.runner.refuse(f"Could not save endmembers: {error}")

    def _export_dialog(self) -> None:
        directory = QFileDialog.getExistingDirectory(self, "Export unmixing into (a new folder is made)")
        if directory:
            try:
                folder = self.export(directory)
            except (OSError, ValueError) as error:
                self.runner.refuse(f"Export failed: {error}")
                return
            show_info(f"Unmixing exported to {folder}")
            self.runner.status.setText(f"Exported to {folder}")
