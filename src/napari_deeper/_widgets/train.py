"""Fine-tune models dock: adapt a shipped network to the user's own instrument and samples.

Three jobs share one worker, progress bar, live loss curve and save step:

- **Denoise**: fine-tune a denoiser on a low-SNR / high-SNR pair of layers of the same field.
- **Learn instrument noise**: from one scan of a featureless sample (gold film, empty slide), the
  smooth background is removed by SVD and the rest is taken as the instrument's noise; the
  attention U-net is fine-tuned on simulated clean spectra plus that measured noise.
- **Super-resolution**: fine-tune an upscaler on high-resolution layers; the low-resolution inputs
  are made inside by skip-sampling them.

The trained network is saved by name in the user's model folder (``registry.user_models_dir()``)
and from then on appears in the denoise / super-resolution method lists. A cancelled or failed
run saves nothing. The jobs, name rules, checks and saving are the core's
:mod:`napari_deeper.training.finetune` (a script fine-tunes the same way); this dock collects
the parameters, runs the job in a Runner and shows the loss.

Defaults: the denoising pair is proposed by provenance and SNR
(:func:`~napari_deeper.training.finetune.choose_pair`) until the user picks a layer; the base
model is the task's shipped one (:func:`~napari_deeper.training.finetune.default_base`), not the
last fine-tune saved; *Estimate time* times a few steps of the job as set
(:func:`~napari_deeper.training.finetune.time_steps`) and shows how long the run will take.
"""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, PushButton, Select, SpinBox
from matplotlib import colormaps
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.utils.notifications import show_info
from napari.utils.theme import get_theme
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QMessageBox, QVBoxLayout, QWidget

from .. import provenance
from ..compute import devices
from ..training import finetune
from ..training.finetune import DENOISE, NOISE, SUPERRES, FineTuneJob
from ._layers import follow_layers, layer_choices, wavenumbers_of
from ._runner import Runner

TASK_CHOICES = (
    ("Denoise: low/high-SNR pair of one field", DENOISE),
    ("Learn instrument noise: featureless scan", NOISE),
    ("Super-resolution: high-resolution layers", SUPERRES),
)
LOSS_COLOUR = colormaps["tab10"].colors[1]
NO_ESTIMATE = "Time: press 'Estimate time' (it times a few steps of this job)"


def _duration(seconds: float) -> str:
    """"40 s", "3 min 5 s", "1 h 12 min"."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"


class LossPlot(QWidget):
    """A small loss-versus-step curve that grows while a model trains, in the viewer's theme."""

    def __init__(self, viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self.figure = Figure(figsize=(3.2, 1.8), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(140)
        self.axes = self.figure.add_subplot()
        self.steps: list[int] = []
        self.losses: list[float] = []
        (self.line,) = self.axes.plot([], [], color=LOSS_COLOUR, linewidth=1.4)
        self.axes.set_xlabel("step")
        self.axes.set_ylabel("training loss")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.viewer.events.theme.connect(self._apply_theme)
        self._apply_theme()

    def _apply_theme(self, event=None) -> None:
        theme = get_theme(self.viewer.theme)
        background, foreground, text = (theme.background.as_hex(), theme.foreground.as_hex(), theme.text.as_hex())
        self.figure.set_facecolor(background)
        self.axes.set_facecolor(background)
        for spine in self.axes.spines.values():
            spine.set_color(foreground)
        self.axes.tick_params(colors=text, which="both", labelsize=8)
        self.axes.xaxis.label.set_color(text)
        self.axes.yaxis.label.set_color(text)
        self.canvas.draw_idle()

    def clear(self) -> None:
        self.steps.clear()
        self.losses.clear()
        self._redraw()

    def add(self, step: int, loss: float) -> None:
        self.steps.append(int(step))
        self.losses.append(float(loss))
        self._redraw()

    def _redraw(self) -> None:
        self.line.set_data(self.steps, self.losses)
        self.axes.relim()
        self.axes.autoscale_view()
        self.canvas.draw_idle()


class TrainWidget(QWidget):
    """Fine-tune a denoiser or an upscaler on the user's layers and save it by name."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.saved_path: Path | None = None
        self._auto_name = ""
        self._task_defaults: dict[str, float] = {}
        self._auto_pair: tuple | None = (None, None)  # the pair this dock chose (None once the user chose)
        self._auto_base = ""  # the base model this dock chose ("" once the user chose)
        self.timing: dict | None = None  # the last time_steps measurement, with the job it timed

        self.task = ComboBox(label="Task", choices=TASK_CHOICES, value=DENOISE)
        self.base_model = ComboBox(label="Base model", choices=[])
        cubes = layer_choices(self.viewer)
        self.noisy_layer = ComboBox(label="Low-SNR layer", choices=cubes, nullable=True)
        self.clean_layer = ComboBox(label="High-SNR layer", choices=cubes, nullable=True)
        self.blank_layer = ComboBox(label="Featureless scan", choices=cubes)
        self.hr_layers = Select(label="High-res layers", choices=cubes)
        self.scale = ComboBox(label="Scale", choices=[2, 3, 4], value=2)
        self.steps = SpinBox(label="Steps", min=1, max=1_000_000, step=50, value=finetune.default(DENOISE, "steps"))
        self.learning_rate = FloatSpinBox(
            label="Learning rate", min=1e-6, max=0.1, step=1e-6, value=finetune.default(DENOISE, "lr")
        )
        self.device = ComboBox(label="Device", choices=devices(), value="auto")
        self.model_name = LineEdit(label="Save as")
        self.overwrite = CheckBox(text="Overwrite a model of that name", value=False)
        self.hint = Label(value="")
        self.estimate_button = PushButton(text="Estimate time")
        self.estimate = Label(value=NO_ESTIMATE)
        for label in (self.hint, self.estimate):  # long lines wrap instead of widening the dock
            label.native.setWordWrap(True)
        self.form = Container(
            widgets=[
                self.task, self.hint, self.base_model, self.noisy_layer, self.clean_layer,
                self.blank_layer, self.hr_layers, self.scale, self.steps, self.learning_rate,
                self.device, self.model_name, self.overwrite, self.estimate_button, self.estimate,
            ]
        )
        self.runner = Runner("Fine-tune")
        self.loss_label = QLabel("Loss: -")
        self.loss_plot = LossPlot(self.viewer)
        self.saved_label = QLabel("")
        self.saved_label.setWordWrap(True)
        self.saved_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addWidget(self.runner)
        layout.addWidget(self.loss_label)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.saved_label)
        layout.addStretch(1)

        self.task.changed.connect(self._on_task_changed)
        self.estimate_button.changed.connect(self.time_run)
        self.steps.changed.connect(self._show_estimate)
        self.base_model.changed.connect(self._on_base_chosen)
        for widget in (self.noisy_layer, self.clean_layer):
            widget.changed.connect(self._on_pair_chosen)
        for widget in (self.task, self.base_model, self.noisy_layer, self.clean_layer, self.blank_layer,
                       self.hr_layers, self.scale, self.device):
            widget.changed.connect(self._forget_timing)
        for widget in (self.base_model, self.noisy_layer, self.blank_layer, self.hr_layers):
            widget.changed.connect(self._update_default_name)
        self.runner.run_button.clicked.connect(self.run)
        follow_layers(
            self.viewer, self.noisy_layer, self.clean_layer, self.blank_layer, self.hr_layers,
            then=self._on_layers_changed,
        )
        self._task_defaults = {"steps": self.steps.value, "lr": self.learning_rate.value}
        self._on_task_changed()

    # ------------------------------------------------------------------ choices
    def _on_layers_changed(self, event=None) -> None:
        """After the layer choosers followed the viewer: fill the gaps and re-propose the name."""
        layers = list(self.hr_layers.choices)
        if not self.hr_layers.value:
            self.hr_layers.value = layers[:1]
        if self._auto_pair is not None:
            self._choose_pair(layers)
        self._update_default_name()

    def _choose_pair(self, layers) -> None:
        """Propose the low/high-SNR pair (:func:`~napari_deeper.training.finetune.choose_pair`)."""
        pair = finetune.choose_pair([(layer.name, layer.data, provenance.of(layer)) for layer in layers])
        by_name = {layer.name: layer for layer in layers}
        noisy, clean = (None, None) if pair is None else (by_name[pair[0]], by_name[pair[1]])
        self._auto_pair = (noisy, clean)
        with self.noisy_layer.changed.blocked(), self.clean_layer.changed.blocked():
            self.noisy_layer.value, self.clean_layer.value = noisy, clean
        if self.task.value == DENOISE:
            self._set_hint()

    def _on_pair_chosen(self, value=None) -> None:
        """A layer the user picked for the pair is kept from then on."""
        auto = self._auto_pair
        if auto is not None and (self.noisy_layer.value is not auto[0] or self.clean_layer.value is not auto[1]):
            self._auto_pair = None
            self._set_hint()

    def refresh_models(self) -> None:
        """Fill the base-model chooser from the registry (shipped and the user's own models)."""
        models = finetune.base_models(self.task.value)
        choices = [(f"{info.name} ({info.arch}{'' if info.shipped else ', yours'})", info.name) for info in models]
        previous = self.base_model.value
        user_chose = bool(previous) and previous != self._auto_base
        with self.base_model.changed.blocked():
            self.base_model.choices = choices
            names = [value for _label, value in choices]
            if user_chose and previous in names:
                self.base_model.value = previous
            else:  # the shipped model, not the last fine-tune saved
                self._auto_base = finetune.default_base(self.task.value)
                if self._auto_base:
                    self.base_model.value = self._auto_base
        self._update_default_name()

    def _on_base_chosen(self, value=None) -> None:
        if value != self._auto_base:
            self._auto_base = ""

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.refresh_models()
        super().showEvent(event)

    def _on_task_changed(self, _value=None) -> None:
        task = self.task.value
        self.noisy_layer.visible = self.clean_layer.visible = task == DENOISE
        self.blank_layer.visible = task == NOISE
        self.hr_layers.visible = self.scale.visible = task == SUPERRES
        self._set_hint()
        for control, parameter in ((self.steps, "steps"), (self.learning_rate, "lr")):
            # a value the user typed is kept; a default follows the task's core function
            if control.value == self._task_defaults.get(parameter):
                control.value = self._task_defaults[parameter] = finetune.default(task, parameter)
        self.refresh_models()

    def _set_hint(self) -> None:
        task = self.task.value
        hint = {
            DENOISE: "Two scans of the same field: short (low SNR) and long (high SNR) exposure.",
            NOISE: "One scan of a featureless sample (gold film, empty slide).",
            SUPERRES: "Pairs are made inside by skip-sampling the high-resolution layers.",
        }[task]
        if task == DENOISE and self._auto_pair is not None:
            hint += (" Proposed: two scans of one shape, neither made from the other; the lower SNR as low-SNR."
                     if self._auto_pair[0] is not None else
                     " No two layers here make a pair (same shape, neither made from the other).")
        self.hint.value = hint

    # ------------------------------------------------------------------ time estimate
    def time_run(self, value=None) -> None:
        """Time a few steps of the job as set now (in the Runner) and show the estimate."""
        if self.runner.busy:
            show_info("A run is in progress; cancel it or wait for it to finish.")
            return
        try:
            job = self._collect()
        except ValueError as error:
            self.runner.refuse(error)
            return
        self.runner.start(finetune.time_steps, self._timed, job)

    def _timed(self, timing: dict) -> None:
        self.timing = timing
        self._show_estimate()

    def _forget_timing(self, value=None) -> None:
        """Another job than the one timed: its estimate no longer holds."""
        self.timing = None
        self.estimate.value = NO_ESTIMATE

    def estimated_seconds(self) -> float | None:
        """The measured time of a run with the steps set now, or None before a measurement."""
        return None if self.timing is None else finetune.estimated_seconds(self.timing, self.steps.value)

    def _show_estimate(self, value=None) -> None:
        seconds = self.estimated_seconds()
        if seconds is None:
            return
        t = self.timing
        self.estimate.value = (
            f"Time: about {_duration(seconds)} for {self.steps.value} steps ({t['seconds_per_step']:.3g} s a step, "
            f"measured over {t['probe_steps']} steps on {t['device']}, plus {_duration(t['setup_seconds'])} setup)"
        )

    def _naming_layer(self) -> str:
        task = self.task.value
        if task == DENOISE:
            layer = self.noisy_layer.value
        elif task == NOISE:
            layer = self.blank_layer.value
        else:
            layer = (self.hr_layers.value or [None])[0]
        return "" if layer is None else layer.name

    def _update_default_name(self, _value=None) -> None:
        """Propose ``<base>-finetuned-<layer>`` unless the user typed a name of their own."""
        base = self.base_model.value
        if not base:
            return
        proposal = finetune.default_model_name(base, self.task.value, self._naming_layer())
        if self.model_name.value in ("", self._auto_name):
            self.model_name.value = proposal
        self._auto_name = proposal

    # ------------------------------------------------------------------ run
    def _layer(self, layer, role: str):
        if layer is None:
            raise ValueError(f"choose a {role}: open or add a (bands, y, x) spectral layer first")
        if layer not in self.viewer.layers:
            raise ValueError(f"the {role} {layer.name!r} is no longer in the viewer")
        return layer

    def _collect(self) -> FineTuneJob:
        """Read the controls and the chosen layers into a checked :class:`FineTuneJob`."""
        task = self.task.value
        job = FineTuneJob(
            task=task,
            base_model=self.base_model.value or "",
            name=self.model_name.value,
            steps=int(self.steps.value),
            learning_rate=float(self.learning_rate.value),
            device=self.device.value,
            scale=int(self.scale.value),
        )
        if task == DENOISE:
            noisy = self._layer(self.noisy_layer.value, "low-SNR layer")
            clean = self._layer(self.clean_layer.value, "high-SNR layer")
            job.inputs = {"noisy": (noisy.name, noisy.data), "clean": (clean.name, clean.data)}
        elif task == NOISE:
            blank = self._layer(self.blank_layer.value, "featureless scan")
            job.inputs = {"blank": (blank.name, blank.data)}
            job.wavenumbers = wavenumbers_of(blank)
        else:
            layers = [self._layer(layer, "high-resolution layer") for layer in self.hr_layers.value or []]
            job.inputs = {"hr": ([layer.name for layer in layers], [layer.data for layer in layers])}
        return finetune.check(job)

    def _check_name_free(self, name: str) -> None:
        """Refuse shipped names; ask before replacing the user's own model of that name."""
        path = finetune.model_path(name)
        if not path.exists() or self.overwrite.value:
            return
        if self.confirm_overwrite(path):
            return
        raise ValueError(
            f"a model named {name!r} already exists in {path.parent}; choose another name or tick "
            f"'{self.overwrite.text}'"
        )

    def confirm_overwrite(self, path: Path) -> bool:
        """Ask the user whether to replace the model saved at ``path``."""
        answer = QMessageBox.question(
            self,
            "Replace model?",
            f"A model named {path.stem!r} already exists in\n{path.parent}\n\nReplace it when training finishes?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def run(self) -> None:
        """Start fine-tuning with the current settings (the Fine-tune button)."""
        if self.runner.busy:
            show_info("A run is already in progress; cancel it or wait for it to finish.")
            return
        try:
            job = self._collect()
            self._check_name_free(job.name)
        except ValueError as error:
            self.runner.refuse(error)
            return
        self.saved_path = None
        self.saved_label.setText("")
        self.loss_label.setText("Loss: -")
        self.loss_plot.clear()
        self.runner.start(
            finetune.finetune_steps, lambda result: self._save(job, result), job, on_progress=self._on_progress
        )

    def _on_progress(self, progress) -> None:
        loss = getattr(progress, "loss", None)
        if loss is None:
            return
        left = ""
        if self.timing is not None:
            left = f", about {_duration(self.timing['seconds_per_step'] * (progress.total - progress.done))} left"
        self.loss_label.setText(f"Loss: {loss:.4g}  (step {progress.done} of {progress.total}{left})")
        self.loss_plot.add(progress.done, loss)

    def _save(self, job: FineTuneJob, result) -> None:
        """Save the trained network under the chosen name (runs only when training finished)."""
        path = finetune.save(job, result)
        self.saved_path = path
        self.refresh_models()
        self._refresh_method_docks()
        where = "super-resolution" if job.task == SUPERRES else "denoising"
        show_info(f"Saved model {job.name!r} to {path}; it is now in the {where} method list.")
        self.saved_label.setText(f"Saved {job.name!r} to {path}")

    def _refresh_method_docks(self) -> None:
        """Let open docks that list models (``refresh_methods()``) show the new one at once."""
        window = getattr(self.viewer, "window", None)
        for widget in getattr(window, "dock_widgets", {}).values():
            refresh = getattr(widget, "refresh_methods", None)
            if widget is not self and callable(refresh):
                refresh()

