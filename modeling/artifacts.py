"""Saving and loading a trained model as one directory, atomically.

A model directory holds ``model.keras`` (the network with its weights) and
``preprocessing.json`` (vocabulary, static feature spec, normalizer, arms, training config,
feature names, curves and the library versions it was trained with). It is written into a
temporary directory next to the target and renamed into place, so a reader never sees a
half-written artifact; replacing an existing directory swaps it out the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import keras
import numpy as np

# Registers the custom layers, losses and metrics for deserialization.
from modeling import network  # noqa: F401
from modeling.sequences import Preprocessing
from modeling.training import TrainedModel, TrainingConfig

__all__ = ["FORMAT_VERSION", "load_trained_model", "read_metadata", "save_trained_model"]

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _metadata(bundle: TrainedModel) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "arms": list(bundle.arms),
        "config": bundle.config.to_dict(),
        "preprocessing": bundle.preprocessing.to_dict(),
        "feature_names": bundle.feature_names,
        "history": bundle.history,
        "best_epoch": bundle.best_epoch,
        "fine_tuning": bundle.fine_tuning,
        "order_value_smearing": bundle.order_value_smearing,
        "n_train": bundle.n_train,
        "n_validation": bundle.n_validation,
        "versions": {
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "numpy": np.__version__,
        },
    }


def save_trained_model(bundle: TrainedModel, path: str | Path) -> Path:
    """Write ``bundle`` to the directory ``path`` (created or replaced) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        bundle.model.save(tmp / MODEL_FILE)
        with open(tmp / PREPROCESSING_FILE, "w", encoding="utf-8") as f:
            json.dump(_metadata(bundle), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if path.exists():
            # A directory cannot be renamed over a non-empty one: move the old one aside first,
            # then put the new one in place (a reader sees the old or the new, never a mix).
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    with open(Path(path) / PREPROCESSING_FILE, encoding="utf-8") as f:
        return json.load(f)


def load_trained_model(path: str | Path, *, compile: bool = False) -> TrainedModel:
    """Load a directory written by ``save_trained_model``; ``compile=True`` also restores the
    losses and optimizer (to continue training), scoring does not need them."""
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported model format {meta.get('format_version')!r} in {path}")
    model = keras.saving.load_model(path / MODEL_FILE, compile=compile)
    return TrainedModel(
        model=model,
        preprocessing=Preprocessing.from_dict(meta["preprocessing"]),
        arms=tuple(meta["arms"]),
        config=TrainingConfig.from_dict(meta["config"]),
        history=meta.get("history", []),
        best_epoch=int(meta.get("best_epoch", 0)),
        fine_tuning=meta.get("fine_tuning", {}),
        order_value_smearing=float(meta.get("order_value_smearing", 1.0)),
        n_train=int(meta.get("n_train", 0)),
        n_validation=int(meta.get("n_validation", 0)),
    )
