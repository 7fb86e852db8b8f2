"""Celery tasks of the modeling side. Thin: load, call a service, report progress."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

from celery import shared_task

from .jobtask import JobTask
from .models import Job


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
