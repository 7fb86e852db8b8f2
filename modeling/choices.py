"""Domain choices of the modeling side, in one place."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class JobKind(models.TextChoices):
    IMPORT = "import", _("Import")
    TRAIN = "train", _("Train model")
    SCORE = "score", _("Score customers")
    PROPOSE = "propose", _("Propose strategy")
    APPLY = "apply", _("Apply strategy")
    OUTCOMES = "outcomes", _("Import outcomes")
    WORKER_CHECK = "worker_check", _("Worker check")


class JobStatus(models.TextChoices):
    PENDING = "pending", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")

    @classmethod
    def active(cls) -> list[str]:
        return [cls.PENDING, cls.RUNNING]

    @classmethod
    def finished(cls) -> list[str]:
        return [cls.SUCCEEDED, cls.FAILED, cls.CANCELLED]


class ModelStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    TRAINING = "training", _("Training")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class ModelPreset(models.TextChoices):
    SMALL = "small", _("Small (one LSTM(64); quick on a CPU)")
    LARGE = "large", _("Large (two LSTM(128); for GPU workers)")
