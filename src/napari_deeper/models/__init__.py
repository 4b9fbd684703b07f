"""Torch networks and the registry of trained weights (shipped and user fine-tuned)."""

from .registry import (
    ARCHITECTURES,
    ModelInfo,
    build,
    find_model,
    list_models,
    load_model,
    save_model,
    user_models_dir,
)

__all__ = [
    "ARCHITECTURES",
    "ModelInfo",
    "build",
    "find_model",
    "list_models",
    "load_model",
    "save_model",
    "user_models_dir",
]
