"""Celery tasks of the modeling side. Thin: load, call a service, report progress."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

from celery import shared_task

from .choices import ModelStatus
from .jobtask import JobFailure, JobTask
from .models import Job, ModelVersion
from .services import JobCancelled


@shared_task(
    bind=True,
    base=JobTask,
    name="modeling.tasks.worker_check",
    soft_time_limit=90,
    time_limit=120,
)
def worker_check(self: JobTask, job: Job, **kwargs: Any) -> dict[str, Any]:
    """Report which worker served which queue and which accelerators it sees."""
    queue = (self.request.delivery_info or {}).get("routing_key") or job.params.get("queue")
    hostname = socket.gethostname()
    self.report(job, 30, f"Picked up by {hostname}")
    accelerators: list[str] = []
    if job.params.get("probe_accelerators"):
        self.report(job, 60, "Listing accelerators")
        accelerators = _visible_accelerators()
    return {
        "message": f"Worker {hostname} served queue {queue}",
        "hostname": hostname,
        "pid": os.getpid(),
        "queue": queue,
        "python": platform.python_version(),
        "accelerators": accelerators,
        "eager": bool(self.request.is_eager),
    }


def _visible_accelerators() -> list[str]:
    # Imported here only: loading TensorFlow costs seconds and most checks do not need it.
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_physical_devices("GPU")]
    if keras.backend.backend() == "jax":
        import jax

        return [str(device) for device in jax.devices() if device.platform != "cpu"]
    return []


@shared_task(
    bind=True,
    base=JobTask,
    name="modeling.tasks.train_model",
    soft_time_limit=3 * 60 * 60,
    time_limit=3 * 60 * 60 + 300,
)
def train_model(self: JobTask, job: Job, **kwargs: Any) -> dict[str, Any]:
    """Train, evaluate and save one model version (routed to the `training` queue)."""
    from .training_service import TrainingDataError, train_version

    version = ModelVersion.objects.filter(
        pk=job.params["version_id"], merchant=job.merchant
    ).first()
    if version is None:
        raise JobFailure("The model version no longer exists.")
    try:
        version = train_version(version=version, report=lambda p, m: self.report(job, p, m))
    except TrainingDataError as error:
        _fail_version(version, str(error))
        raise JobFailure(str(error)) from None
    except JobCancelled:
        ModelVersion.objects.filter(pk=version.pk).update(status=ModelStatus.CANCELLED)
        raise
    except Exception as error:
        _fail_version(version, f"{type(error).__name__}: {error}")
        raise
    return {"version": version.number, "message": f"Model v{version.number} is ready"}


def _fail_version(version: ModelVersion, error: str) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelStatus.FAILED, error=error[:5000])
