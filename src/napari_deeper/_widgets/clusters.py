"""Clusters tab of the Analyse dock: k-means or Ward cluster maps of the spectra, as labels.

*Suggest* scores 2 to 8 clusters by their silhouette on a sample of the spectra, in the
background, and shows the best count as a hint. *Cluster* runs the ``cluster`` family in a
worker (optionally on PCA scores or normalised spectra) and makes a labels layer (1 the largest
cluster) whose recipe step remakes it, and the tab's plot shows each cluster's mean spectrum ±
one standard deviation in the colour the labels layer gives that cluster.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .. import provenance
from ..analysis import region_table_steps, suggest_clusters_steps
from ..analysis.methods import CLUSTER
from ..compute import stage
from ._analysis import PALETTE, SmallPlot, compact, label_colormap, map_layer_kwargs, wrapped
from ._layers import follow_layers, layer_choices, spectral_axis, wavenumbers_of
from ._params import param_widget
from ._runner import Runner

CANDIDATES = range(2, 9)
OFF = "none"


def cluster_spectra_steps(data, method: str, wavenumbers, params: dict):
    """The cluster labels, then each cluster's mean and std spectra: ``(labels, RegionTable)``."""
    labels = yield from stage(CLUSTER.steps(data, method, wavenumbers, **params), 0, 2, "clusters")
    table = yield from stage(region_table_steps(data, wavenumbers, labels,
                                                names=[f"cluster {k}" for k in np.unique(labels)]),
                             1, 2, "cluster spectra")
    return labels, table


class ClusterWidget(QWidget):
    """Layer, method, number of clusters (with a hint), PCA, normalisation, seed; Cluster."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        schema = {p.name: p for p in CLUSTER.lookup(None).params}
        self.layer = ComboBox(label="Layer", choices=layer_choices(self.viewer))
        compact(self.layer)
        self.method = ComboBox(label="Method", choices=list(CLUSTER.methods), value=CLUSTER.default)
        self.method.tooltip = "; ".join(f"{m.name}: {m.description}" for m in CLUSTER.methods.values())
        self.n_clusters = param_widget(schema["n_clusters"])
        self.suggest_button = PushButton(text="Suggest")
        self.suggest_button.tooltip = f"silhouette of {CANDIDATES[0]}-{CANDIDATES[-1]} clusters on a sample (a hint)"
        self.hint = Label(value="")
        self.hint.native.setWordWrap(True)
        self.pca = param_widget(schema["pca"])
        self.normalise = ComboBox(label="normalise", choices=[OFF, *schema["normalise"].choices], value=OFF,
                                  tooltip=schema["normalise"].help)
        self.seed = param_widget(schema["seed"])
        self.controls = Container(widgets=[
            self.layer, self.method,
            Container(widgets=[self.n_clusters, self.suggest_button], layout="horizontal", labels=False,
                      label="n_clusters"),
            self.hint, self.pca, self.normalise, self.seed,
        ])
        self.runner = Runner("Cluster")
        self.plot = SmallPlot(self.viewer, height=220)
        self.suggestion: dict | None = None
        self.table = None  # RegionTable of the last clustering
        self.labels_layer = None

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.runner)
        layout.addWidget(self.plot)
        layout.addStretch(1)

        self.runner.run_button.clicked.connect(self.run)
        self.suggest_button.changed.connect(self.suggest)
        follow_layers(self.viewer, self.layer)
        self.plot.message("Each cluster's mean ± std spectrum appears here")

    def parameters(self) -> tuple[str, dict]:
        normalise = None if self.normalise.value == OFF else self.normalise.value
        given = {"n_clusters": self.n_clusters.value, "pca": self.pca.value, "normalise": normalise,
                 "seed": self.seed.value}
        method, checked = CLUSTER.check(self.method.value, given)
        return method.name, checked

    def _inputs(self):
        layer = self.layer.value
        if layer is None:
            raise ValueError("open or choose a spectral layer first")
        return (layer, *self.parameters())

    # ------------------------------------------------------------------------------- hint
    def suggest(self, value=None) -> None:
        """Score 2-8 clusters by their silhouette in the background; the best is shown as a hint."""
        try:
            layer, method, params = self._inputs()
        except ValueError as error:
            self.runner.refuse(error)
            return
        self.hint.value = ""
        self.runner.start(
            suggest_clusters_steps, self._show_hint, np.asarray(layer.data), CANDIDATES, method,
            params["pca"], params["normalise"], params["seed"], viewer=self.viewer, inputs=[layer],
        )

    def _show_hint(self, suggestion: dict) -> None:
        self.suggestion = suggestion
        scores = ", ".join(f"{k}: {v:.2f}" for k, v in suggestion["scores"].items())
        self.hint.value = wrapped(f"Hint: {suggestion['message']} (silhouettes {scores}); the choice is yours")

    # -------------------------------------------------------------------------------- run
    def run(self) -> None:
        try:
            layer, method, params = self._inputs()
        except ValueError as error:
            self.runner.refuse(error)
            return
        self.runner.start(
            cluster_spectra_steps, lambda result: self._add_labels(layer, method, params, *result),
            np.asarray(layer.data), method, wavenumbers_of(layer), params, viewer=self.viewer, inputs=[layer],
        )

    def _add_labels(self, layer, method: str, params: dict, labels: np.ndarray, table) -> None:
        k = params["n_clusters"]
        record = provenance.record("cluster", layer, {"method": method, **params},
                                   clusters=[{"label": int(label), "pixels": int(n)}
                                             for label, n in zip(table.labels, table.pixels)])
        kwargs = map_layer_kwargs(layer, f"{layer.name} · {method} {k} clusters", record)
        kwargs["colormap"] = label_colormap(k)
        self.labels_layer = self.viewer.add_labels(labels, opacity=0.7, **kwargs)
        self.table = table
        self.plot_clusters(layer)

    def plot_clusters(self, layer) -> None:
        """Each cluster's mean ± one std spectrum, in its labels colour."""
        axes = self.plot.axes
        axes.clear()
        x = spectral_axis(layer)
        for label, mean, std, n in zip(self.table.labels, self.table.mean, self.table.std, self.table.pixels):
            colour = PALETTE[(int(label) - 1) % len(PALETTE)]
            spread = np.nan_to_num(std)
            axes.fill_between(x, mean - spread, mean + spread, color=colour, alpha=0.25, lw=0)
            axes.plot(x, mean, color=colour, lw=1.0, label=f"cluster {label} (n={n})")
        self.plot.finish(layer, "Mean ± std")
