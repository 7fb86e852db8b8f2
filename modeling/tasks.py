"""Celery tasks of the modeling side. Thin: load, call a service, report progress."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

from celery import shared_task
from django.utils import translation
from django.utils.translation import gettext as _

from .choices import ModelStatus
from .jobtask import JobFailure, JobTask
from .models import Job, ModelVersion
from .services import JobCancelled, job_language, job_language_of


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
    self.report(job, 30, _("Picked up by %(host)s") % {"host": hostname})
    accelerators: list[str] = []
    if job.params.get("probe_accelerators"):
        self.report(job, 60, _("Listing accelerators"))
        accelerators = _visible_accelerators()
    return {
        "message": _("Worker %(host)s served queue %(queue)s") % {"host": hostname, "queue": queue},
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
        raise JobFailure(_("The model version no longer exists."))
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
    return {
        "version": version.number,
        "message": _("Model v%(n)s is ready") % {"n": version.number},
    }


def _fail_version(version: ModelVersion, error: str) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelStatus.FAILED, error=error[:5000])


@shared_task(
    bind=True, base=JobTask, name="modeling.tasks.score_model", soft_time_limit=540, time_limit=600
)
def score_model(self: JobTask, job: Job, **kwargs: Any) -> dict[str, Any]:
    """Split the merchant's customers into chunks and score them in parallel (a chord)."""
    from celery import chord

    from .scoring_service import score_chunk_ranges, scoring_as_of

    version = ModelVersion.objects.filter(
        pk=job.params["version_id"], merchant=job.merchant
    ).first()
    if version is None or version.status != ModelStatus.READY:
        raise JobFailure(_("The model version is not ready to score."))
    ranges = score_chunk_ranges(version=version, size=job.params.get("chunk_size"))
    as_of = scoring_as_of(version=version)
    self.report(job, 5, _("Scoring %(n)s chunks of customers") % {"n": len(ranges)})
    finish = chord(
        score_chunk.si(job.pk, version.pk, index, first, last, as_of, len(ranges))
        for index, (first, last) in enumerate(ranges)
    )(score_finish.si(job.pk, version.pk, len(ranges)))
    return {"deferred": True, "chunks": len(ranges), "finish_task_id": finish.id}


@shared_task(name="modeling.tasks.score_chunk", acks_late=True, time_limit=900, soft_time_limit=840)
def score_chunk(
    job_id: int, version_id: int, index: int, first: int, last: int, as_of: int, total: int
) -> int:
    """One chunk of customers (routed to the `scoring` queue); safe to run twice."""
    from .scoring_service import job_is_live, score_chunk_report
    from .scoring_service import score_chunk as score

    if not job_is_live(job_id):  # cancelled or failed meanwhile: do nothing
        return 0
    version = ModelVersion.objects.get(pk=version_id)
    chunk = score(version=version, index=index, first=first, last=last, as_of=as_of)
    with translation.override(job_language_of(job_id=job_id)):  # its starter's language
        score_chunk_report(job_id=job_id, version=version, total=total)
    return chunk.rows


@shared_task(name="modeling.tasks.score_finish")
def score_finish(job_id: int, version_id: int, chunks: int) -> None:
    from .scoring_service import scoring_finish

    job = Job.objects.filter(pk=job_id).first()
    version = ModelVersion.objects.filter(pk=version_id).first()
    if job is None or version is None:
        return
    with translation.override(job_language(job)):  # its starter's language
        scoring_finish(job=job, version=version, chunks=chunks)


@shared_task(name="modeling.tasks.retrain_due_merchants", soft_time_limit=300, time_limit=360)
def retrain_due_merchants() -> int:
    """Periodic (beat): queue the training of every merchant whose retraining is due."""
    from .retraining_service import retraining_run_due

    return len(retraining_run_due())
