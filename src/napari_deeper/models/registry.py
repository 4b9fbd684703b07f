"""Where trained networks live and how they are saved and loaded.

A model is three files with one stem: ``<name>.pt`` (the torch state dict and constructor
config), ``<name>.json`` (machine-readable card: architecture, task, config, training, metrics)
and ``<name>.md`` (the human model card). Shipped models sit in ``models/weights/`` inside the
package; models the user fine-tunes go to the user data folder (``platformdirs``), or to
``$NAPARI_DEEPER_MODELS`` when set. User models shadow shipped ones of the same name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

SHIPPED_DIR = Path(__file__).parent / "weights"
FORMAT_VERSION = 1

#: architecture name -> "module:Class"; each class is built as ``Class(**config)``.
ARCHITECTURES = {
    "resunet": "napari_deeper.models.resunet:ResUNet1d",
    "aunet": "napari_deeper.models.aunet:AUNet1d",
    "hyrisr": "napari_deeper.models.hyrisr:HyRISR",
    "srresnet": "napari_deeper.models.srresnet:SRResNet",
    "subspace_unet": "napari_deeper.models.subspace_unet:SubspaceUNet",
}


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of one saved model, read from its JSON card (no torch needed)."""

    name: str
    arch: str
    task: str
    path: Path
    shipped: bool
    card: dict


def user_models_dir() -> Path:
    """The folder for the user's own fine-tuned models (created on first use)."""
    env = os.environ.get("NAPARI_DEEPER_MODELS")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-deeper", appauthor=False)) / "models"


def list_models(task: str | None = None) -> list[ModelInfo]:
    """Every loadable model (user models first, then shipped), optionally for one task."""
    found: dict[str, ModelInfo] = {}
    for folder, shipped in ((user_models_dir(), False), (SHIPPED_DIR, True)):
        if not folder.is_dir():
            continue
        for card_path in sorted(folder.glob("*.json")):
            weights = card_path.with_suffix(".pt")
            if not weights.exists() or card_path.stem in found:
                continue
            card = json.loads(card_path.read_text())
            if task is not None and card.get("task") != task:
                continue
            found[card_path.stem] = ModelInfo(
                card_path.stem, card["arch"], card.get("task", ""), weights, shipped, card
            )
    return list(found.values())


def find_model(name: str) -> ModelInfo:
    """The model called ``name``, or a ``ValueError`` listing the ones there are."""
    for info in list_models():
        if info.name == name:
            return info
    known = ", ".join(info.name for info in list_models()) or "none"
    raise ValueError(f"no trained model named {name!r}; available: {known}")


def build(arch: str, config: dict):
    """Construct an untrained network of architecture ``arch``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    module, cls = ARCHITECTURES[arch].split(":")
    return getattr(import_module(module), cls)(**config)


def load_model(name_or_path, device="cpu"):
    """Load a saved model in eval mode on ``device``; returns ``(model, card)``."""
    import torch

    path = Path(name_or_path)
    if path.suffix != ".pt":
        path = find_model(str(name_or_path)).path
    if not path.exists():
        raise ValueError(f"model file {path} does not exist")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = build(payload["arch"], payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.eval().to(device)
    card = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").exists() else {}
    return model, card


#: Networks loaded for inference: (file, modification time, device) -> (model, card).
_LOADED: dict[tuple, tuple] = {}
_LOADED_MAX = 8


def cached_model(name: str, device="cpu"):
    """``(model, card)`` of the saved model ``name`` on ``device``, loaded once while its file is
    unchanged: the one cache of networks that inference uses.

    A model saved again under the same name is loaded afresh. The model is shared, so it is for
    inference only: training starts from :func:`load_model`, which gives a private copy.
    """
    info = find_model(name)
    key = (str(info.path), info.path.stat().st_mtime_ns, str(device))
    if key not in _LOADED:
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.clear()
        _LOADED[key] = load_model(info.path, device)
    return _LOADED[key]


def save_model(model, name: str, arch: str, config: dict, card: dict, folder: Path | None = None,
               card_markdown: str | None = None) -> Path:
    """Save ``model`` as ``<folder>/<name>.pt`` with its JSON card (and Markdown card if given).

    ``folder`` defaults to the user models folder; an existing model of that name is replaced
    only because the caller chose the name (widgets ask before overwriting).
    """
    import torch

    if not name or any(c in name for c in "/\\:") or name.startswith("."):
        raise ValueError(f"invalid model name {name!r}: use letters, digits, '-', '_' and '.'")
    folder = Path(folder) if folder is not None else user_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"arch": arch, "config": config, "state_dict": state, "format_version": FORMAT_VERSION}, path)
    full_card = {"name": name, "arch": arch, "config": config, **card}
    path.with_suffix(".json").write_text(json.dumps(full_card, indent=2, default=float))
    if card_markdown is not None:
        path.with_suffix(".md").write_text(card_markdown)
    return path


def parameter_count(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))
