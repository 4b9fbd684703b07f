"""Fine-tuning a shipped network on the user's own scans, without Qt: the job, names, run and save.

Three jobs, the three of the Fine-tune models dock:

- ``"denoise"``: fine-tune a denoiser on a low-SNR / high-SNR pair of scans of the same field;
- ``"noise"``: learn an instrument's noise from one scan of a featureless sample (the attention
  U-net only);
- ``"superres"``: fine-tune an upscaler on high-resolution scans (the low-resolution inputs are
  made by skip-sampling them).

A script does what the dock does::

    from napari_deeper.training import finetune
    job = finetune.FineTuneJob("denoise", "resunet", "resunet-my-scope",
                               inputs={"noisy": ("short", short), "clean": ("long", long)})
    path = finetune.run(job)      # checks, trains, saves; the model is then a denoise method

The model is saved by name in the user's model folder (``registry.user_models_dir()``) with its
JSON and Markdown cards; shipped names are refused. Nothing is saved when training fails.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import compute
from .._validation import as_cube
from ..models import registry
from . import cards

DENOISE, NOISE, SUPERRES = "denoise", "noise", "superres"
TASKS = (DENOISE, NOISE, SUPERRES)
#: the registry task a saved model of each job belongs to (its card's "task").
REGISTRY_TASK = {DENOISE: "denoise", NOISE: "denoise", SUPERRES: "superres"}
#: the input roles of each job, and how they are named in messages and cards.
ROLES = {DENOISE: ("noisy", "clean"), NOISE: ("blank",), SUPERRES: ("hr",)}
ROLE_TITLES = {"noisy": "low SNR", "clean": "high SNR", "blank": "featureless scan", "hr": "high resolution"}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def default_model_name(base: str, task: str, layer_name: str) -> str:
    """``<base>-finetuned-<layer>`` (``<base>-noise-<layer>`` for noise learning), file-name safe."""
    verb = "noise" if task == NOISE else "finetuned"
    raw = f"{base}-{verb}-{layer_name}" if layer_name else f"{base}-{verb}"
    return re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-.")


def check_model_name(name: str) -> str:
    """The name a model is saved under: stripped and lowercase, as every method name is.

    Raises a ``ValueError`` saying which names are accepted.
    """
    name = name.strip().lower()
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid model name {name!r}: start with a letter or digit and use only letters, "
            "digits, '-', '_' and '.'"
        )
    return name


def model_path(name: str) -> Path:
    """Where the model ``name`` is saved; a ``ValueError`` for the name of a shipped model."""
    if (registry.SHIPPED_DIR / f"{name}.pt").exists():
        raise ValueError(f"{name!r} is the name of a model shipped with the plugin; choose another name")
    return registry.user_models_dir() / f"{name}.pt"


def base_models(task: str) -> list:
    """The saved models (``registry.ModelInfo``) a ``task`` job can start from.

    Noise learning predicts the noise in the DCT domain, which only the attention U-net does.
    """
    models = registry.list_models(REGISTRY_TASK[_task(task)])
    return [info for info in models if info.arch == "aunet"] if task == NOISE else models


def default_base(task: str) -> str:
    """The base model a ``task`` job starts from by default: a shipped one, never a saved fine-tune.

    Among the shipped models of the task, the one the task's method family runs by default
    (``resunet`` for denoising, ``hyrisr`` for super-resolution) when it is there; "" when no
    model can start the job.
    """
    models = base_models(task)
    shipped = [info.name for info in models if info.shipped]
    preferred = {DENOISE: "resunet", NOISE: "aunet", SUPERRES: "hyrisr"}[task]
    if preferred in shipped:
        return preferred
    return (shipped or [info.name for info in models] or [""])[0]


#: spectra looked at, at most, to estimate a cube's SNR
SNR_SPECTRA = 2048


def estimate_snr(cube) -> float:
    """A cube's signal-to-noise ratio: the median over its spectra of RMS value / noise level.

    The noise level of a spectrum is the robust spread of its second differences along the
    bands (a smooth Raman spectrum has almost none), so no reference is needed; up to
    :data:`SNR_SPECTRA` evenly spaced spectra are used. Good for ranking scans of one field.
    """
    data = np.asarray(cube)
    if data.ndim != 3 or data.shape[0] < 3:
        raise ValueError(f"estimating the SNR needs a (bands, y, x) cube of at least 3 bands, got shape {data.shape}")
    spectra = data.reshape(data.shape[0], -1)
    step = max(1, spectra.shape[1] // SNR_SPECTRA)
    spectra = np.asarray(spectra[:, ::step], dtype=np.float64)
    spectra = spectra[:, np.isfinite(spectra).all(axis=0)]
    if spectra.shape[1] == 0:
        return float("nan")
    noise = 1.4826 * np.median(np.abs(np.diff(spectra, n=2, axis=0)), axis=0) / np.sqrt(6.0)
    rms = np.sqrt(np.mean(spectra**2, axis=0))
    ratio = rms / np.maximum(noise, 1e-12 * max(float(rms.max()), 1e-30))
    return float(np.median(ratio))


def choose_pair(layers) -> tuple[str, str] | None:
    """The low/high-SNR pair to fine-tune a denoiser on, from ``layers``: ``(noisy, clean)`` names.

    ``layers`` holds ``(name, cube, provenance record)`` of the candidate scans. A pair is two
    cubes of one shape of which neither was made from the other (a layer and its own
    preprocessed or denoised copy are not two scans; the chain is followed through the
    records' ``source``); pairs of layers that no operation made (read from files, samples) come
    before pairs with a made layer. Of those, the pair whose SNRs (:func:`estimate_snr`) differ
    most is chosen, the lower SNR as the noisy one. None when no two layers make a pair.
    """
    layers = [(str(name), cube, dict(record or {})) for name, cube, record in layers]
    parent = {name: record.get("source") for name, _cube, record in layers}

    def lineage(name: str) -> set[str]:
        seen: set[str] = set()
        while name in parent and parent[name] is not None and parent[name] not in seen:
            name = parent[name]
            seen.add(name)
        return seen

    def made(record: dict) -> bool:
        return record.get("source") in parent

    snr: dict[str, float] = {}

    def snr_of(name: str, cube) -> float:
        if name not in snr:
            snr[name] = estimate_snr(cube)
        return snr[name]

    best = None
    for i, (a, cube_a, record_a) in enumerate(layers):
        for b, cube_b, record_b in layers[i + 1 :]:
            if np.shape(cube_a) != np.shape(cube_b) or a in lineage(b) or b in lineage(a):
                continue
            snr_a, snr_b = snr_of(a, cube_a), snr_of(b, cube_b)
            if not (np.isfinite(snr_a) and np.isfinite(snr_b)) or snr_a == snr_b:
                continue
            spread = abs(np.log(max(snr_a, 1e-12)) - np.log(max(snr_b, 1e-12)))
            rank = (not (made(record_a) or made(record_b)), spread)
            pair = (a, b) if snr_a < snr_b else (b, a)
            if best is None or rank > best[0]:
                best = (rank, pair)
    return None if best is None else best[1]


def time_steps(job: FineTuneJob, probe_steps: int = 4):
    """Time a checked ``job``: run ``probe_steps`` of it and measure; nothing is saved.

    Yields ``compute.Progress``; returns ``{"seconds_per_step", "setup_seconds", "probe_steps",
    "device"}``: the median time of one training step after the first, and the time outside
    the steps (loading the model, preparing the data, the evaluation before and after), both
    measured here. :func:`estimated_seconds` turns them into the time of a run.
    """
    import dataclasses
    import time

    probe = dataclasses.replace(job, steps=max(2, int(probe_steps)))
    stamps: list[float] = []
    start = time.perf_counter()
    steps = finetune_steps(probe)
    try:
        while True:
            progress = next(steps)
            if getattr(progress, "loss", None) is not None and progress.done > 0:
                stamps.append(time.perf_counter())
            yield compute.Progress(progress.done, progress.total, f"timing {probe.steps} steps")
    except StopIteration:
        pass
    total = time.perf_counter() - start
    if len(stamps) < 2:
        raise ValueError(f"the {job.task} job reported fewer than 2 steps, so no step could be timed")
    per_step = float(np.median(np.diff(stamps)))
    return {"seconds_per_step": per_step, "setup_seconds": max(0.0, total - per_step * len(stamps)),
            "probe_steps": probe.steps, "device": job.device}


def estimated_seconds(timing: dict, steps: int) -> float:
    """The time of a run of ``steps`` steps from a :func:`time_steps` measurement."""
    return float(timing["setup_seconds"] + timing["seconds_per_step"] * int(steps))


def steps_function(task: str):
    """The core ``*_steps`` generator function that runs a ``task`` job (looked up at each call)."""
    if _task(task) == SUPERRES:
        from .superres import finetune_upscaler_steps

        return finetune_upscaler_steps
    from . import denoise

    return denoise.finetune_denoiser_steps if task == DENOISE else denoise.learn_noise_steps


def default(task: str, parameter: str):
    """The default of ``parameter`` (``"steps"``, ``"lr"``) of a ``task`` job's core function."""
    return inspect.signature(steps_function(task)).parameters[parameter].default


def _task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown fine-tuning job {task!r}; choose one of: {', '.join(TASKS)}")
    return task


@dataclass
class FineTuneJob:
    """Everything one fine-tuning run needs.

    ``inputs`` maps each role of the job (:data:`ROLES`) to ``(name, cube)``; for ``"hr"`` it is
    ``(names, cubes)``, lists of one or more. ``steps`` and ``learning_rate`` left None take the
    core function's defaults; :func:`check` fills them in, with the base model's architecture.
    """

    task: str
    base_model: str
    name: str
    inputs: dict = field(default_factory=dict)
    steps: int | None = None
    learning_rate: float | None = None
    device: str = "auto"
    scale: int = 2
    wavenumbers: np.ndarray | None = None
    base_arch: str = ""
    base_config: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """What the model card records of this run (no arrays)."""
        layers = {role: names for role, (names, _data) in self.inputs.items()}
        return {
            "job": self.task,
            "base_model": self.base_model,
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "device": self.device,
            "layers": layers,
            **({"scale": self.scale} if self.task == SUPERRES else {}),
        }


def check(job: FineTuneJob) -> FineTuneJob:
    """Check everything that is cheap to check before training; fills the job's defaults in.

    Raises a ``ValueError`` naming what is wrong: the job, the base model (unknown, or of another
    task), the name, the device (a GPU that is not there), the inputs (missing, one scan twice,
    shapes that differ).
    """
    task = _task(job.task)
    if not job.base_model:
        kind = {DENOISE: "denoising", NOISE: "aunet denoising", SUPERRES: "super-resolution"}[task]
        raise ValueError(
            f"no {kind} model to start from: none is shipped with the plugin or saved in "
            f"{registry.user_models_dir()}"
        )
    job.name = check_model_name(job.name)
    base = registry.find_model(job.base_model)
    if base.task != REGISTRY_TASK[task]:
        raise ValueError(f"{job.base_model!r} is a {base.task!r} model; a {task!r} job starts from a "
                         f"{REGISTRY_TASK[task]!r} model")
    job.base_arch, job.base_config = base.arch, dict(base.card.get("config", {}))
    job.steps = int(default(task, "steps") if job.steps is None else job.steps)
    job.learning_rate = float(default(task, "lr") if job.learning_rate is None else job.learning_rate)
    compute.select_device(job.device)  # a missing GPU is reported now, not after loading the data
    missing = [role for role in ROLES[task] if role not in job.inputs]
    if missing:
        raise ValueError(f"a {task} job needs the inputs {', '.join(ROLES[task])}; missing: {', '.join(missing)}")
    if task == DENOISE:
        (noisy_name, noisy), (clean_name, clean) = job.inputs["noisy"], job.inputs["clean"]
        if noisy_name == clean_name:
            raise ValueError("choose two different layers: a low-SNR and a high-SNR scan of the same field")
        if np.shape(noisy) != np.shape(clean):
            raise ValueError(
                f"the low-SNR layer {noisy_name!r} has shape {tuple(np.shape(noisy))} but the "
                f"high-SNR layer {clean_name!r} has shape {tuple(np.shape(clean))}; fine-tuning "
                "needs two scans of the same field with the same bands and pixels"
            )
    elif task == SUPERRES:
        _names, cubes = job.inputs["hr"]
        if not len(cubes):
            raise ValueError("choose at least one high-resolution layer to fine-tune on")
        bands = {np.shape(cube)[0] for cube in cubes}
        if len(bands) > 1:
            raise ValueError(f"the high-resolution layers have different band counts {sorted(bands)}")
    return job


def finetune_steps(job: FineTuneJob):
    """Check the inputs' values and run the core fine-tuning generator of a checked ``job``.

    Yields ``compute.Progress`` (with the training ``loss``); returns ``(model, card)``.
    """
    steps = steps_function(job.task)
    common = {"steps": job.steps, "lr": job.learning_rate, "device": job.device}
    if job.task == DENOISE:
        (noisy_name, noisy), (clean_name, clean) = job.inputs["noisy"], job.inputs["clean"]
        noisy = as_cube(noisy, f"low-SNR layer {noisy_name!r}")
        clean = as_cube(clean, f"high-SNR layer {clean_name!r}")
        return (yield from steps(job.base_model, noisy, clean, **common))
    if job.task == NOISE:
        blank_name, blank = job.inputs["blank"]
        blank = as_cube(blank, f"featureless scan {blank_name!r}")
        return (yield from steps(job.base_model, blank, wavenumbers=job.wavenumbers, **common))
    names, cubes = job.inputs["hr"]
    hr = [as_cube(cube, f"high-resolution layer {name!r}") for name, cube in zip(names, cubes)]
    return (yield from steps(job.base_model, hr, scale=job.scale, **common))


def save(job: FineTuneJob, result) -> Path:
    """Save a finished run's ``(model, card)`` under ``job.name`` in the user's model folder."""
    model, card = result
    card = dict(card)
    # fine-tuning keeps the base network's architecture, so its card fills any gap
    arch = card.setdefault("arch", job.base_arch)
    config = card.setdefault("config", job.base_config)
    card["task"] = REGISTRY_TASK[job.task]
    card["finetuning"] = job.describe()
    return registry.save_model(model, job.name, arch, config, card, folder=model_path(job.name).parent,
                               card_markdown=model_card_markdown(job, card))


def run(job: FineTuneJob, callback=None) -> Path:
    """Check, fine-tune and save ``job``; ``callback`` gets every ``Progress``. Returns the path.

    An existing user model of that name is replaced (the dock asks first).
    """
    check(job)
    model_path(job.name)  # a shipped model's name is refused before training, not after
    return save(job, compute.run(finetune_steps(job), callback))


def model_card_markdown(job: FineTuneJob, card: dict) -> str:
    """The human-readable card of a fine-tuned model (:func:`.cards.model_card_markdown`)."""
    what = {
        DENOISE: "fine-tuned on a low/high-SNR pair of the user's own scans",
        NOISE: "fine-tuned on simulated spectra plus noise measured on a featureless sample",
        SUPERRES: f"fine-tuned at {job.scale}x on pairs skip-sampled from the user's high-resolution scans",
    }[job.task]
    facts = [f"Steps: {job.steps}, learning rate {job.learning_rate:g}, device `{job.device}`."]
    for role, (names, _data) in job.inputs.items():
        listed = ", ".join(f"`{name}`" for name in (names if isinstance(names, list) else [names]))
        facts.append(f"Layers ({ROLE_TITLES[role]}): {listed}.")
    facts.append(f"Architecture config: `{json.dumps(card['config'])}`.")

    def block(section: str) -> str:
        return f"```json\n{json.dumps(card[section], indent=2, default=float)}\n```" if card.get(section) else ""

    about = f"`{card['arch']}` network for the `{card['task']}` task, {what}, starting from `{job.base_model}`."
    return cards.model_card_markdown(job.name, card, about, facts, block("training"), block("metrics"))
